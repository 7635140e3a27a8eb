"""Using a trained classifier: load it, classify text, score it on a split.

The Python forms of ``lstmkit classify`` and ``lstmkit eval-classifier``::

    from lstmkit.classify import classify_texts, evaluate_classifier, load_classifier

    clf = load_classifier("runs/sst2")                       # the best checkpoint, in eval mode
    classify_texts(clf, ["A gorgeous, witty film.", "Dull."])  # [Prediction("positive", 0.97), ...]
    scores = evaluate_classifier(clf, "test")                # .accuracy, .examples, .per_class, .confusion
    evaluate_classifier(["runs/mr-0", "runs/mr-0-seed2"], "test")  # an ensemble: probabilities averaged

Loading reads only safetensors and JSON (never pickle) and checks the files against the checkpoint's manifest.
Texts are tokenized as the training data was (:func:`~lstmkit.classify.data.tokenize`) and classified in batches of
similar length, longest first, under ``torch.inference_mode``; in float32 and int8 through
:class:`~lstmkit.classify.inference.FastClassifier` (built on first use and kept with the loaded classifier), which
computes what the module computes (float32) faster, or with int8 weights. Several classifiers given together (a list
of loaded classifiers or run directories) are an ensemble: each classifies the texts with its own vocabulary, and
their class probabilities are averaged.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, NamedTuple

import torch

from ..data import DataError, Vocab, batch_plan
from ..lm.task import resolve_precision
from ..train.checkpoint import CheckpointError, checkpoint_exists, load_checkpoint, load_model_weights
from ..train.loop import chosen_checkpoint
from ..train.scoring import class_scores, confusion_matrix, macro_f1, plot_confusion
from .data import Example, make_batch, task_splits, tokenize
from .inference import FastClassifier, supports_fast_path
from .model import Classifier
from .task import ClassifierRunConfig, encode_examples, read_classifier_info

__all__ = ["PRECISIONS", "LoadedClassifier", "Prediction", "ClassificationScores", "load_classifier", "classify_texts",
           "predict_examples", "evaluate_classifier", "plot_confusion", "ensemble_members"]


@dataclasses.dataclass(frozen=True)
class LoadedClassifier:
    """A trained classifier ready to use: the model (eval mode), vocabulary, label names, the run's configuration
    and the checkpoint directory it came from."""

    model: Classifier
    vocab: Vocab
    labels: list[str]
    config: ClassifierRunConfig
    path: Path
    fast: dict[bool, FastClassifier] = dataclasses.field(default_factory=dict, repr=False, compare=False)
    """Its :class:`~lstmkit.classify.inference.FastClassifier` forms by ``int8``, built on first use from the
    weights as they are then."""

    def fast_form(self, int8: bool = False) -> FastClassifier | None:
        """The fast inference form (float32, or int8 weights), or None where the model has LSTM variants the fast
        path does not compute."""
        if not supports_fast_path(self.model):
            return None
        if int8 not in self.fast:
            self.fast[int8] = FastClassifier(self.model, int8=int8)
        return self.fast[int8]


class Prediction(NamedTuple):
    """The most probable label of a text and its probability."""

    label: str
    probability: float


def load_classifier(run_dir: str | os.PathLike, checkpoint: str = "best") -> LoadedClassifier:
    """Load the classifier of a ``lstmkit train-classifier`` run.

    Args:
        run_dir: the run directory.
        checkpoint: ``"best"`` (the best dev accuracy; the last checkpoint if there is no best yet) or ``"last"``.

    Raises:
        CheckpointError: no such run directory, not a classifier's, or damaged files (one line).
    """
    run_dir = Path(run_dir)
    name = chosen_checkpoint(run_dir, checkpoint)  # ValueError for anything but best / last
    if not run_dir.is_dir():
        raise CheckpointError(f"{run_dir}: no such run directory")
    if not checkpoint_exists(run_dir, name):
        raise CheckpointError(f"{run_dir} is not a classifier run directory (it has no {name}/ checkpoint)")
    stored = load_checkpoint(run_dir, name=name)
    config, vocab, labels = read_classifier_info(stored.extra.get("task"), run_dir)
    model = Classifier(len(vocab), len(labels), config.model)
    load_model_weights(model, stored.model_state, stored.path)
    return LoadedClassifier(model.eval(), vocab, labels, config, stored.path)


Classifiers = LoadedClassifier | str | os.PathLike | Sequence[LoadedClassifier | str | os.PathLike]
"""One classifier (loaded, or its run directory), or several: an ensemble whose probabilities are averaged."""


def ensemble_members(models: Classifiers, checkpoint: str = "best") -> list[LoadedClassifier]:
    """The classifiers of ``models`` (one, or an ensemble), loaded where given as run directories.

    Raises:
        ValueError: no classifier, or members with different label names (they cannot be averaged).
        CheckpointError: a run directory that is not a classifier's.
    """
    items = [models] if isinstance(models, (LoadedClassifier, str, os.PathLike)) else list(models)
    if not items:
        raise ValueError("no classifier given (an ensemble needs at least one run directory)")
    members = [item if isinstance(item, LoadedClassifier) else load_classifier(item, checkpoint) for item in items]
    for member in members[1:]:
        if member.labels != members[0].labels:
            raise ValueError(f"cannot average {members[0].path} (labels {members[0].labels}) with {member.path} "
                             f"(labels {member.labels}): an ensemble's classifiers need the same labels")
    return members


PRECISIONS = ("float32", "bfloat16", "auto", "int8")
"""Compute of :func:`classify_texts` and :func:`evaluate_classifier`: float32 (the module's function, by the fast
path), bfloat16 autocast, auto (bfloat16 where the CPU has native bfloat16 arithmetic), or int8 weights for the LSTM
layers (the fast path; predictions can differ from float32's: benchmarks/RESULTS.md gives the accuracy change)."""


def _probabilities(clf: LoadedClassifier, token_lists: Sequence[Sequence[str]], batch_size: int | None,
                   precision: str = "float32", workers: int | None = None) -> torch.Tensor:
    """``(N, K)`` class probabilities of tokenized texts, in input order.

    With ``workers`` > 1 (default: torch's thread count) and more than one batch, that many Python threads take
    whole batches, each running torch with one thread (torch's count is 1 for the process while they run, then
    restored): small LSTM steps parallelise better across batches than inside one step (benchmarks/RESULTS.md).
    The numbers are those of one thread per batch either way.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if workers is not None and workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    int8 = precision == "int8"
    low = not int8 and resolve_precision(precision) == torch.bfloat16
    fast = None if low else clf.fast_form(int8)
    if int8 and fast is None:
        raise ValueError("precision='int8' needs plain LSTM layers (the fast path); this model has LSTM variants")
    ids = encode_examples(token_lists, clf.vocab)
    out = torch.empty(len(ids), len(clf.labels))
    clf.model.eval()
    plan = batch_plan([len(row) for row in ids], batch_size or clf.config.data.eval_batch_size)

    def classify(indices: list[int]) -> None:
        batch = make_batch([ids[i] for i in indices], None, clf.vocab.unk_id)  # longest first
        with torch.inference_mode():
            if fast is not None:
                logits = fast.logits(batch.words, batch.lengths)
            else:
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=low):
                    logits = clf.model(batch.words, batch.lengths).logits
            out[indices] = torch.softmax(logits.float(), dim=1)

    threads = torch.get_num_threads()
    workers = min(threads if workers is None else workers, len(plan))
    if workers <= 1:
        for indices in plan:
            classify(indices)
        return out
    torch.set_num_threads(1)
    try:
        with ThreadPoolExecutor(workers, thread_name_prefix="lstmkit-classify") as pool:
            for _ in pool.map(classify, plan):  # re-raises a worker's error here
                pass
    finally:
        torch.set_num_threads(threads)
    return out


def _ensemble_probabilities(members: Sequence[LoadedClassifier], token_lists: Sequence[Sequence[str]],
                            batch_size: int | None, precision: str, workers: int | None = None) -> torch.Tensor:
    """``(N, K)`` class probabilities averaged over the members (one member: its own)."""
    total = _probabilities(members[0], token_lists, batch_size, precision, workers)
    for member in members[1:]:
        total += _probabilities(member, token_lists, batch_size, precision, workers)
    return total / len(members) if len(members) > 1 else total


def classify_texts(
    model_or_run_dir: Classifiers,
    texts: Sequence[str],
    batch_size: int | None = None,
    precision: str = "float32",
    workers: int | None = None,
) -> list[Prediction]:
    """The most probable label of each text and its probability, in input order.

    A text is one line of raw text; it is tokenized as the training data was. An empty text is classified as
    the start-of-text marker alone (the model's prior). ``precision``: one of :data:`PRECISIONS`. ``workers``:
    batches classified at once, each on one thread (default: torch's thread count; 1: one batch at a time on
    torch's threads). Several classifiers (an ensemble): the label with the highest mean probability, and that
    mean.
    """
    members = ensemble_members(model_or_run_dir)
    probabilities = _ensemble_probabilities(members, [tokenize(text) for text in texts], batch_size, precision,
                                            workers)
    best, index = probabilities.max(dim=1)
    return [Prediction(members[0].labels[i], p) for p, i in zip(best.tolist(), index.tolist())]


def predict_examples(clf: Classifiers, examples: Sequence[Example], batch_size: int | None = None,
                     precision: str = "float32") -> list[int]:
    """Predicted label ids of already tokenized examples (several classifiers: by the mean probability)."""
    members = ensemble_members(clf)
    token_lists = [example.tokens for example in examples]
    return _ensemble_probabilities(members, token_lists, batch_size, precision).argmax(dim=1).tolist()


@dataclasses.dataclass(frozen=True)
class ClassificationScores:
    """Accuracy, per-class precision / recall / F1 and the confusion matrix of a classifier on labelled examples.

    Attributes:
        split: what was scored. accuracy: correct / examples. examples, correct: counts.
        per_class: label -> :class:`~lstmkit.train.scoring.ClassScore` (precision, recall, f1, support,
            predicted). labels: matrix order. confusion: ``confusion[i][j]`` examples of gold ``labels[i]``
            predicted as ``labels[j]``.
    """

    split: str
    accuracy: float
    examples: int
    correct: int
    per_class: dict[str, Any]
    labels: list[str]
    confusion: list[list[int]]
    macro_f1: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "split": self.split, "accuracy": self.accuracy, "examples": self.examples, "correct": self.correct,
            "macro_f1": self.macro_f1,
            "per_class": {label: dataclasses.asdict(score) for label, score in self.per_class.items()},
            "labels": list(self.labels), "confusion": [list(row) for row in self.confusion],
        }

    def report(self) -> str:
        lines = [f"{self.split}: accuracy {100 * self.accuracy:.2f}% ({self.correct}/{self.examples} examples), "
                 f"macro F1 {100 * self.macro_f1:.2f}",
                 f"  {'class':<14} {'precision':>9} {'recall':>7} {'f1':>7} {'support':>8}"]
        for label, score in self.per_class.items():
            lines.append(f"  {label:<14} {100 * score.precision:>8.2f}% {100 * score.recall:>6.2f}% "
                         f"{100 * score.f1:>6.2f}% {score.support:>8}")
        return "\n".join(lines)


def score_labels(
    gold: Sequence[str], predicted: Sequence[str], split: str, labels: Sequence[str]
) -> ClassificationScores:
    """Score predicted label names against gold ones: the matrix has every one of ``labels`` (in that order, then
    any other label seen); ``per_class`` the labels that occur.

    Raises:
        ValueError: different numbers of gold and predicted labels, or none.
    """
    if len(gold) != len(predicted) or not gold:
        raise ValueError(f"need as many predicted labels as gold ones, at least one: got {len(gold)} gold and "
                         f"{len(predicted)} predicted")
    order, confusion = confusion_matrix(zip(gold, predicted), labels, keep_absent=True)
    per_class = {label: score for label, score in class_scores(order, confusion).items()
                 if score.support or score.predicted}  # the labels that occur
    correct = sum(confusion[i][i] for i in range(len(order)))
    return ClassificationScores(split, correct / len(gold), len(gold), correct, per_class, order, confusion,
                                macro_f1(per_class))


_SAME_DATA = ("task", "fold", "folds", "split_seed")


def evaluate_classifier(
    model_or_run_dir: Classifiers,
    split: str = "test",
    data: str | os.PathLike | None = None,
    batch_size: int | None = None,
    precision: str = "float32",
) -> ClassificationScores:
    """Classify a split of the run's task and score it.

    Args:
        model_or_run_dir: a :class:`LoadedClassifier` or a run directory, or several (an ensemble: scored by the
            mean of their probabilities; they must have been trained on the same task and, for MR, fold).
        split: ``"train"``, ``"dev"`` or ``"test"`` (for MR: of the run's fold).
        data: the data folder (default: the one the run was trained on).
        batch_size: examples per batch (default: the run's ``eval_batch_size``).
        precision: one of :data:`PRECISIONS` (``"int8"`` scores the int8 form).

    Raises:
        DataError: missing or malformed data, an unknown split, or ensemble members trained on different data.
        CheckpointError: not a classifier run.
    """
    members = ensemble_members(model_or_run_dir)
    clf = members[0]
    for member in members[1:]:
        for name in _SAME_DATA:
            if getattr(member.config.data, name) != getattr(clf.config.data, name):
                raise DataError(f"cannot score {clf.path} and {member.path} together: data.{name} is "
                                f"{getattr(clf.config.data, name)!r} for one and {getattr(member.config.data, name)!r} "
                                "for the other (an ensemble's classifiers must share the task and its split)")
    if split not in ("train", "dev", "test"):
        raise DataError(f"unknown split {split!r}: choose train, dev or test")
    d = clf.config.data
    examples = task_splits(data or d.path, d.task, phrases=False, fold=d.fold, folds=d.folds,
                           seed=d.split_seed)[split]
    if not examples:
        raise DataError(f"{data or d.path}: the {split} split has no examples")
    predicted = predict_examples(members, examples, batch_size, precision)
    return score_labels([clf.labels[e.label] for e in examples], [clf.labels[p] for p in predicted], split,
                        clf.labels)
