"""The training budget flags that ``train-lm`` and ``train-tagger`` share, and the config overrides they become.

Each trainer keeps its budget in its own config section (``train.*`` for the language model, ``loop.*`` for the
tagger), so the flags are the same and only the section differs.
"""

from __future__ import annotations

import argparse


def add_budget_arguments(parser: argparse.ArgumentParser) -> None:
    """``--max-seconds``, ``--max-epochs`` and ``--no-progress``."""
    parser.add_argument("--max-seconds", type=float, metavar="S",
                        help="stop after S seconds of training time (evaluation excluded), then evaluate")
    parser.add_argument("--max-epochs", type=int, metavar="N", help="stop after N epochs")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def budget_overrides(args: argparse.Namespace, section: str) -> list[str]:
    """The budget flags that were given, as ``--SECTION.key=value`` overrides."""
    out = []
    if args.max_seconds is not None:
        out.append(f"--{section}.max_seconds={args.max_seconds}")
    if args.max_epochs is not None:
        out.append(f"--{section}.max_epochs={args.max_epochs}")
    if args.no_progress:
        out.append(f"--{section}.progress=false")
    return out
