"""``lstmkit plot RUN_DIR``: draw the run's training curves to a PNG (:func:`lstmkit.train.plot.plot_metrics`)."""

from __future__ import annotations

import argparse


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a run directory holding metrics.jsonl")
    parser.add_argument("--output", "-o", metavar="PNG", help="file to write (default: RUN_DIR/curves.png)")


def run(args: argparse.Namespace) -> int:
    from ..train.plot import plot_metrics

    print(plot_metrics(args.run_dir, args.output))
    return 0
