"""Scoring predicted tags: accuracy, per-tag precision / recall / F1, a confusion matrix and its picture.

Pure bookkeeping over tag strings; :func:`lstmkit.tagger.api.evaluate_tagger` runs a model and calls
:func:`score_tags`.
"""

from __future__ import annotations

import dataclasses
import os
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["TagScore", "TaggingScores", "score_tags", "plot_confusion"]


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
