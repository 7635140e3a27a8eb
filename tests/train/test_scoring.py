"""The task-neutral scoring: confusion matrix order, per-class precision / recall / F1, the picture; the tagger's
and the classifier's scores are built on it."""

from __future__ import annotations

import pytest

from lstmkit.classify.api import score_labels
from lstmkit.train.scoring import ClassScore, class_scores, confusion_matrix, macro_f1, plot_confusion


def test_confusion_matrix_orders_given_labels_first_and_counts_pairs():
    pairs = [("pos", "pos"), ("neg", "pos"), ("neg", "neg"), ("odd", "neg"), ("pos", "pos")]
    labels, confusion = confusion_matrix(pairs, ["pos", "neg", "unused"])
    assert labels == ["pos", "neg", "odd"]  # the order given, then the rest; "unused" never occurs
    assert confusion == [[2, 0, 0], [1, 1, 0], [0, 1, 0]]
    scores = class_scores(labels, confusion)
    assert scores["pos"] == ClassScore(precision=2 / 3, recall=1.0, f1=pytest.approx(0.8), support=2, predicted=3)
    assert scores["neg"] == ClassScore(0.5, 0.5, 0.5, 2, 2)
    assert scores["odd"] == ClassScore(0.0, 0.0, 0.0, 1, 0)
    assert macro_f1(scores) == pytest.approx((0.8 + 0.5 + 0.0) / 3)
    labels, confusion = confusion_matrix(pairs, ["pos", "neg", "unused"], keep_absent=True)
    assert labels == ["pos", "neg", "unused", "odd"]  # kept: a row and a column of zeros
    assert confusion == [[2, 0, 0, 0], [1, 1, 0, 0], [0, 0, 0, 0], [0, 1, 0, 0]]


def test_classifier_scores_keep_every_label_in_the_matrix_and_draw(tmp_path):
    scores = score_labels(["a", "a", "b"], ["a", "b", "b"], "dev", ["c", "b", "a"])
    assert scores.labels == ["c", "b", "a"] and scores.confusion == [[0, 0, 0], [0, 1, 0], [0, 1, 1]]
    assert set(scores.per_class) == {"a", "b"} and scores.accuracy == pytest.approx(2 / 3)
    assert scores.macro_f1 == pytest.approx((2 / 3 + 2 / 3) / 2)
    path = plot_confusion(scores, tmp_path / "c.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="as many predicted labels as gold ones"):
        score_labels(["a"], [], "dev", ["a"])
