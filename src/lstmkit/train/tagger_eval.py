"""Scoring a tagger: accuracy, per-tag precision / recall / F1, a confusion matrix and its picture.

Command line: ``lstmkit eval-tagger RUN_DIR [--split test] [--data DIR_OR_FILE] [--json] [--confusion PNG]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from lstmkit.data import DataError, Sentence, find_conllu_splits, read_conllu, sentence_tags

from .tagger import LoadedTagger, load_tagger, tag_sentences, threads_argument

__all__ = ["TagScore", "TaggingScores", "score_tags", "evaluate_tagger", "plot_confusion"]


@dataclasses.dataclass(frozen=True)
class TagScore:
    """Precision, recall and F1 of one tag; ``support`` gold words, ``predicted`` words given the tag."""

    precision: float
    recall: float
    f1: float
    support: int
    predicted: int


@dataclasses.dataclass(frozen=True)
class TaggingScores:
    """How well predicted tags match gold tags.

    Attributes:
        split: the name of what was scored (``"test"``, a file name...).
        accuracy: correct words / words.
        tokens: words scored; correct: words tagged right; sentences: sentences scored.
        unknown_tokens, unknown_accuracy: the same for words outside the training vocabulary (``None`` when not
            known; the accuracy is also ``None`` when there are no such words).
        per_tag: :class:`TagScore` by tag.
        labels: the tags in matrix order (training tag order, then tags seen only here).
        confusion: ``confusion[i][j]`` words with gold tag ``labels[i]`` predicted as ``labels[j]``.
    """

    split: str
    accuracy: float
    tokens: int
    correct: int
    sentences: int
    unknown_tokens: int | None
    unknown_accuracy: float | None
    per_tag: dict[str, TagScore]
    labels: list[str]
    confusion: list[list[int]]

    @property
    def macro_f1(self) -> float:
        """Unweighted mean F1 over the tags that occur in the gold data."""
        scores = [score.f1 for score in self.per_tag.values() if score.support > 0]
        return sum(scores) / len(scores) if scores else 0.0

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data: ``split``, ``accuracy``, ``tokens`` first, then the rest."""
        data = {
            "split": self.split,
            "accuracy": self.accuracy,
            "tokens": self.tokens,
            "correct": self.correct,
            "sentences": self.sentences,
            "unknown_tokens": self.unknown_tokens,
            "unknown_accuracy": self.unknown_accuracy,
            "macro_f1": self.macro_f1,
            "per_tag": {tag: dataclasses.asdict(score) for tag, score in self.per_tag.items()},
            "labels": list(self.labels),
            "confusion": [list(row) for row in self.confusion],
        }
        return data

    def report(self) -> str:
        """A readable table: overall accuracy, then precision / recall / F1 per tag."""
        lines = [f"{self.split}: accuracy {100 * self.accuracy:.2f}% ({self.correct}/{self.tokens} words, "
                 f"{self.sentences} sentences)"]
        if self.unknown_tokens:
            lines.append(f"  words unseen in training: {100 * self.unknown_accuracy:.2f}% of {self.unknown_tokens}")
        lines.append(f"  {'tag':<8} {'precision':>9} {'recall':>7} {'f1':>7} {'support':>8}")
        for tag in self.labels:
            score = self.per_tag[tag]
            lines.append(f"  {tag:<8} {100 * score.precision:9.2f} {100 * score.recall:7.2f} "
                         f"{100 * score.f1:7.2f} {score.support:8d}")
        lines.append(f"  macro F1 {100 * self.macro_f1:.2f}")
        return "\n".join(lines)


def _ratio(numerator: int, denominator: int) -> float:
    return numerator / denominator if denominator else 0.0


