"""The language-model commands end to end on tiny self-written corpora: train-lm, eval-lm, generate, next-word, plot;
exact resume after SIGKILL; every bad input gives one line on stderr and exit code 2, leaving run directories intact."""

import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch

from helpers import REPO
from lm_corpus import TINY_OVERRIDES, write_char_corpus, write_word_corpus
from lstmkit.cli import main
from lstmkit.train import load_checkpoint


def lstmkit(capsys, *argv):
    """Run ``lstmkit ARGV`` in-process; returns (exit code, stdout, stderr)."""
    capsys.readouterr()
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def train(capsys, run_dir, data, *extra):
    code, out, err = lstmkit(capsys, "train-lm", "--data", data, "--run-dir", run_dir, *TINY_OVERRIDES, *extra)
    assert code == 0, err
    return out


def snapshot(directory):
    """File -> SHA-256 of everything under ``directory`` (to prove a failed command changed nothing)."""
    return {str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(directory.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny word-level run shared by the read-only tests."""
    root = tmp_path_factory.mktemp("lm")
    data = write_word_corpus(root / "corpus")
    run = root / "run"
    code = main(["train-lm", "--data", str(data), "--run-dir", str(run), *TINY_OVERRIDES,
                 "--train.max_steps=30", "--train.eval_every=10", "--optim.lr=10"])
    assert code == 0
    return run, data


def test_train_lm_writes_a_run_directory(trained):
    run, _ = trained
    assert {"checkpoint", "best", "metrics.jsonl"} <= {p.name for p in run.iterdir()}
    checkpoint = load_checkpoint(run)
    assert checkpoint.extra["loop"]["step"] == 30
    info = checkpoint.extra["task"]
    assert info["kind"] == "language_model" and info["level"] == "word"
    assert info["unknown_counts"]["valid"] == 2  # "zebra" and "unicorn" are not in train
    assert checkpoint.model_state["embedding.weight"].shape[1] == 8
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert {r["split"] for r in records} == {"train", "valid"}
    assert all("ppl" in r for r in records if r["split"] == "valid")


def test_eval_lm_json(capsys, trained):
    run, _ = trained
    code, out, _ = lstmkit(capsys, "eval-lm", run, "--split", "test", "--json")
    assert code == 0
    result = json.loads(out)
    assert {"split", "loss", "ppl", "tokens"} <= set(result) and result["split"] == "test"
    assert result["ppl"] == pytest.approx(2.718281828 ** result["loss"])
    assert result["tokens"] > 0
    code, out, _ = lstmkit(capsys, "eval-lm", run, "--split", "valid")
    assert code == 0 and out.startswith("valid: loss") and "perplexity" in out
    assert "(2 unseen in training, read as <unk>)" in out


def test_generate_is_deterministic_with_a_seed(capsys, trained):
    run, _ = trained
    args = ("generate", run, "--prompt", "the cat", "--words", "12", "--seed", "7", "--top-k", "5",
            "--temperature", "0.8")
    first, second = lstmkit(capsys, *args), lstmkit(capsys, *args)
    assert first[0] == 0 and first == second
    assert first[1].startswith("the cat")  # the prompt, then the sampled words (or an <eos> line break)
    from lstmkit.lm.api import generate

    assert generate(run, "the cat", words=12, seed=3) == generate(run, "the cat", words=12, seed=3)
    assert len(generate(run, "", words=9, seed=1).split()) <= 9


def test_next_word_probabilities_sorted(capsys, trained):
    run, _ = trained
    code, out, _ = lstmkit(capsys, "next-word", run, "--prompt", "the old", "--k", "5", "--json")
    assert code == 0
    candidates = json.loads(out)
    probabilities = [p for _, p in candidates]
    assert len(candidates) == 5
    assert probabilities == sorted(probabilities, reverse=True)
    assert 0 < sum(probabilities) <= 1 + 1e-6
    code, out, _ = lstmkit(capsys, "next-word", run, "--prompt", "the old", "--k", "3")
    assert code == 0 and len(out.splitlines()) == 3


def test_plot_writes_a_png(capsys, trained, tmp_path):
    run, _ = trained
    code, out, _ = lstmkit(capsys, "plot", run, "--output", tmp_path / "curves.png")
    assert code == 0
    png = (tmp_path / "curves.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 1000


def test_char_level_reports_bits_per_character(capsys, tmp_path):
    text = write_char_corpus(tmp_path / "chars.txt")
    train(capsys, tmp_path / "run", text, "--level", "char", "--train.max_steps=4")
    code, out, _ = lstmkit(capsys, "eval-lm", tmp_path / "run", "--json")
    result = json.loads(out)
    assert code == 0 and result["bpc"] == pytest.approx(result["loss"] / 0.6931471805599453)
    code, out, _ = lstmkit(capsys, "generate", tmp_path / "run", "--prompt", "the ", "--words", "10", "--seed", "1")
    assert code == 0 and len(out.rstrip("\n")) == 14


KILLED_RUN = textwrap.dedent(
    """
    import os, signal, sys
    from lstmkit.lm.task import make_config, train_language_model

    def kill(path, state):
        if state.step == int(sys.argv[2]):
            os.kill(os.getpid(), signal.SIGKILL)

    config = make_config("small", sys.argv[3:])
    train_language_model(config, sys.argv[1], on_checkpoint=kill)
    """
)


def test_sigkill_then_resume_ends_with_identical_parameters(capsys, tmp_path):
    data = write_word_corpus(tmp_path / "corpus")
    overrides = [*TINY_OVERRIDES, f"--data.path={data}", "--train.max_steps=12", "--train.eval_every=6"]
    train(capsys, tmp_path / "whole", data, "--train.max_steps=12", "--train.eval_every=6")
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1"}
    killed = subprocess.run([sys.executable, "-c", KILLED_RUN, str(tmp_path / "split"), "6", *overrides],
                            env=env, capture_output=True, text=True, timeout=120)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert load_checkpoint(tmp_path / "split").extra["loop"]["step"] == 6
    code, out, err = lstmkit(capsys, "train-lm", "--resume", tmp_path / "split")
    assert code == 0, err
    whole, split = load_checkpoint(tmp_path / "whole"), load_checkpoint(tmp_path / "split")
    assert split.extra["loop"]["step"] == 12
    for key, value in whole.model_state.items():
        assert torch.equal(value, split.model_state[key]), key
    assert whole.optimizer_state["optimizer"]["ntasgd"] == split.optimizer_state["optimizer"]["ntasgd"]


def test_ctrl_c_checkpoints_and_exits_cleanly(tmp_path):
    data = write_word_corpus(tmp_path / "corpus")
    run = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "lstmkit.cli", "train-lm", "--data", str(data), "--run-dir", str(run),
         *TINY_OVERRIDES, "--train.max_steps=1000000"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not (run / "metrics.jsonl").exists() or not (run / "metrics.jsonl").read_text().strip():
            assert process.poll() is None and time.monotonic() < deadline
            time.sleep(0.1)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 130, err
    assert "Traceback" not in err and "interrupted: resume with" in out
    state = load_checkpoint(run).extra["loop"]
    assert state["step"] >= 2


# ------------------------------------------------------------------------------------------------------ bad input


def expect_error(capsys, match, *argv):
    code, out, err = lstmkit(capsys, *argv)
    assert code == 2, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err and match in lines[0], lines[0]
    return lines[0]


def test_bad_corpus_inputs(capsys, tmp_path):
    expect_error(capsys, "no such directory", "train-lm", "--data", tmp_path / "missing", *TINY_OVERRIDES)

    partial = tmp_path / "partial"
    partial.mkdir()
    (partial / "ptb.train.txt").write_text("a b c\n")
    expect_error(capsys, "missing ptb.valid.txt, ptb.test.txt", "train-lm", "--data", partial, *TINY_OVERRIDES)

    empty = write_word_corpus(tmp_path / "empty")
    (empty / "ptb.valid.txt").write_text("")
    expect_error(capsys, "ptb.valid.txt: file is empty", "train-lm", "--data", empty, *TINY_OVERRIDES)

    binary = write_word_corpus(tmp_path / "binary")
    (binary / "ptb.train.txt").write_bytes(b"one two\nthree \xff four\n")
    line = expect_error(capsys, "line 2", "train-lm", "--data", binary, *TINY_OVERRIDES)
    assert "ptb.train.txt" in line and "0xff" in line

    short = write_word_corpus(tmp_path / "short", train_lines=3)
    expect_error(capsys, "train split has", "train-lm", "--data", short, *TINY_OVERRIDES)
    assert not any((tmp_path / name).exists() for name in ("runs",))


def test_bad_options(capsys, tmp_path):
    data = write_word_corpus(tmp_path / "corpus")
    run = tmp_path / "run"
    expect_error(capsys, "unknown preset 'huge'", "train-lm", "--data", data, "--preset", "huge", "--run-dir", run)
    expect_error(capsys, "bad override '--bogus'", "train-lm", "--data", data, "--bogus", "--run-dir", run)
    expect_error(capsys, "unknown config key 'model.bogus'", "train-lm", "--model.bogus=3", "--run-dir", run)
    expect_error(capsys, "bad value for 'optim.lr'", "train-lm", "--optim.lr=fast", "--run-dir", run)
    expect_error(capsys, "--max-seconds must be >= 0", "train-lm", "--max-seconds", "-4", "--run-dir", run)
    expect_error(capsys, "invalid choice", "train-lm", "--level", "byte", "--run-dir", run)
    expect_error(capsys, "invalid choice", "eval-lm", run, "--split", "dev")
    expect_error(capsys, "no such run directory", "eval-lm", tmp_path / "nowhere")
    expect_error(capsys, "unrecognized arguments", "eval-lm", run, "--model.x=1")
    assert not run.exists()


def test_checkpoint_problems_leave_the_run_directory_intact(capsys, tmp_path):
    data = write_word_corpus(tmp_path / "corpus")
    run = tmp_path / "run"
    train(capsys, run, data, "--train.max_steps=4")
    before = snapshot(run)

    expect_error(capsys, "already holds a run", "train-lm", "--data", data, "--run-dir", run, *TINY_OVERRIDES)
    other = write_word_corpus(tmp_path / "other", extra_words=("zeppelin", "airship"))
    expect_error(capsys, "another vocabulary", "eval-lm", run, "--data", other)
    expect_error(capsys, "another vocabulary", "train-lm", "--resume", run, "--data", other)
    assert snapshot(run) == before

    damaged = tmp_path / "damaged"
    train(capsys, damaged, data, "--train.max_steps=4")
    weights = damaged / "best" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-10] + b"0123456789")
    expect_error(capsys, "model.safetensors is damaged", "eval-lm", damaged)
    expect_error(capsys, "model.safetensors is damaged", "generate", damaged, "--prompt", "the")
    (damaged / "checkpoint" / "state.json").write_text("{}")
    expect_error(capsys, "state.json is truncated", "train-lm", "--resume", damaged)
    (damaged / "checkpoint" / "manifest.json").unlink()
    expect_error(capsys, "manifest.json is missing", "eval-lm", damaged, "--checkpoint", "last")


def test_a_real_process_prints_one_line_and_no_traceback(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "lstmkit.cli", "train-lm", "--data", str(tmp_path / "nope")],
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert done.stderr.startswith("lstmkit train-lm: error:") and "no such directory" in done.stderr


def test_demo_trains_evaluates_generates_and_lists_candidates(capsys, tmp_path):
    from lstmkit import demo

    assert demo.main(["--seconds", "0.5", "--run-dir", str(tmp_path / "demo"), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "validation perplexity" in out and "Generated text" in out and "Most likely next words" in out
    assert (tmp_path / "demo" / "best").is_dir()


def test_explain_plots_a_trained_language_models_gates(capsys, trained, tmp_path):
    run, _ = trained
    out = tmp_path / "gates.png"
    code, stdout, err = lstmkit(capsys, "explain", "--model", run, "--text", "the cat sat on the mat", "--out", out, "--layer", "1")
    assert code == 0, err
    saturation = tmp_path / "gates-saturation.png"
    for path in (out, saturation):
        assert path.stat().st_size > 5000 and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert str(path) in stdout
    code, _, err = lstmkit(capsys, "explain", "--model", run, "--text", "the cat", "--layer", "7")
    assert code == 2 and err.count("\n") == 1 and "--layer 7: the language model has" in err
