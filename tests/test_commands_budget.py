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
    args = parser.parse_args(["--max-seconds", "90", "--max-epochs", "3", "--no-progress",
                              "--checkpoint-seconds", "30"])
    assert budget_overrides(args, section) == [
        f"--{section}.max_seconds=90.0", f"--{section}.max_epochs=3", f"--{section}.checkpoint_seconds=30.0",
        f"--{section}.progress=false"]
    assert budget_overrides(parser.parse_args([]), section) == []


@pytest.mark.parametrize("command", [train_lm, train_tagger])
def test_max_seconds_on_resume_counts_from_what_the_run_has_done(command):
    parser = argparse.ArgumentParser()
    command.configure_parser(parser)
    args = parser.parse_args(["--max-seconds", "3"])
    assert budget_overrides(args, "train", trained_seconds=60.0) == ["--train.max_seconds=63.0"]


def test_the_budget_line_says_how_long_it_will_train():
    from lstmkit.commands._budget import budget_line

    assert budget_line(None) == "new run: no time limit (--max-seconds S sets one)"
    assert budget_line(90.0) == "new run: will train for at most 90.0 seconds"
    assert budget_line(63.0, 60.0, 400) == ("resuming at step 400 after 60.0 s of training: will train for at most "
                                            "3.0 seconds (the run's limit: 63.0 s in total)")
    assert budget_line(60.0, 60.0, 400).endswith("will train for at most 0.0 seconds (the run's limit: 60.0 s in total)")
