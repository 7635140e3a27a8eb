"""``lstmkit eval-classifier RUN_DIR [RUN_DIR ...]``: accuracy, per-class precision / recall / F1 and a
confusion-matrix PNG of a trained classifier, or of an ensemble (mean probabilities), on a split
(:func:`lstmkit.classify.evaluate_classifier`)."""

from __future__ import annotations

import argparse

from ._evaluation import add_evaluation_arguments, confusion_path, print_scores


def configure_parser(parser: argparse.ArgumentParser) -> None:
    add_evaluation_arguments(
        parser, "train-classifier", ("DIR", "the data folder (default: the one the run was trained on)"),
        "split, accuracy, examples, per_class (precision, recall, f1, support), confusion, confusion_png, runs",
        "examples", several="several: an ensemble, scored by the mean of their class probabilities (same task and fold)")
    parser.add_argument("--precision", choices=("float32", "bfloat16", "auto", "int8"), default="float32",
                        help="compute: float32 (default), bfloat16 autocast, auto, or int8 weights for the LSTM "
                        "layers (to score what `classify --precision int8` predicts)")


def run(args: argparse.Namespace) -> int:
    from ..classify.api import ensemble_members, evaluate_classifier, plot_confusion

    members = ensemble_members(args.run_dir, args.checkpoint)
    scores = evaluate_classifier(members, args.split, args.data, args.batch_size, args.precision)
    task = members[0].config.data.task
    who = "" if len(members) == 1 else f" (ensemble of {len(members)})"
    picture = confusion_path(args)
    if picture is not None:
        title = f"{task} {scores.split}: accuracy{who} {100 * scores.accuracy:.2f}% of {scores.examples}"
        picture = plot_confusion(scores, picture, title)
    header = (f"{task} classifier {members[0].path}" if len(members) == 1 else
              f"{task} ensemble of {len(members)} classifiers (mean probability): "
              + ", ".join(str(m.path) for m in members))
    return print_scores(args, scores, picture, header, task=task, precision=args.precision,
                        runs=[str(m.path) for m in members])
