import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Optional

import pytest

from lstmkit.train import ConfigError, check_resume_overrides, config_from_dict, config_to_dict, merge_from_args


@dataclass
class OptimConfig:
    lr: float = 30.0  # learning rate
    momentum: float = 0.0  # SGD momentum
    nonmono: int = 5  # evaluations without improvement before averaging
    clip: Optional[float] = 0.25  # gradient norm clip; None disables


@dataclass
class ModelConfig:
    sizes: tuple[int, ...] = (400, 1150, 1150)  # hidden size per layer
    kind: Literal["lstm", "gru"] = "lstm"  # cell type
    tied: bool = True  # tie encoder and decoder weights
    pair: tuple[int, float] = (1, 0.5)  # a fixed-length tuple

    def __post_init__(self):
        if any(size <= 0 for size in self.sizes):
            raise ValueError("sizes must be positive")


@dataclass
class RunConfig:
    seed: int = 1  # seed for every generator
    name: str = "run"  # run name
    out: Path = Path("runs")  # where runs go
    data: Optional[str] = None  # data directory
    tags: list[str] = field(default_factory=list)  # free-form labels
    optim: OptimConfig = field(default_factory=OptimConfig)  # optimizer settings
    model: ModelConfig = field(default_factory=ModelConfig)  # model settings


def test_overrides_convert_to_field_types():
    base = RunConfig()
    config = merge_from_args(
        base,
        [
            "--seed=7",
            "--name=my run=1",
            "--out=/tmp/x",
            "--data=wikitext-2",
            "--tags=a,b",
            "--optim.lr=1e-3",
            "--optim.nonmono=3",
            "--optim.clip=none",
            "--model.sizes=(8, 16)",
            "--model.kind=gru",
            "--model.tied=False",
            "--model.pair=2,0.25",
        ],
    )
    assert config.seed == 7 and config.name == "my run=1" and config.out == Path("/tmp/x")
    assert config.data == "wikitext-2" and config.tags == ["a", "b"]
    assert config.optim == OptimConfig(lr=1e-3, nonmono=3, clip=None)
    assert config.model == ModelConfig(sizes=(8, 16), kind="gru", tied=False, pair=(2, 0.25))
    assert base == RunConfig()  # the original is untouched


@pytest.mark.parametrize("text, expected", [("true", True), ("1", True), ("yes", True), ("OFF", False), ("0", False)])
def test_bool_spellings(text, expected):
    assert merge_from_args(RunConfig(), [f"--model.tied={text}"]).model.tied is expected


def test_empty_tuple_and_later_override_wins():
    config = merge_from_args(RunConfig(), ["--model.sizes=", "--seed=2", "--seed=3"])
    assert config.model.sizes == () and config.seed == 3


def test_unknown_key_lists_valid_keys():
    message = r"unknown config key 'optim.lrr'; valid keys in 'optim': optim.lr, optim.momentum"
    with pytest.raises(ConfigError, match=message):
        merge_from_args(RunConfig(), ["--optim.lrr=1"])
    with pytest.raises(ConfigError, match=r"unknown config key 'sed'; valid keys at the top level: seed, name"):
        merge_from_args(RunConfig(), ["--sed=1"])
    with pytest.raises(ConfigError, match=r"unknown config key 'seed.x'"):
        merge_from_args(RunConfig(), ["--seed.x=1"])


