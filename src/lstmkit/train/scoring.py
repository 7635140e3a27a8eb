"""Scoring predicted labels against gold ones, for any task: per-class precision / recall / F1, the confusion matrix
and its picture.

Pure bookkeeping over label strings. The tagger counts words (:mod:`lstmkit.tagger.metrics`), the classifier counts
texts (:mod:`lstmkit.classify.api`); both build on :func:`confusion_matrix` and :func:`class_scores`, and draw with
:func:`plot_confusion`.
"""

from __future__ import annotations

import dataclasses
import os
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Protocol

__all__ = ["ClassScore", "confusion_matrix", "class_scores", "macro_f1", "plot_confusion"]


@dataclasses.dataclass(frozen=True)
class ClassScore:
    """Precision, recall and F1 of one label; ``support`` gold items with it, ``predicted`` items given it."""

    precision: float
    recall: float
    f1: float
    support: int
    predicted: int


def _ratio(numerator: int, denominator: int) -> float:
    return numerator / denominator if denominator else 0.0


def confusion_matrix(pairs: Iterable[tuple[str, str]], label_order: Sequence[str] = (), keep_absent: bool = False
                     ) -> tuple[list[str], list[list[int]]]:
    """The labels in matrix order and ``confusion[i][j]``, the items of gold ``labels[i]`` predicted as
    ``labels[j]``, of ``(gold, predicted)`` pairs. Order: the labels of ``label_order`` that occur (in that
    order), then the other labels seen, sorted; a label of ``label_order`` that never occurs is left out, unless
    ``keep_absent`` (a row and column of zeros: a classifier's matrix shows every class it has)."""
    counts: Counter[tuple[str, str]] = Counter(pairs)
    seen = {label for pair in counts for label in pair}
    labels = [label for label in label_order if keep_absent or label in seen]
    labels += sorted(seen - set(labels))
    position = {label: i for i, label in enumerate(labels)}
    confusion = [[0] * len(labels) for _ in labels]
    for (gold, predicted), count in counts.items():
        confusion[position[gold]][position[predicted]] += count
    return labels, confusion


def class_scores(labels: Sequence[str], confusion: Sequence[Sequence[int]]) -> dict[str, ClassScore]:
    """:class:`ClassScore` of each label of a confusion matrix (rows gold, columns predicted)."""
    scores = {}
    for i, label in enumerate(labels):
        support = sum(confusion[i])
        predicted = sum(row[i] for row in confusion)
        scores[label] = ClassScore(_ratio(confusion[i][i], predicted), _ratio(confusion[i][i], support),
                                   _ratio(2 * confusion[i][i], support + predicted), support, predicted)
    return scores


def macro_f1(scores: Mapping[str, ClassScore]) -> float:
    """Unweighted mean F1 over the labels that occur in the gold data."""
    f1s = [score.f1 for score in scores.values() if score.support > 0]
    return sum(f1s) / len(f1s) if f1s else 0.0


class _Confusion(Protocol):
    split: str
    accuracy: float
    labels: list[str]
    confusion: list[list[int]]


def plot_confusion(scores: _Confusion, path: str | os.PathLike, title: str | None = None) -> Path:
    """Draw the confusion matrix of ``scores`` (anything with ``split``, ``accuracy``, ``labels`` and
    ``confusion``: the tagger's and the classifier's scores) as a PNG: rows are gold labels, columns predicted
    labels, colour the share of the row (so rare labels show as clearly as frequent ones), counts written in the
    cells when there are few labels.

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
    total = int(counts.sum())
    axes.set_title(title or f"{scores.split}: accuracy {100 * scores.accuracy:.2f}% of {total}")
    if k <= 24:
        for i in range(k):
            for j in range(k):
                if counts[i, j]:
                    colour = "white" if shares[i, j] > 0.5 else "black"
                    axes.text(j, i, f"{int(counts[i, j])}", ha="center", va="center", fontsize=6, color=colour)
    figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04, label="share of the gold label's items")
    figure.tight_layout()
    path = Path(path)
    figure.savefig(path, dpi=120)
    return path