def score_tags(
    gold: Sequence[Sequence[str]],
    predicted: Sequence[Sequence[str]],
    split: str = "",
    label_order: Sequence[str] = (),
    known: Sequence[Sequence[bool]] | None = None,
) -> TaggingScores:
    """Score predicted tag lists against gold ones.

    Args:
        gold, predicted: one tag list per sentence, of equal lengths.
        split: a name for the result.
        label_order: tags first in the matrix, in this order (e.g. the training tag vocabulary).
        known: per word, whether it is in the training vocabulary (for the unseen-word accuracy).

    Raises:
        ValueError: different numbers of sentences or of words in a sentence, or no words at all.
    """
    if len(gold) != len(predicted):
        raise ValueError(f"{len(gold)} gold sentences but {len(predicted)} predicted")
    pairs: Counter[tuple[str, str]] = Counter()
    unknown = unknown_correct = 0
    for index, (gold_tags, predicted_tags) in enumerate(zip(gold, predicted)):
        if len(gold_tags) != len(predicted_tags):
            raise ValueError(f"sentence {index}: {len(gold_tags)} gold tags but {len(predicted_tags)} predicted")
        pairs.update(zip(gold_tags, predicted_tags))
        if known is not None:
            for is_known, g, p in zip(known[index], gold_tags, predicted_tags):
                if not is_known:
                    unknown += 1
                    unknown_correct += g == p
    tokens = sum(pairs.values())
    if tokens == 0:
        raise ValueError("nothing to score: no words")
    seen = {tag for pair in pairs for tag in pair}
    labels = [tag for tag in label_order if tag in seen]
    labels += sorted(seen - set(labels))
    position = {tag: i for i, tag in enumerate(labels)}
    confusion = [[0] * len(labels) for _ in labels]
    for (g, p), count in pairs.items():
        confusion[position[g]][position[p]] += count
    correct = sum(confusion[i][i] for i in range(len(labels)))
    per_tag = {}
    for i, tag in enumerate(labels):
        support = sum(confusion[i])
        predicted_count = sum(row[i] for row in confusion)
        precision, recall = _ratio(confusion[i][i], predicted_count), _ratio(confusion[i][i], support)
        f1 = _ratio(2 * confusion[i][i], support + predicted_count)
        per_tag[tag] = TagScore(precision, recall, f1, support, predicted_count)
    return TaggingScores(
        split=split,
        accuracy=correct / tokens,
        tokens=tokens,
        correct=correct,
        sentences=len(gold),
        unknown_tokens=unknown if known is not None else None,
        unknown_accuracy=_ratio(unknown_correct, unknown) if known is not None and unknown else None,
        per_tag=per_tag,
        labels=labels,
        confusion=confusion,
    )


def _gold_sentences(tagger: LoadedTagger, split: str, data: Any) -> tuple[str, list[Sentence]]:
    """``(name, sentences)`` of what to score: a list of sentences, a CoNLL-U file, or a treebank folder's split."""
    if isinstance(data, (list, tuple)):
        return split, list(data)
    source = Path(data) if data is not None else Path(tagger.config.data)
    if data is None and not tagger.config.data:
        raise DataError("the run records no treebank; pass data (a folder or a CoNLL-U file)")
    if source.is_file():
        return split, read_conllu(source)
    files = find_conllu_splits(source, required=(split,)) if split in ("train", "dev", "test") else None
    if files is None:
        raise DataError(f"unknown split {split!r}: choose train, dev or test (or pass a CoNLL-U file)")
    return split, read_conllu(files[split])


def evaluate_tagger(
    model_or_run_dir: LoadedTagger | str | os.PathLike,
    split: str = "test",
    data: str | os.PathLike | Sequence[Sentence] | None = None,
    batch_size: int | None = None,
) -> TaggingScores:
    """Tag gold sentences and score the tags of the run's tagset (UPOS or XPOS).

    Args:
        model_or_run_dir: a :class:`~lstmkit.train.tagger.LoadedTagger` or a run directory.
        split: ``"train"``, ``"dev"`` or ``"test"``: which file of the treebank folder to score (also the name
            given to the result).
        data: a treebank folder (default: the one the run was trained on), a CoNLL-U file, or sentences.
        batch_size: sentences per batch (default: the run's ``eval_batch_size``).

    Raises:
        DataError: missing or malformed data. CheckpointError: not a tagger run directory.

    Example::

        >>> scores = evaluate_tagger("runs/ewt-upos", split="test")   # doctest: +SKIP
        >>> scores.accuracy, scores.tokens                             # doctest: +SKIP
        (0.95..., 25094)
    """
    tagger = model_or_run_dir if isinstance(model_or_run_dir, LoadedTagger) else load_tagger(model_or_run_dir)
    name, sentences = _gold_sentences(tagger, split, data)
    gold = [sentence_tags(sentence, tagger.tagset) for sentence in sentences]
    for index, tags in enumerate(gold):
        if "_" in tags:
            where = sentences[index].comment_value("sent_id") or f"number {index + 1}"
            raise DataError(f"sentence {where} of {name} has a word without a gold {tagger.tagset.upper()} tag")
    predicted = tag_sentences(tagger, sentences, batch_size)
    words = tagger.vocabs.words
    known = [[form in words for form in sentence.forms] for sentence in sentences]
    return score_tags(gold, predicted, name, tagger.vocabs.tags.itos[1:], known)


