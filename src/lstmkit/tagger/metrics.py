"""Scoring predicted tags: accuracy (also on words unseen in training), per-tag precision / recall / F1, a
confusion matrix and its picture.

Pure bookkeeping over tag strings; :func:`lstmkit.tagger.api.evaluate_tagger` runs a model and calls
:func:`score_tags`. The per-label arithmetic and the picture are the task-neutral ones of
:mod:`lstmkit.train.scoring`, which the classifier uses too.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..train import scoring
from ..train.scoring import ClassScore, class_scores, confusion_matrix

__all__ = ["TagScore", "TaggingScores", "score_tags", "plot_confusion"]

TagScore = ClassScore
"""Precision, recall and F1 of one tag; ``support`` gold words, ``predicted`` words given the tag (the
task-neutral :class:`~lstmkit.train.scoring.ClassScore`)."""


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
        return scoring.macro_f1(self.per_tag)

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
    pairs: list[tuple[str, str]] = []
    unknown = unknown_correct = 0
    for index, (gold_tags, predicted_tags) in enumerate(zip(gold, predicted)):
        if len(gold_tags) != len(predicted_tags):
            raise ValueError(f"sentence {index}: {len(gold_tags)} gold tags but {len(predicted_tags)} predicted")
        pairs.extend(zip(gold_tags, predicted_tags))
        if known is not None:
            for is_known, g, p in zip(known[index], gold_tags, predicted_tags):
                if not is_known:
                    unknown += 1
                    unknown_correct += g == p
    tokens = len(pairs)
    if tokens == 0:
        raise ValueError("nothing to score: no words")
    labels, confusion = confusion_matrix(pairs, label_order)
    correct = sum(confusion[i][i] for i in range(len(labels)))
    per_tag = class_scores(labels, confusion)
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
    """Draw the confusion matrix as a PNG (:func:`lstmkit.train.scoring.plot_confusion`), titled with the
    accuracy and the number of words unless ``title`` is given.

    Returns:
        The path written.
    """
    default = f"{scores.split}: accuracy {100 * scores.accuracy:.2f}% on {scores.tokens} words"
    return scoring.plot_confusion(scores, path, title or default)
