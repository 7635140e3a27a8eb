"""``lstmkit eval-tagger RUN_DIR``: accuracy, per-tag precision / recall / F1 and a confusion-matrix PNG of a trained
tagger on a split (:func:`lstmkit.tagger.api.evaluate_tagger`, :func:`lstmkit.tagger.metrics.plot_confusion`)."""

from __future__ import annotations

import argparse
import time

from ._evaluation import add_evaluation_arguments, confusion_path, print_scores


def configure_parser(parser: argparse.ArgumentParser) -> None:
    add_evaluation_arguments(
        parser, "train-tagger",
        ("PATH", "treebank folder or CoNLL-U file (default: the treebank the run was trained on)"),
        "split, accuracy, tokens, per_tag, confusion, ...", "sentences")


def run(args: argparse.Namespace) -> int:
    from ..tagger.api import evaluate_tagger, load_tagger
    from ..tagger.metrics import plot_confusion

    started = time.perf_counter()
    tagger = load_tagger(args.run_dir, args.checkpoint)
    scores = evaluate_tagger(tagger, args.split, args.data, args.batch_size)
    seconds = time.perf_counter() - started
    picture = confusion_path(args)
    if picture is not None:
        picture = plot_confusion(scores, picture)
    return print_scores(args, scores, picture, f"{tagger.tagset.upper()} tagger {tagger.path} ({seconds:.1f}s)",
                        tagset=tagger.tagset)
