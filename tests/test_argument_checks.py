"""Arguments that used to be accepted or reported vaguely (issue 14): generate names the one mistake made, and the
LSTM and the model configs refuse values of the wrong type or NaN."""

from __future__ import annotations

import math

import pytest

import lstmkit
from lstmkit.cli import main
from lstmkit.lm import LanguageModelConfig
from lstmkit.tagger import TaggerConfig
from lstmkit.train import ConfigError
from lstmkit.lm.task import make_config


@pytest.mark.parametrize("flags, message", [
    (["--words", "-1"], "--words must be >= 0, got -1"),
    (["--temperature", "0"], "--temperature must be a finite number > 0, got 0.0"),
    (["--temperature", "nan"], "--temperature must be a finite number > 0, got nan"),
    (["--top-k", "0"], "--top-k must be >= 1, got 0"),
])
def test_generate_names_the_mistake(flags, message, tmp_path, capsys):
    assert main(["generate", str(tmp_path), *flags]) == 2
    assert capsys.readouterr().err == f"lstmkit generate: error: {message}\n"


@pytest.mark.parametrize("make, error, message", [
    (lambda: lstmkit.LSTM(3, 4, forget_bias=math.nan), ValueError, "forget_bias must be a finite number, got nan"),
    (lambda: lstmkit.LSTM(3, 4, layer_norm="yes"), TypeError, "layer_norm should be of type bool, got: str"),
    (lambda: lstmkit.LSTM(3, 4, peephole=1), TypeError, "peephole should be of type bool, got: int"),
    (lambda: lstmkit.LSTM(3, 4, num_layers=True), TypeError, "num_layers should be of type int, got: bool"),
    (lambda: lstmkit.LSTM(3, True), TypeError, "hidden_size should be of type int, got: bool"),
    (lambda: lstmkit.LSTMCell(3, True), TypeError, "hidden_size should be of type int, got: bool"),
    (lambda: lstmkit.LSTMCell(3, 4, forget_bias=math.inf), ValueError, "forget_bias must be a finite number"),
    (lambda: lstmkit.LSTMCell(3, 4, layer_norm="yes"), TypeError, "layer_norm should be of type bool"),
    (lambda: LanguageModelConfig(hidden_size=True), TypeError, "hidden_size should be of type int, got: bool"),
    (lambda: TaggerConfig(forget_bias=math.nan), ValueError, "forget_bias must be a finite number, got nan"),
    (lambda: TaggerConfig(hidden_size=True), TypeError, "hidden_size should be of type int, got: bool"),
])
def test_wrong_types_and_nan_are_refused(make, error, message):
    with pytest.raises(error, match=message):
        make()


def test_config_overrides_refuse_nan_and_words_for_flags():
    with pytest.raises(ConfigError, match="finite"):
        make_config("small", ["--model.ar_alpha=nan"])
    with pytest.raises(ConfigError, match="tie_weights"):
        make_config("small", ["--model.tie_weights=maybe"])
