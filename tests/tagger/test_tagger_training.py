"""The tagging task on the shared loop: run directories, exact resume, loading, tagging and scoring (tiny data)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from lstmkit.data import DataError, read_conllu
from lstmkit.tagger import TaggerConfig
from lstmkit.tagger.api import evaluate_tagger, load_tagger, tag_sentences, tag_text
from lstmkit.train import (
    CheckpointError,
    ConfigError,
    LoopConfig,
    RunDirectoryError,
    StepInfo,
    load_checkpoint,
    merge_from_args,
    read_metrics,
    save_checkpoint,
)
from lstmkit.tagger.task import TaggerOptimConfig, TaggingTask, TrainTaggerConfig, train_tagger
from lstmkit.tagger.metrics import plot_confusion, score_tags
from tiny_treebank import write_treebank

TINY_MODEL = TaggerConfig(word_embedding_size=12, char_embedding_size=8, char_hidden_size=10, hidden_size=16)


def tiny_config(treebank: Path, **loop) -> TrainTaggerConfig:
    loop_config = LoopConfig(**{"max_epochs": 3, "log_every": 2, "progress": False, **loop})
    return TrainTaggerConfig(data=str(treebank), batch_size=8, model=TINY_MODEL, optim=TaggerOptimConfig(lr=0.02),
                             train=loop_config)


@pytest.fixture(scope="module")
def trained(treebank, tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("runs") / "tiny"
    train_tagger(tiny_config(treebank, max_epochs=8, patience=None), run_dir)
    return run_dir


def parameters(run_dir: Path, name: str = "checkpoint") -> dict[str, torch.Tensor]:
    return load_checkpoint(run_dir, name=name).model_state


def test_a_run_directory_holds_checkpoints_metrics_and_the_tagger(trained) -> None:
    assert (trained / "checkpoint").is_dir() and (trained / "best").is_dir()
    records = read_metrics(trained)
    valid = [record for record in records if record["split"] == "valid"]
    assert len(valid) == 8 and all(0 <= record["accuracy"] <= 1 for record in valid)
    train = [record for record in records if record["split"] == "train"]
    assert train and all(record["tokens_per_second"] > 0 for record in train)
    for record in train:  # 5 steps per epoch; lr 0.02 decayed by 0.95 per epoch
        assert record["lr"] == pytest.approx(0.02 * 0.95 ** ((record["step"] - 1) // 5))
    info = load_checkpoint(trained, name="best").extra["task"]
    assert info["kind"] == "tagger" and info["config"]["model"]["hidden_size"] == 16
    assert info["vocabs"]["tags"]["itos"][0] == "<unk>"


def test_resume_continues_exactly(treebank, tmp_path) -> None:
    whole = train_tagger(tiny_config(treebank, max_steps=10, eval_every=3), tmp_path / "whole")
    # a new run takes overrides too; it stops mid-epoch 2 of 5 steps
    train_tagger(tiny_config(treebank, max_steps=10, eval_every=3), tmp_path / "split",
                 overrides=["--train.max_steps=7"])
    resumed = train_tagger(None, tmp_path / "split", resume=True, overrides=["--loop.max_steps=10"])
    assert resumed.state.step == whole.state.step == 10
    for name, tensor in parameters(tmp_path / "whole").items():
        assert torch.equal(parameters(tmp_path / "split")[name], tensor), name
    training = load_checkpoint(tmp_path / "split").optimizer_state
    assert training["optimizer"]["state"][0]["step"].item() == 10  # Adam's state came back and went on
    assert training["averaged_steps"] == 10
    whole_average = load_checkpoint(tmp_path / "whole").optimizer_state["averaged"]
    for name, tensor in whole_average.items():  # and so did the moving average of the weights
        assert torch.equal(training["averaged"][name], tensor), name


def test_resume_refuses_what_it_cannot_do(treebank, trained, tmp_path) -> None:
    with pytest.raises(ConfigError, match="only --train"):
        train_tagger(None, trained, resume=True, overrides=["--model.hidden_size=32"])
    with pytest.raises(CheckpointError, match="no checkpoint"):
        train_tagger(None, tmp_path / "empty", resume=True)
    with pytest.raises(RunDirectoryError, match="already holds a run"):
        train_tagger(tiny_config(treebank), trained)
    save_checkpoint(tmp_path / "toy", {"w": torch.zeros(1)}, extra={"task": {"kind": "toy"}, "loop": {}})
    with pytest.raises(CheckpointError, match="not a tagger run directory"):
        train_tagger(None, tmp_path / "toy", resume=True)


def test_the_kept_weights_are_a_moving_average_of_the_trained_ones(treebank, tmp_path) -> None:
    config = tiny_config(treebank, max_steps=3)
    averaged = TaggingTask(config, read_conllu(treebank / "tiny-ud-train.conllu"), [])
    plain = TaggingTask(dataclasses.replace(config, optim=dataclasses.replace(config.optim, average=0.0)),
                        read_conllu(treebank / "tiny-ud-train.conllu"), [])
    assert plain.averaged is plain.model
    history = [averaged.model.output.bias.detach().clone()]
    for step, (batch, _) in enumerate(averaged.batches(0, None)):
        averaged.train_step(batch, StepInfo(step, 0, 0.0, None))
        history.append(averaged.model.output.bias.detach().clone())
        if step == 2:
            break
    expected = history[0]
    for n, weights in enumerate(history[1:]):  # decay (1 + n) / (10 + n) while below 0.999
        expected = expected + (1 - (1 + n) / (10 + n)) * (weights - expected)
    torch.testing.assert_close(averaged.averaged.output.bias, expected)
    assert not torch.equal(averaged.averaged.output.bias, averaged.model.output.bias)


def test_bad_treebanks_are_data_errors(tmp_path) -> None:
    with pytest.raises(ConfigError, match="--data"):
        train_tagger(TrainTaggerConfig(), tmp_path / "run")
    with pytest.raises(DataError, match="no such directory"):
        train_tagger(TrainTaggerConfig(data=str(tmp_path / "missing")), tmp_path / "run")
    write_treebank(tmp_path / "tb")
    (tmp_path / "tb" / "tiny-ud-train.conllu").write_text("1\tword\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"tiny-ud-train.conllu: line 1: expected 10 tab-separated columns"):
        train_tagger(TrainTaggerConfig(data=str(tmp_path / "tb")), tmp_path / "run")


def test_load_tag_and_evaluate_through_the_api(treebank, trained) -> None:
    tagger = load_tagger(trained)
    assert not tagger.model.training and tagger.tagset == "upos"
    tags = tag_sentences(tagger, [["the", "cat", "sees", "a", "dog", "."], ["Anna", "!"]])
    assert [len(t) for t in tags] == [6, 2] and all(tag in tagger.vocabs.tags.itos[1:] for t in tags for tag in t)
    assert tag_sentences(trained, [["the", "cat", "sees", "a", "dog", "."], ["Anna", "!"]]) == tags
    test = read_conllu(treebank / "tiny-ud-test.conllu")
    in_batches = tag_sentences(tagger, test, batch_size=3)
    assert in_batches == tag_sentences(tagger, test, batch_size=100)  # batching does not change the tags
    scores = evaluate_tagger(trained, split="test")
    expected = sum(g == p for sentence, tags in zip(test, in_batches) for g, p in zip(sentence.upos, tags))
    assert scores.correct == expected and scores.tokens == sum(len(sentence) for sentence in test)
    assert scores.accuracy > 0.5  # 8 epochs on 40 sentences learn something
    data = scores.to_dict()
    assert list(data)[:3] == ["split", "accuracy", "tokens"] and data["split"] == "test"
    assert evaluate_tagger(tagger, "dev", data=treebank / "tiny-ud-test.conllu").correct == scores.correct


def test_score_tags_counts_precision_recall_and_f1() -> None:
    gold = [["A", "B", "B"], ["C"]]
    predicted = [["A", "B", "A"], ["B"]]
    scores = score_tags(gold, predicted, "toy", label_order=["B", "A"], known=[[True, False, True], [False]])
    assert (scores.accuracy, scores.tokens, scores.correct) == (0.5, 4, 2)
    assert scores.labels == ["B", "A", "C"]
    assert scores.confusion == [[1, 1, 0], [0, 1, 0], [1, 0, 0]]
    b = scores.per_tag["B"]
    assert (b.precision, b.recall, b.support, b.predicted) == (0.5, 0.5, 2, 2)
    assert scores.per_tag["A"].f1 == pytest.approx(2 / 3) and scores.per_tag["C"].f1 == 0.0
    assert (scores.unknown_tokens, scores.unknown_accuracy) == (2, 0.5)
    with pytest.raises(ValueError, match="sentence 0"):
        score_tags([["A"]], [["A", "B"]])


def test_confusion_png(trained, tmp_path) -> None:
    path = plot_confusion(evaluate_tagger(trained, "dev"), tmp_path / "confusion.png")
    data = path.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 5000


def test_tag_text_plain_and_conllu(treebank, trained) -> None:
    tagger = load_tagger(trained)
    plain = tag_text(tagger, "the cat sees a dog .\n\nAnna likes Paris !\n")
    assert plain.format == "plain" and (plain.sentences, plain.tokens) == (2, 10)
    lines = plain.text.splitlines()
    assert len(lines) == 2 and [item.rsplit("/", 1)[0] for item in lines[1].split()] == ["Anna", "likes", "Paris", "!"]
    original = (treebank / "tiny-ud-test.conllu").read_text(encoding="utf-8")
    tagged = tag_text(tagger, original)
    assert tagged.format == "conllu"
    for before, after in zip(original.splitlines(), tagged.text.splitlines()):
        columns_before, columns_after = before.split("\t"), after.split("\t")
        assert len(columns_before) == len(columns_after)
        if len(columns_before) == 10:
            del columns_before[3], columns_after[3]
        assert columns_before == columns_after  # only the UPOS column changed
    with pytest.raises(DataError, match="empty input"):
        tag_text(tagger, " \n\n")


def test_load_tagger_errors(tmp_path) -> None:
    with pytest.raises(CheckpointError, match="no such run directory"):
        load_tagger(tmp_path / "missing")
    with pytest.raises(CheckpointError, match="not a tagger run directory"):
        load_tagger(tmp_path)
    save_checkpoint(tmp_path, {"w": torch.zeros(1)}, extra={"task": {"kind": "toy"}}, name="best")
    with pytest.raises(CheckpointError, match="holds no tagger"):
        load_tagger(tmp_path)


def test_config_overrides_reach_every_section() -> None:
    config = merge_from_args(TrainTaggerConfig(), ["--tagset=xpos", "--model.hidden_size=7", "--loop.patience=none"])
    assert (config.tagset, config.model.hidden_size, config.train.patience) == ("xpos", 7, None)
    with pytest.raises(ConfigError, match="tagset"):
        merge_from_args(TrainTaggerConfig(), ["--tagset=deprel"])
    assert dataclasses.replace(config, seed=3).seed == 3
