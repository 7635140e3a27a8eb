"""lstmkit.train: model-agnostic training infrastructure (configs, checkpoints, seeding, NT-ASGD, metrics, the loop)."""

from .checkpoint import (
    Checkpoint,
    CheckpointError,
    atomic_save_safetensors,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    atomic_writer,
    checkpoint_exists,
    load_checkpoint,
    load_checkpoint_state,
    load_model_weights,
    load_optimizer_state,
    save_checkpoint,
)
from .config import ConfigError, check_resume_overrides, config_from_dict, config_to_dict, merge_from_args
from .distributed import Distributed, DistributedError
from .loop import (
    BEST_CHECKPOINT,
    LAST_CHECKPOINT,
    LoopConfig,
    LoopState,
    RunDirectoryError,
    RunResult,
    StepInfo,
    Task,
    TaskState,
    fit,
)
from .metrics import MetricsLogger, read_metrics
from .optim import NTASGD
from .progress import TrainingProgress, perplexity, progress_bar
from .seeding import get_rng_state, seed_everything, set_rng_state

__all__ = [
    "ConfigError",
    "merge_from_args",
    "check_resume_overrides",
    "config_to_dict",
    "config_from_dict",
    "CheckpointError",
    "Checkpoint",
    "save_checkpoint",
    "load_checkpoint",
    "load_checkpoint_state",
    "load_model_weights",
    "load_optimizer_state",
    "checkpoint_exists",
    "atomic_writer",
    "atomic_write_bytes",
    "atomic_write_text",
    "atomic_write_json",
    "atomic_save_safetensors",
    "seed_everything",
    "get_rng_state",
    "set_rng_state",
    "NTASGD",
    "MetricsLogger",
    "read_metrics",
    "TrainingProgress",
    "progress_bar",
    "perplexity",
    "LoopConfig",
    "LoopState",
    "StepInfo",
    "Task",
    "TaskState",
    "RunResult",
    "RunDirectoryError",
    "fit",
    "Distributed",
    "DistributedError",
    "LAST_CHECKPOINT",
    "BEST_CHECKPOINT",
]
