"""Run directories under concurrency and crashes (issue 14), with real processes: one writer per run directory,
readers that always see one complete checkpoint, timer checkpoints that survive SIGKILL, metrics.jsonl consistent
with the checkpoint, and file-system errors as one line with exit code 2."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from helpers import REPO
from lm_corpus import TINY_OVERRIDES, write_word_corpus
from lstmkit.cli import main
from lstmkit.train import RunDirectoryError, checkpoint_exists, load_checkpoint, read_metrics, save_checkpoint
from lstmkit.train import checkpoint as checkpoint_module
from lstmkit.train.rundir import lock_holder, lock_run_dir

ENV = dict(os.environ, PYTHONPATH=str(REPO / "src"), LSTMKIT_THREADS="1")


def spawn(*argv: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "lstmkit.cli", *map(str, argv)], env=ENV, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kwargs)


def wait_for(condition, timeout: float = 90.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def call(capsys, *argv) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_second_writer_is_refused_and_a_sigkill_loses_at_most_the_timer(tmp_path, capsys):
    """A train-lm process trains; a second train-lm on its run directory (and a --resume) run from this process
    are refused with the holder's pid. SIGKILL the first: its timer checkpoint resumes, and metrics.jsonl holds no
    step twice."""
    corpus = write_word_corpus(tmp_path / "corpus")
    run = tmp_path / "run"
    tiny = [*TINY_OVERRIDES, "--train.checkpoint_seconds=0.2", "--train.eval_every=0", "--train.log_every=1"]
    first = spawn("train-lm", "--data", corpus, "--run-dir", run, "--max-seconds", "600", *tiny)
    try:
        wait_for(lambda: lock_holder(run) == first.pid and checkpoint_exists(run), what="the first checkpoint")
        code, out, err = call(capsys, "train-lm", "--data", corpus, "--run-dir", run, *tiny)
        assert code == 2 and out == ""
        assert f"process {first.pid} is training in it" in one_error_line(err)
        code, out, err = call(capsys, "train-lm", "--resume", run)
        assert code == 2 and out == "" and f"process {first.pid}" in one_error_line(err)
        step_before = load_checkpoint(run).extra["loop"]["step"]  # readers need no lock
        wait_for(lambda: load_checkpoint(run).extra["loop"]["step"] > step_before, what="a timer checkpoint")
    finally:
        first.send_signal(signal.SIGKILL)
        first.communicate(timeout=60)
    assert lock_holder(run) is None  # the kernel released the lock with the process
    step = load_checkpoint(run).extra["loop"]["step"]
    assert step > 0
    code, out, err = call(capsys, "train-lm", "--resume", run, "--max-seconds", "0.5")
    assert code == 0, err
    first_line = out.splitlines()[0]
    assert first_line.startswith(f"resuming at step {step} after ") and "will train for at most 0.5 seconds" in first_line
    records = [r for r in read_metrics(run) if r.get("split") == "train"]
    steps = [r["step"] for r in records]
    assert len(steps) == len(set(steps)) and steps == sorted(steps), "a step logged twice after the resume"
    assert max(steps) > step


READER_WRITER = """
import sys, torch
from lstmkit.train import save_checkpoint
from lstmkit.train.rundir import lock_run_dir
run_dir, count = sys.argv[1], int(sys.argv[2])
with lock_run_dir(run_dir):
    for step in range(1, count + 1):
        save_checkpoint(run_dir, {"w": torch.full((64,), float(step))}, {"state": {}, "param_groups": [{"lr": step}]},
                        {"step": step})
        save_checkpoint(run_dir, {"w": torch.full((8,), float(step))}, None, {"step": step}, name="best")