@pytest.mark.parametrize(
    "arg, message",
    [
        ("--optim.nonmono=2.5", r"bad value for 'optim.nonmono' \(int\): '2.5'"),
        ("--optim.lr=fast", r"bad value for 'optim.lr' \(float\): 'fast'"),
        ("--model.tied=maybe", r"bad value for 'model.tied' \(bool\): 'maybe'"),
        ("--model.kind=rnn", r"bad value for 'model.kind'.*expected one of \['lstm', 'gru'\]"),
        ("--model.pair=1,2,3", r"bad value for 'model.pair'.*expected 2 comma-separated items"),
        ("--model.sizes=8,-1", r"bad value for 'model.sizes': '8,-1': sizes must be positive"),
        ("--optim=3", r"'optim' is a section, not a value; set one of its keys: optim.lr"),
        ("--seed", r"bad override '--seed': expected --section.key=value"),
        ("seed=3", r"bad override 'seed=3'"),
        ("--optim..lr=3", r"empty key"),
    ],
)
def test_bad_overrides(arg, message):
    with pytest.raises(ConfigError, match=message):
        merge_from_args(RunConfig(), [arg])


def test_config_error_is_a_value_error():
    assert issubclass(ConfigError, ValueError)


def test_json_round_trip():
    config = merge_from_args(RunConfig(), ["--model.sizes=3,4", "--tags=x", "--optim.clip=none", "--out=a/b"])
    data = json.loads(json.dumps(config_to_dict(config)))
    assert data["model"]["sizes"] == [3, 4] and data["out"] == "a/b"
    assert config_from_dict(RunConfig, data) == config


def test_from_dict_fills_missing_keys_with_defaults():
    assert config_from_dict(RunConfig, {"optim": {"lr": 2}}) == RunConfig(optim=OptimConfig(lr=2.0))


def test_from_dict_rejects_unknown_keys_and_wrong_types():
    with pytest.raises(ConfigError, match=r"unknown config key 'optim.betas' in stored config; valid keys in 'optim'"):
        config_from_dict(RunConfig, {"optim": {"betas": [0.9, 0.99]}})
    with pytest.raises(ConfigError, match=r"unknown config key 'colour'"):
        config_from_dict(RunConfig, {"colour": "red"})
    with pytest.raises(ConfigError, match=r"bad value for 'seed': expected int, got '3'"):
        config_from_dict(RunConfig, {"seed": "3"})
    with pytest.raises(ConfigError, match=r"bad value for 'model.tied': expected bool, got 1"):
        config_from_dict(RunConfig, {"model": {"tied": 1}})
    with pytest.raises(ConfigError, match=r"bad value for 'model.sizes\[1\]'"):
        config_from_dict(RunConfig, {"model": {"sizes": [1, "x"]}})
    with pytest.raises(ConfigError, match=r"must be a JSON object"):
        config_from_dict(RunConfig, [1])


def test_from_dict_requires_fields_without_defaults():
    @dataclass
    class Needs:
        size: int  # no default

    with pytest.raises(ConfigError, match=r"stored config for Needs is incomplete"):
        config_from_dict(Needs, {})


def test_check_resume_overrides_names_the_first_change_a_resume_cannot_make():
    allowed = ("--train.", "--loop.", "--data=")
    assert check_resume_overrides(iter(["--train.max_steps=9", "--data=x"]), allowed, "budgets") == [
        "--train.max_steps=9", "--data=x"]
    with pytest.raises(ConfigError, match=r"'--model.hidden_size=3': on --resume only budgets can change"):
        check_resume_overrides(["--loop.max_steps=2", "--model.hidden_size=3"], allowed, "budgets")


def test_every_task_keeps_the_loop_settings_in_the_train_section():
    from lstmkit.classify import ClassifierRunConfig
    from lstmkit.lm import LMRunConfig
    from lstmkit.tagger import TrainTaggerConfig
    from lstmkit.train import LoopConfig

    for cls in (LMRunConfig, TrainTaggerConfig, ClassifierRunConfig):
        default = cls()
        assert isinstance(default.train, LoopConfig), cls.__name__
        old = merge_from_args(default, ["--loop.max_steps=7"])  # the former name, in overrides
        assert old.train.max_steps == 7 and old == merge_from_args(default, ["--train.max_steps=7"])
        stored = config_to_dict(old)
        stored["loop"] = stored.pop("train")  # a run stored before the rename
        assert config_from_dict(cls, stored) == old
