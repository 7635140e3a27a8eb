"""The flags every trainer shares: the run directory (``--run-dir``, ``--resume``) and the training budget
(``--max-seconds``, ``--max-epochs``, ``--no-progress``), and the config overrides the budget becomes.

Every trainer keeps its loop settings in the config section ``train`` (``--train.max_seconds=...``).
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_run_dir_arguments(parser: argparse.ArgumentParser, alias: str | None = None) -> None:
    """``--run-dir DIR`` (with an older spelling ``alias`` accepted too) and ``--resume [RUN_DIR]``."""
    names = ["--run-dir"] + ([alias] if alias else [])
    parser.add_argument(*names, dest="run_dir", metavar="DIR",
                        help="the run directory: checkpoints, metrics.jsonl" + (f" ({alias} is accepted too)"
                                                                                if alias else ""))
    parser.add_argument("--resume", nargs="?", const=True, default=None, metavar="RUN_DIR",
                        help="continue the run in RUN_DIR (or --run-dir) exactly where it stopped, with its stored "
                        "configuration")


def resume_dir(args: argparse.Namespace) -> Path:
    """The run directory to resume: ``--resume RUN_DIR`` or ``--run-dir DIR --resume`` (the same if both)."""
    from ..cli import UsageError

    named = None if args.resume is True else Path(args.resume)
    other = None if args.run_dir is None else Path(args.run_dir)
    if named is not None and other is not None and named != other:
        raise UsageError("--run-dir and --resume name different directories; a resumed run stays where it is")
    run_dir = named or other
    if run_dir is None:
        raise UsageError("--resume needs the run directory: --resume RUN_DIR or --run-dir RUN_DIR --resume")
    return run_dir


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
