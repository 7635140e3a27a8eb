"""What the trainers share (the budget flags become overrides of each config section; the closing lines) and what the
evaluation commands share (their arguments, where the confusion matrix goes)."""

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


def test_every_trainer_closes_with_the_same_lines(capsys, tmp_path):
    import signal

    from lstmkit.commands._budget import finish_training
    from lstmkit.train import LoopState, RunResult

    state = LoopState(step=12, epoch=2, train_seconds=4.0, tokens=800)
    done = RunResult(state, "max_steps", None, tmp_path)
    assert finish_training(done, "train-tagger", tmp_path, "words", ["best dev accuracy 0.5"], "tagger: X") == 0
    assert capsys.readouterr().out == ("stopped (max_steps) after 4 s of training, step 12, epoch 2, 200 words/s; "
                                       "best dev accuracy 0.5\ntagger: X\n")
    stopped = RunResult(LoopState(), "signal", signal.SIGTERM, tmp_path)
    assert finish_training(stopped, "train-lm", tmp_path, "tokens", [], "unused") == 128 + signal.SIGTERM
    assert capsys.readouterr().out.splitlines() == [
        "stopped (signal) after 0 s of training, step 0, epoch 0, 0 tokens/s",
        f"interrupted: resume with  lstmkit train-lm --resume {tmp_path}"]


@pytest.mark.parametrize("command", ["eval_tagger", "eval_classifier"])
def test_the_evaluation_commands_share_their_arguments(command, tmp_path):
    import importlib

    from lstmkit.commands._evaluation import confusion_path

    parser = argparse.ArgumentParser()
    importlib.import_module(f"lstmkit.commands.{command}").configure_parser(parser)
    run = str(tmp_path)
    assert confusion_path(parser.parse_args([run, "--split", "dev"])) == tmp_path / "confusion-dev.png"
    assert confusion_path(parser.parse_args([run, "--confusion", "c.png"])).name == "c.png"
    assert confusion_path(parser.parse_args([run, "--no-confusion"])) is None
    args = parser.parse_args([run, "--json", "--batch-size", "4", "--checkpoint", "last", "--data", "d"])
    assert (args.json, args.batch_size, args.checkpoint, args.data) == (True, 4, "last", "d")
