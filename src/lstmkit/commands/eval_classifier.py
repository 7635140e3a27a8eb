"""``lstmkit eval-classifier RUN_DIR``: accuracy, per-class precision / recall / F1 and a confusion-matrix PNG of a
trained classifier on a split (:func:`lstmkit.classify.evaluate_classifier`)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a train-classifier run directory")
    parser.add_argument("--split", default="test", choices=("train", "dev", "test"), help="default: test")
    parser.add_argument("--data", metavar="DIR", help="the data folder (default: the one the run was trained on)")
    parser.add_argument("--checkpoint", default="best", choices=("best", "last"), help="default: best")
    parser.add_argument("--json", action="store_true", help="print one JSON object: split, accuracy, examples, "
                        "per_class (precision, recall, f1, support), confusion, confusion_png")
    parser.add_argument("--confusion", metavar="PNG", help="where to draw the confusion matrix "
                        "(default: RUN_DIR/confusion-SPLIT.png)")
    parser.add_argument("--no-confusion", action="store_true", help="do not draw the confusion matrix")
    parser.add_argument("--batch-size", type=int, metavar="N", help="examples per batch (default: the run's)")
    parser.add_argument("--precision", choices=("float32", "bfloat16", "auto", "int8"), default="float32",
                        help="compute: float32 (default), bfloat16 autocast, auto, or int8 weights for the LSTM "
                        "layers (to score what `classify --precision int8` predicts)")


def run(args: argparse.Namespace) -> int:
    from ..classify.api import evaluate_classifier, load_classifier, plot_confusion

    clf = load_classifier(args.run_dir, args.checkpoint)
    scores = evaluate_classifier(clf, args.split, args.data, args.batch_size, args.precision)
    picture = None
    if not args.no_confusion:
        title = f"{clf.config.data.task} {scores.split}: accuracy {100 * scores.accuracy:.2f}% of {scores.examples}"
        picture = plot_confusion(scores.as_tagging_scores(),
                                 args.confusion or Path(args.run_dir) / f"confusion-{args.split}.png", title)
    if args.json:
        data = scores.to_dict()
        data.update(task=clf.config.data.task, precision=args.precision, confusion_png=None if picture is None else str(picture))
        print(json.dumps(data))
        return 0
    print(f"{clf.config.data.task} classifier {clf.path}")
    print(scores.report())
    if picture is not None:
        print(f"confusion matrix: {picture}")
    return 0