print("done", flush=True)
"""


def test_readers_see_one_complete_checkpoint_while_a_writer_saves(tmp_path):
    """Before versioned checkpoints a reader could mix two checkpoints' files ('rng.safetensors is damaged')."""
    save_checkpoint(tmp_path, {"w": torch.zeros(64)}, None, {"step": 0})
    save_checkpoint(tmp_path, {"w": torch.zeros(8)}, None, {"step": 0}, name="best")
    writer = subprocess.Popen([sys.executable, "-c", READER_WRITER, str(tmp_path), "60"], env=ENV, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    seen = set()
    try:
        while writer.poll() is None:
            for name in ("checkpoint", "best"):
                loaded = load_checkpoint(tmp_path, name=name)
                step = loaded.extra["step"]
                assert torch.equal(loaded.model_state["w"], torch.full_like(loaded.model_state["w"], float(step)))
                if loaded.optimizer_state is not None:
                    assert loaded.optimizer_state["param_groups"][0]["lr"] == step
                seen.add(step)
    finally:
        out, err = writer.communicate(timeout=120)
    assert writer.returncode == 0 and out.strip() == "done", err
    assert len(seen) >= 5, f"the reader saw only {len(seen)} versions; the writer was too quick to test anything"
    assert load_checkpoint(tmp_path).extra["step"] == 60
    versions = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("checkpoint."))
    assert versions == ["checkpoint.000060", "checkpoint.000061"]  # the newest two; the rest were pruned


def test_lock_is_reentrant_in_a_process_and_refuses_files(tmp_path):
    run = tmp_path / "run"
    with lock_run_dir(run):
        with lock_run_dir(run):  # the trainer locks, then fit locks again
            assert (run / ".lock").read_text().strip() == str(os.getpid())
        assert (run / ".lock").read_text().strip() == str(os.getpid())
    assert not run.exists(), "a run directory that received nothing is removed again"
    (tmp_path / "file").write_text("x")
    with pytest.raises(RunDirectoryError, match="is a file, not a directory"):
        with lock_run_dir(tmp_path / "file"):
            pass


def test_a_new_run_never_appends_to_an_abandoned_metrics_file(tmp_path, capsys):
    corpus = write_word_corpus(tmp_path / "corpus")
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text(json.dumps({"split": "train", "step": 999, "loss": 1.0}) + "\n")
    code, out, err = call(capsys, "train-lm", "--data", corpus, "--run-dir", run, "--train.max_steps=4",
                          *TINY_OVERRIDES)
    assert code == 0, err
    assert "moved to" in out and (run / "metrics.abandoned-1.jsonl").is_file()
    assert all(record["step"] <= 4 for record in read_metrics(run))


def test_resume_drops_metric_records_past_the_checkpoint(tmp_path, capsys):
    corpus = write_word_corpus(tmp_path / "corpus")
    run = tmp_path / "run"
    code, _, err = call(capsys, "train-lm", "--data", corpus, "--run-dir", run, "--train.max_steps=4",
                        *TINY_OVERRIDES)
    assert code == 0, err
    with open(run / "metrics.jsonl", "a") as file:  # what a run killed after step 4 had logged
        file.write(json.dumps({"split": "train", "step": 6, "loss": 9.0}) + "\n" + '{"split": "tr')
    code, out, err = call(capsys, "train-lm", "--resume", run, "--train.max_steps=8")
    assert code == 0, err
    assert "dropped 2 metric records logged after the checkpoint (step 4)" in out
    steps = [r["step"] for r in read_metrics(run, strict=True) if r["split"] == "train"]
    assert steps == [2, 4, 6, 8] and 9.0 not in [r["loss"] for r in read_metrics(run)]


def test_disk_full_during_a_checkpoint_is_one_line_and_keeps_the_previous_one(tmp_path, capsys, monkeypatch):
    corpus = write_word_corpus(tmp_path / "corpus")
    run = tmp_path / "run"
    real_write = checkpoint_module._write_synced
    writes = []

    def fills_the_disk(path, data):  # the second save of "checkpoint" runs out of space
        if ".checkpoint.tmp" in str(path):
            writes.append(path)
        if len(writes) > 7:  # a full checkpoint is 7 files
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        real_write(path, data)

    monkeypatch.setattr(checkpoint_module, "_write_synced", fills_the_disk)
    code, out, err = call(capsys, "train-lm", "--data", corpus, "--run-dir", run, "--train.max_steps=40",
                          "--train.eval_every=2", *TINY_OVERRIDES)
    monkeypatch.undo()
    assert code == 2
    line = one_error_line(err)
    assert "No space left on device" in line and "the previous checkpoint (step 2) is intact" in line
    assert load_checkpoint(run).extra["loop"]["step"] == 2
    assert not list(run.glob(".checkpoint.tmp-*")), "the half-written checkpoint is removed"


