"""The ULMFiT commands end to end on tiny self-written data: train-lm -> finetune-lm -> train-classifier ->
eval-classifier -> classify, the from-scratch baseline, exact resume, and the one-line errors."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest
import torch

from lm_corpus import TINY_OVERRIDES, write_word_corpus
from lstmkit.classify import load_classifier
from lstmkit.cli import COMMANDS, main
from lstmkit.lm.api import load_language_model
from lstmkit.train.checkpoint import load_checkpoint

from tiny_sentiment import write_mr, write_sst

TINY_HEAD = ["--model.head_hidden=8", "--data.batch_size=8", "--train.progress=false", "--threads=1"]
TINY_SCRATCH = ["--model.encoder.embedding_size=8", "--model.encoder.hidden_size=12", *TINY_HEAD]


def call(capsys, *argv: str) -> tuple[int, str, str]:
    code = main([str(arg) for arg in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("classify")
    return {"sst": write_sst(root / "sst"), "mr": write_mr(root / "mr", per_class=40), "root": root,
            "corpus": write_word_corpus(root / "corpus", extra_words=("great", "dull", "Film"))}


@pytest.fixture(scope="module")
def finetuned(data) -> Path:
    """A tiny pretrained language model fine-tuned on the tiny SST text."""
    lm, ft = data["root"] / "lm", data["root"] / "ft"
    assert main(["train-lm", "--data", str(data["corpus"]), "--run-dir", str(lm), *TINY_OVERRIDES,
                 "--train.max_steps=4"]) == 0
    assert main(["finetune-lm", str(lm), "--data", str(data["sst"]), "--run-dir", str(ft), "--max-epochs", "1",
                 "--no-progress", "--data.batch_size=4", "--data.bptt=6", "--data.eval_batch_size=2"]) == 0
    return ft


def test_the_commands_are_registered():
    assert {"finetune-lm", "train-classifier", "eval-classifier", "classify"} <= set(COMMANDS)


def test_finetune_keeps_the_pretrained_vocabulary_first_and_records_its_origin(data, finetuned):
    pretrained, tuned = load_language_model(data["root"] / "lm"), load_language_model(finetuned)
    assert tuned.vocab.itos[: len(pretrained.vocab)] == pretrained.vocab.itos
    assert {"great", "dull", "film", "movie"} <= set(tuned.vocab.itos)
    info = load_checkpoint(finetuned, name="best").extra["task"]["finetune"]
    assert info["pretrained_vocab_size"] == len(pretrained.vocab)
    assert info["rows"]["case"] >= 1  # "film" from "Film"


def test_train_eval_and_classify_with_a_finetuned_encoder(data, finetuned, capsys, tmp_path):
    run = tmp_path / "sst5"
    code, out, _ = call(capsys, "train-classifier", "--encoder", finetuned, "--data", data["sst"], "--task", "sst5",
                        "--out", run, "--max-epochs", "2", "--gradual-unfreezing", "0.25", "--discriminative-lr",
                        "2.6", "--stlr", "on", *TINY_HEAD)
    assert code == 0, out
    assert out.count("evaluation ") == 2 and "stopped (max_epochs)" in out and (run / "best").is_dir()
    clf = load_classifier(run)
    assert clf.labels[0] == "very negative" and clf.vocab == load_language_model(finetuned).vocab
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["split"] for r in records].count("valid") == 2

    png = tmp_path / "confusion.png"
    code, out, _ = call(capsys, "eval-classifier", run, "--split", "test", "--json", "--confusion", png)
    assert code == 0
    result = json.loads(out)
    assert result["split"] == "test" and result["examples"] == 20 and 0 <= result["accuracy"] <= 1
    assert set(result["per_class"]["neutral"]) >= {"precision", "recall", "f1", "support"}
    assert sum(map(sum, result["confusion"])) == 20
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and result["confusion_png"] == str(png)

    texts = tmp_path / "texts.txt"
    texts.write_text("A great film.\nthe dull script\n\n", encoding="utf-8")
    code, out, _ = call(capsys, "classify", run, "--input", texts)
    lines = [line.split("\t") for line in out.splitlines()]
    assert code == 0 and len(lines) == 3
    assert all(label in clf.labels and 0 < float(p) <= 1 for label, p in lines)

    # int8: the same commands with --precision int8 (close to float32 on this tiny model, but a different function)
    code, out, _ = call(capsys, "eval-classifier", run, "--split", "test", "--json", "--no-confusion",
                        "--precision", "int8")
    int8 = json.loads(out)
    assert code == 0 and int8["precision"] == "int8" and result["precision"] == "float32"
    assert int8["examples"] == 20 and abs(int8["accuracy"] - result["accuracy"]) <= 0.1
    code, out, _ = call(capsys, "classify", run, "--input", texts, "--precision", "int8")
    assert code == 0 and [line.split("\t")[0] for line in out.splitlines()] == [label for label, _ in lines]


def test_the_from_scratch_baseline_learns_mr_and_classify_reads_stdin(data, capsys, tmp_path, monkeypatch):
    run = tmp_path / "mr"
    code, out, _ = call(capsys, "train-classifier", "--data", data["mr"], "--task", "mr", "--fold", "2", "--out",
                        run, "--max-epochs", "20", "--lr", "0.02", *TINY_SCRATCH)
    assert code == 0 and "encoder from scratch" in out
    code, out, _ = call(capsys, "eval-classifier", run, "--json", "--no-confusion")
    result = json.loads(out)
    assert result["examples"] == 8 and result["accuracy"] >= 0.85 and result["confusion_png"] is None
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"a gorgeous , witty film\nboring , flat cast\n")))
    code, out, _ = call(capsys, "classify", run, "--input", "-")
    assert code == 0 and [line.split("\t")[0] for line in out.splitlines()] == ["positive", "negative"]


def test_an_ensemble_averages_its_members_probabilities(data, capsys, tmp_path):
    """eval-classifier and classify take several run directories: the mean of the members' class probabilities
    decides, members of another fold are refused."""
    from lstmkit.classify import classify_texts, evaluate_classifier

    common = ["--data", data["mr"], "--task", "mr", "--train.max_steps=6", "--lr", "0.02", *TINY_SCRATCH]
    a, b, other = tmp_path / "a", tmp_path / "b", tmp_path / "other"
    for run, extra in ((a, ["--fold", "2"]), (b, ["--fold", "2", "--seed", "7"]), (other, ["--fold", "3"])):
        assert call(capsys, "train-classifier", "--out", run, *extra, *common)[0] == 0
    texts = ["a gorgeous , witty film", "boring , flat cast", "the film", "great great dull"]
    one, two = classify_texts(a, texts), classify_texts(b, texts)
    both = classify_texts([a, b], texts)
    for x, y, mean in zip(one, two, both):  # two classes: P(label) of a member is p or 1 - p
        p_x = x.probability if x.label == mean.label else 1 - x.probability
        p_y = y.probability if y.label == mean.label else 1 - y.probability
        assert mean.probability == pytest.approx((p_x + p_y) / 2, abs=1e-6) and mean.probability >= 0.5

    code, out, _ = call(capsys, "eval-classifier", a, b, "--split", "dev", "--json", "--no-confusion")
    result = json.loads(out)
    assert code == 0 and result["runs"] == [str(load_classifier(r).path) for r in (a, b)]
    assert result["accuracy"] == evaluate_classifier([a, b], "dev").accuracy and result["examples"] == 8
    (tmp_path / "texts.txt").write_text("\n".join(texts) + "\n", encoding="utf-8")
    code, out, _ = call(capsys, "classify", a, b, "--input", tmp_path / "texts.txt")
    assert code == 0 and out == "".join(f"{p.label}\t{p.probability:.4f}\n" for p in both)
    code, _, err = call(capsys, "eval-classifier", a, other)
    assert code == 2 and "data.fold is 2 for one and 3 for the other" in err and len(err.strip().splitlines()) == 1


def test_resume_continues_exactly(data, capsys, tmp_path):
    common = ["--data", data["mr"], "--task", "mr", "--stlr", "off", "--gradual-unfreezing", "0", *TINY_SCRATCH]
    whole, split = tmp_path / "whole", tmp_path / "split"
    assert call(capsys, "train-classifier", "--out", whole, "--train.max_steps=10", *common)[0] == 0
    assert call(capsys, "train-classifier", "--out", split, "--train.max_steps=4", *common)[0] == 0
    code, out, _ = call(capsys, "train-classifier", "--resume", split, "--loop.max_steps=10")
    assert code == 0 and "step 10," in out
    a, b = load_checkpoint(whole).model_state, load_checkpoint(split).model_state
    assert a.keys() == b.keys() and all(torch.equal(a[key], b[key]) for key in a)


def test_resume_max_seconds_means_more_seconds(data, capsys, tmp_path):
    """As for train-lm and train-tagger: on resume, --max-seconds S is S more seconds than the run has trained, and
    the first line says so; without it the run keeps its total (the schedule is laid out over it)."""
    from lstmkit.commands._budget import stored_progress

    run = tmp_path / "run"
    common = ["--data", data["mr"], "--task", "mr", *TINY_SCRATCH]
    code, out, _ = call(capsys, "train-classifier", "--out", run, "--max-seconds", "1000", "--train.max_steps=3",
                        *common)
    assert code == 0 and out.splitlines()[0] == "new run: will train for at most 1000.0 seconds"
    trained, step, limit = stored_progress(run)
    assert step == 3 and limit == 1000.0
    code, out, _ = call(capsys, "train-classifier", "--resume", run, "--max-seconds", "3000", "--train.max_steps=5")
    assert code == 0 and out.splitlines()[0].startswith(f"resuming at step 3 after {trained:.1f} s of training: ")
    assert f"(the run's limit: {trained + 3000:.1f} s in total)" in out.splitlines()[0]
    assert stored_progress(run)[1:] == (5, pytest.approx(trained + 3000))
    code, out, _ = call(capsys, "train-classifier", "--resume", run, "--train.max_steps=6")
    assert code == 0 and stored_progress(run)[1:] == (6, pytest.approx(trained + 3000))


@pytest.mark.parametrize("argv, message", [
    (["train-classifier", "--data", "{mr}", "--task", "mr"], "--out RUN_DIR is required"),
    (["train-classifier", "--data", "{mr}", "--task", "mr", "--out", "{tmp}/x", "--train.max_epochs=none"],
     "needs a budget"),
    (["train-classifier", "--data", "{tmp}", "--task", "sst2", "--out", "{tmp}/y"], "no train.txt"),
    (["train-classifier", "--resume", "{tmp}/y", "--task", "sst5"], "keeps its configuration"),
    (["eval-classifier", "{tmp}"], "not a classifier run directory"),
    (["classify", "{tmp}/nowhere", "--input", "{tmp}/empty.txt"], "empty input"),
    (["finetune-lm", "{tmp}"], "--data PATH"),
])
def test_bad_input_is_one_line_and_exit_code_2(data, capsys, tmp_path, argv, message):
    (tmp_path / "empty.txt").write_text("", encoding="utf-8")
    argv = [arg.format(mr=data["mr"], tmp=tmp_path) for arg in argv]
    code, _, err = call(capsys, *argv)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
