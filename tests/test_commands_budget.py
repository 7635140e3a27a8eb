"""The budget flags train-lm and train-tagger share become overrides of each trainer's own config section."""

from __future__ import annotations

import argparse

import pytest

from lstmkit.commands import train_lm, train_tagger
from lstmkit.commands._budget import budget_overrides


@pytest.mark.parametrize("command, section", [(train_lm, "train"), (train_tagger, "train")])
def test_budget_flags_become_section_overrides(command, section):
    parser = argparse.ArgumentParser()
    command.configure_parser(parser)
    args = parser.parse_args(["--max-seconds", "90", "--max-epochs", "3", "--no-progress"])
    assert budget_overrides(args, section) == [
        f"--{section}.max_seconds=90.0", f"--{section}.max_epochs=3", f"--{section}.progress=false"]
    assert budget_overrides(parser.parse_args([]), section) == []