def plot_confusion(scores: TaggingScores, path: str | os.PathLike, title: str | None = None) -> Path:
    """Draw the confusion matrix as a PNG: rows are gold tags, columns predicted tags, colour the share of the
    row (so rare tags show as clearly as frequent ones), counts written in the cells when there are few tags.

    Returns:
        The path written.
    """
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    counts = np.asarray(scores.confusion, dtype=float)  # (K, K)
    shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)  # row-normalised
    k = len(scores.labels)
    size = max(5.0, 0.45 * k + 2)
    figure = Figure(figsize=(size + 1, size))
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    image = axes.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    axes.set_xticks(range(k), scores.labels, rotation=90, fontsize=8)
    axes.set_yticks(range(k), scores.labels, fontsize=8)
    axes.set_xlabel("predicted")
    axes.set_ylabel("gold")
    axes.set_title(title or f"{scores.split}: accuracy {100 * scores.accuracy:.2f}% on {scores.tokens} words")
    if k <= 24:
        for i in range(k):
            for j in range(k):
                if counts[i, j]:
                    colour = "white" if shares[i, j] > 0.5 else "black"
                    axes.text(j, i, f"{int(counts[i, j])}", ha="center", va="center", fontsize=6, color=colour)
    figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04, label="share of the gold tag's words")
    figure.tight_layout()
    path = Path(path)
    figure.savefig(path, dpi=120)
    return path


# ---------------------------------------------------------------------------------------------- command line


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.description = "Score a trained tagger: accuracy, per-tag precision/recall/F1 and a confusion-matrix PNG."
    parser.add_argument("run_dir", metavar="RUN_DIR", help="run directory written by lstmkit train-tagger")
    parser.add_argument("--split", default="test", choices=("train", "dev", "test"), help="default: test")
    parser.add_argument("--data", metavar="DIR_OR_FILE", default=None,
                        help="treebank folder or CoNLL-U file (default: the treebank the run was trained on)")
    parser.add_argument("--json", action="store_true", help="print the scores as one JSON object")
    parser.add_argument("--confusion", metavar="PNG", default=None,
                        help="where to draw the confusion matrix (default: RUN_DIR/confusion-SPLIT.png)")
    parser.add_argument("--no-confusion", action="store_true", help="do not draw the confusion matrix")
    parser.add_argument("--batch-size", type=int, default=None, metavar="N", help="sentences per batch")
    parser.add_argument("--threads", type=threads_argument, default=0, metavar="N",
                        help="torch CPU threads (default: 0, torch's default; OMP_NUM_THREADS sets that)")


def run(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    if args.threads:
        torch.set_num_threads(args.threads)
    tagger = load_tagger(args.run_dir)
    scores = evaluate_tagger(tagger, args.split, args.data, args.batch_size)
    seconds = time.perf_counter() - started
    picture = None
    if not args.no_confusion:
        picture = plot_confusion(scores, args.confusion or Path(args.run_dir) / f"confusion-{args.split}.png")
    if args.json:
        data = scores.to_dict()
        data["confusion_png"] = None if picture is None else str(picture)
        data["tagset"] = tagger.tagset
        json.dump(data, sys.stdout)
        sys.stdout.write("\n")
    else:
        print(f"{tagger.tagset.upper()} tagger {args.run_dir}")
        print(scores.report())
        if picture is not None:
            print(f"confusion matrix: {picture}")
        print(f"({seconds:.1f}s)")
    return 0
