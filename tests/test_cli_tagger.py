"""The tagger's commands: train-tagger, eval-tagger and tag, run in-process through lstmkit.cli.main (plus one
real subprocess), with tiny self-written treebanks."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import REPO
from lstmkit.cli import COMMANDS, main

TINY = ["--model.word_embedding_size=12", "--model.char_embedding_size=8", "--model.char_hidden_size=10",
        "--model.hidden_size=16", "--batch_size=8", "--optim.lr=0.02", "--loop.progress=false"]


@pytest.fixture(scope="module")
def run_dir(treebank, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "tiny"
    assert main(["train-tagger", "--data", str(treebank), "--out", str(out), "--loop.max_epochs=6", *TINY]) == 0
    return out


def call(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_the_commands_are_registered() -> None:
    assert {"train-tagger", "eval-tagger", "tag"} <= set(COMMANDS)


def test_train_tagger_writes_a_run_and_reports(treebank, tmp_path, capsys) -> None:
    code, out, _ = call(capsys, "train-tagger", "--data", str(treebank), "--out", str(tmp_path / "run"),
                        "--tagset", "xpos", "--max-seconds", "60", "--loop.max_epochs=2", *TINY)
    assert code == 0
    assert out.count("evaluation ") == 2 and "stopped (max_epochs)" in out
    assert (tmp_path / "run" / "best").is_dir() and (tmp_path / "run" / "metrics.jsonl").is_file()
    code, out, _ = call(capsys, "train-tagger", "--resume", str(tmp_path / "run"), "--max-epochs", "3")
    assert code == 0 and out.count("evaluation ") == 1 and "epoch 3," in out
    code, out, _ = call(capsys, "tag", str(tmp_path / "run"), "--input", str(treebank / "tiny-ud-test.conllu"))
    assert code == 0
    word_lines = [line.split("\t") for line in out.splitlines() if line and not line.startswith("#")]
    assert all(columns[4] in {"det", "adj", "noun", "verb", "propn", "adv", "punct"} for columns in word_lines)


def test_eval_tagger_json_and_confusion_png(run_dir, capsys, tmp_path) -> None:
    png = tmp_path / "matrix.png"
    code, out, _ = call(capsys, "eval-tagger", str(run_dir), "--split", "test", "--json", "--confusion", str(png))
    assert code == 0
    data = json.loads(out)
    assert {"split", "accuracy", "tokens", "per_tag"} <= set(data)
    assert data["split"] == "test" and data["tokens"] == 63 and 0 <= data["accuracy"] <= 1
    assert set(data["per_tag"]["NOUN"]) == {"precision", "recall", "f1", "support", "predicted"}
    assert png.read_bytes().startswith(b"\x89PNG") and png.stat().st_size > 5000
    code, out, _ = call(capsys, "eval-tagger", str(run_dir), "--split", "dev")
    assert code == 0 and out.splitlines()[1].startswith("dev: accuracy ")
    assert (run_dir / "confusion-dev.png").stat().st_size > 5000


def test_tag_plain_text_file(run_dir, tmp_path, capsys) -> None:
    text = tmp_path / "input.txt"
    text.write_text("the cat sees a dog .\n\nAnna likes Paris !\n", encoding="utf-8")
    code, out, _ = call(capsys, "tag", str(run_dir), "--input", str(text))
    assert code == 0
    lines = out.splitlines()
    assert len(lines) == 2
    assert [item.rsplit("/", 1)[0] for item in lines[0].split()] == "the cat sees a dog .".split()
    assert all(item.rsplit("/", 1)[1].isupper() for line in lines for item in line.split())


def test_tag_conllu_fills_the_tag_column_only(run_dir, treebank, tmp_path, capsys) -> None:
    original = (treebank / "tiny-ud-dev.conllu").read_text(encoding="utf-8")
    output = tmp_path / "tagged.conllu"
    code, out, _ = call(capsys, "tag", str(run_dir), "--input", str(treebank / "tiny-ud-dev.conllu"),
                        "--output", str(output))
    assert code == 0 and out == ""
    tagged = output.read_text(encoding="utf-8")
    assert len(tagged.splitlines()) == len(original.splitlines())
    for before, after in zip(original.splitlines(), tagged.splitlines()):
        if before.startswith("#") or not before:
            assert before == after
        else:
            b, a = before.split("\t"), after.split("\t")
            assert b[:3] + b[4:] == a[:3] + a[4:]


def test_tag_reads_standard_input(run_dir, monkeypatch, capsys) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("Bob finds the old tree today .\n"))
    code, out, err = call(capsys, "tag", str(run_dir), "--input", "-", "--stats", "--threads", "1")
    assert code == 0 and len(out.splitlines()) == 1 and len(out.split()) == 7
    assert "7 words" in err
    monkeypatch.setattr(sys, "stdin", io.StringIO("# sent_id = x\n1\tHi\t_\t_\t_\t_\t_\t_\t_\t_\n\n"))
    code, out, _ = call(capsys, "tag", str(run_dir), "--input", "-")
    assert code == 0 and out.startswith("# sent_id = x\n1\tHi\t_\t") and out.endswith("\n\n")


def write(path: Path, text: str) -> str:
    path.write_text(text, encoding="utf-8")
    return str(path)


@pytest.mark.parametrize(
    "case, message",
    [
        ("empty file", "empty input"),
        ("blank stdin", "empty input"),
        ("stdin not UTF-8", "<stdin>: line 2: byte 0xff is not valid UTF-8"),
        ("missing input", "no such file"),
        ("malformed conllu", "line 2: expected 10 tab-separated columns, found 3"),
        ("not a run directory", "not a tagger run directory"),
        ("missing run directory", "no such run directory"),
        ("eval without test split", "no test file"),
        ("train without data", "pass --data"),
        ("train on a missing folder", "no such directory"),
        ("train into a used run", "already holds a run"),
        ("bad override", "bad value for 'model.hidden_size'"),
        ("resume nothing", "no checkpoint"),
        ("resume with a new setting", "keeps its configuration"),
        ("resume two directories", "different directories"),
        ("no run directory", "--run-dir RUN_DIR is required"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(case, message, run_dir, treebank, tmp_path, monkeypatch, capsys):
    run = str(run_dir)
    argv = {
        "empty file": ["tag", run, "--input", write(tmp_path / "empty.txt", "")],
        "blank stdin": ["tag", run, "--input", "-"],
        "stdin not UTF-8": ["tag", run, "--input", "-"],
        "missing input": ["tag", run, "--input", str(tmp_path / "nope.txt")],
        "malformed conllu": ["tag", run, "--input",
                             write(tmp_path / "bad.conllu", "# text = a\n1\ta\tb\n\n"), "--format", "conllu"],
        "not a run directory": ["tag", str(treebank), "--input", str(treebank / "tiny-ud-dev.conllu")],
        "missing run directory": ["eval-tagger", str(tmp_path / "nowhere")],
        "eval without test split": ["eval-tagger", run, "--data", str(tmp_path)],
        "train without data": ["train-tagger", "--out", str(tmp_path / "r1")],
        "train on a missing folder": ["train-tagger", "--data", str(tmp_path / "none"), "--out", str(tmp_path / "r2")],
        "train into a used run": ["train-tagger", "--data", str(treebank), "--out", run],
        "bad override": ["train-tagger", "--data", str(treebank), "--out", str(tmp_path / "r3"),
                         "--model.hidden_size=big"],
        "resume nothing": ["train-tagger", "--out", str(tmp_path / "r4"), "--resume"],
        "resume with a new setting": ["train-tagger", "--resume", run, "--seed", "5"],
        "resume two directories": ["train-tagger", "--resume", run, "--out", str(tmp_path / "r5")],
        "no run directory": ["train-tagger", "--data", str(treebank)],
    }[case]
    stdin = b"the cat\nsees \xff dog\n" if case == "stdin not UTF-8" else b"\n \n"
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin), encoding="utf-8"))
    code, out, err = call(capsys, *argv)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith(f"lstmkit {argv[0]}: error: ") and message in err, err
    assert out == ""


def test_a_real_process_exits_with_code_2_and_one_line(run_dir, tmp_path) -> None:
    environment = {**os.environ, "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1"}
    bad = write(tmp_path / "bad.conllu", "1\tword\t_\tNOUN\n\n")
    finished = subprocess.run(
        [sys.executable, "-m", "lstmkit.cli", "tag", str(run_dir), "--input", bad],
        capture_output=True, text=True, env=environment, timeout=120,
    )
    assert finished.returncode == 2 and finished.stdout == ""
    assert finished.stderr.splitlines() == [
        f"lstmkit tag: error: {bad}: line 1: expected 10 tab-separated columns, found 4 (read as CoNLL-U: its first "
        "token line starts with an ID and a tab; --format plain reads it as plain text)"
    ]


def test_a_reader_that_stops_early_ends_the_command_quietly(run_dir, treebank) -> None:
    environment = {**os.environ, "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1"}
    text = (treebank / "tiny-ud-train.conllu").read_text(encoding="utf-8") * 50  # more than a pipe buffer
    process = subprocess.Popen(
        [sys.executable, "-m", "lstmkit.cli", "tag", str(run_dir), "--input", "-"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=environment,
    )
    process.stdout.close()  # like `| head -0`
    _, err = process.communicate(text.encode("utf-8"), timeout=120)
    assert process.returncode == 141 and err == b""
