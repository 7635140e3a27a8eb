"""lstmkit.train: model-agnostic training infrastructure (configs, checkpoints, seeding, NT-ASGD, metrics)."""

from .config import ConfigError, config_from_dict, config_to_dict, merge_from_args

__all__ = [
    "ConfigError",
    "merge_from_args",
    "config_to_dict",
    "config_from_dict",
]
