"""``lstmkit eval-classifier RUN_DIR``: accuracy, per-class precision / recall / F1 and a confusion-matrix PNG of a
trained classifier on a split (:func:`lstmkit.classify.evaluate_classifier`)."""

from __future__ import annotations

import argparse

from ._evaluation import add_evaluation_arguments, confusion_path, print_scores


def configure_parser(parser: argparse.ArgumentParser) -> None:
    add_evaluation_arguments(
        parser, "train-classifier", ("DIR", "the data folder (default: the one the run was trained on)"),
        "split, accuracy, examples, per_class (precision, recall, f1, support), confusion, confusion_png", "examples")
    parser.add_argument("--precision", choices=("float32", "bfloat16", "auto", "int8"), default="float32",
                        help="compute: float32 (default), bfloat16 autocast, auto, or int8 weights for the LSTM "
                        "layers (to score what `classify --precision int8` predicts)")


def run(args: argparse.Namespace) -> int:
    from ..classify.api import evaluate_classifier, load_classifier, plot_confusion

    clf = load_classifier(args.run_dir, args.checkpoint)
    scores = evaluate_classifier(clf, args.split, args.data, args.batch_size, args.precision)
    picture = confusion_path(args)
    if picture is not None:
        title = f"{clf.config.data.task} {scores.split}: accuracy {100 * scores.accuracy:.2f}% of {scores.examples}"
        picture = plot_confusion(scores.as_tagging_scores(), picture, title)
    return print_scores(args, scores, picture, f"{clf.config.data.task} classifier {clf.path}",
                        task=clf.config.data.task, precision=args.precision)