def test_file_system_errors_are_one_line_and_exit_2(tmp_path, capsys, monkeypatch, treebank):
    corpus = write_word_corpus(tmp_path / "corpus")
    a_file = tmp_path / "file.txt"
    a_file.write_text("x\n")
    for argv in (["train-lm", "--data", corpus, "--run-dir", a_file, *TINY_OVERRIDES],
                 ["train-tagger", "--data", treebank, "--run-dir", a_file],
                 ["train-tagger", "--data", treebank, "--out", a_file / "below"]):
        code, out, err = call(capsys, *argv)
        assert code == 2 and out == "" and "is a file, not a directory" in one_error_line(err)
    for command in ("eval-lm", "generate", "next-word", "eval-tagger"):
        extra = ["--prompt", "a"] if command == "next-word" else []
        code, _, err = call(capsys, command, a_file, *extra)
        assert code == 2 and "is a file, not a run directory" in one_error_line(err), err
    code, _, err = call(capsys, "tag", a_file, "--input", a_file)
    assert code == 2 and "is a file, not a run directory" in one_error_line(err), err

    def denied(self, *args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", str(self))

    monkeypatch.setattr(Path, "mkdir", denied)
    code, out, err = call(capsys, "train-lm", "--data", corpus, "--run-dir", tmp_path / "new", *TINY_OVERRIDES)
    monkeypatch.undo()
    assert code == 2 and one_error_line(err) == f"lstmkit train-lm: error: {tmp_path / 'new'}: Permission denied"


def test_runs_store_absolute_corpus_paths_and_take_data_on_eval_and_resume(tmp_path, capsys, monkeypatch):
    corpus = write_word_corpus(tmp_path / "corpus")
    monkeypatch.chdir(tmp_path)
    code, _, err = call(capsys, "train-lm", "--data", "corpus", "--run-dir", "run", "--train.max_steps=4",
                        *TINY_OVERRIDES)
    assert code == 0, err
    stored = load_checkpoint(tmp_path / "run").extra["task"]["config"]["data"]["path"]
    assert stored == str(corpus)
    monkeypatch.chdir(corpus)  # elsewhere: the stored path still works
    code, out, err = call(capsys, "eval-lm", tmp_path / "run", "--split", "valid")
    assert code == 0 and out.startswith("valid: loss"), err
    moved = tmp_path / "moved"
    corpus.rename(moved)
    code, _, err = call(capsys, "eval-lm", tmp_path / "run", "--data", moved)
    assert code == 0, err
    code, _, err = call(capsys, "train-lm", "--resume", tmp_path / "run", "--data", moved, "--train.max_steps=6")
    assert code == 0, err
    assert load_checkpoint(tmp_path / "run").extra["task"]["config"]["data"]["path"] == str(moved)


def test_tagger_runs_store_absolute_treebank_paths_and_resume_takes_data(treebank, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(treebank.parent)
    tiny = ["--model.word_embedding_size=8", "--model.char_embedding_size=4", "--model.char_hidden_size=4",
            "--model.hidden_size=8", "--batch_size=16", "--no-progress"]
    code, out, err = call(capsys, "train-tagger", "--data", treebank.name, "--out", tmp_path / "run",
                          "--max-epochs", "1", *tiny)
    assert code == 0, err
    assert out.splitlines()[0] == "new run: no time limit (--max-seconds S sets one)"
    assert load_checkpoint(tmp_path / "run").extra["task"]["config"]["data"] == str(treebank)
    moved = tmp_path / "moved"
    treebank.rename(moved)
    try:
        code, out, err = call(capsys, "train-tagger", "--resume", tmp_path / "run", "--data", moved,
                              "--max-epochs", "2", "--threads", "1")
        assert code == 0, err
        assert load_checkpoint(tmp_path / "run").extra["task"]["config"]["data"] == str(moved)
        code, out, err = call(capsys, "eval-tagger", tmp_path / "run", "--data", moved, "--no-confusion")
        assert code == 0, err
    finally:
        moved.rename(treebank)
