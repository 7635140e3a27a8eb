"""``lstmkit eval-tagger RUN_DIR``: accuracy, per-tag precision / recall / F1 and a confusion-matrix PNG of a trained
tagger on a split (:func:`lstmkit.tagger.api.evaluate_tagger`, :func:`lstmkit.tagger.metrics.plot_confusion`)."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path



def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a train-tagger run directory")
    parser.add_argument("--split", default="test", choices=("train", "dev", "test"), help="default: test")
    parser.add_argument("--data", metavar="PATH", help="treebank folder or CoNLL-U file "
                        "(default: the treebank the run was trained on)")
    parser.add_argument("--checkpoint", default="best", choices=("best", "last"), help="default: best")
    parser.add_argument("--json", action="store_true", help="print one JSON object: split, accuracy, tokens, "
                        "per_tag, confusion, ...")
    parser.add_argument("--confusion", metavar="PNG", help="where to draw the confusion matrix "
                        "(default: RUN_DIR/confusion-SPLIT.png)")
    parser.add_argument("--no-confusion", action="store_true", help="do not draw the confusion matrix")
    parser.add_argument("--batch-size", type=int, metavar="N", help="sentences per batch (default: the run's)")


def run(args: argparse.Namespace) -> int:
    from ..tagger.api import evaluate_tagger, load_tagger
    from ..tagger.metrics import plot_confusion

    started = time.perf_counter()
    tagger = load_tagger(args.run_dir, args.checkpoint)
    scores = evaluate_tagger(tagger, args.split, args.data, args.batch_size)
    seconds = time.perf_counter() - started
    picture = None
    if not args.no_confusion:
        picture = plot_confusion(scores, args.confusion or Path(args.run_dir) / f"confusion-{args.split}.png")
    if args.json:
        data = scores.to_dict()
        data.update(tagset=tagger.tagset, confusion_png=None if picture is None else str(picture))
        print(json.dumps(data))
        return 0
    print(f"{tagger.tagset.upper()} tagger {tagger.path} ({seconds:.1f}s)")
    print(scores.report())
    if picture is not None:
        print(f"confusion matrix: {picture}")
    return 0
