"""What the evaluation commands (``eval-tagger``, ``eval-classifier``) share: their arguments, where the
confusion matrix goes and how the scores are printed."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def add_evaluation_arguments(parser: argparse.ArgumentParser, trainer: str, data: tuple[str, str], json_keys: str,
                             batch_unit: str, several: str | None = None) -> None:
    """``RUN_DIR``, ``--split``, ``--data``, ``--checkpoint``, ``--json``, ``--confusion``, ``--no-confusion`` and
    ``--batch-size``.

    Args:
        trainer: the command whose run directories it reads (``"train-tagger"``).
        data: the metavar and help of ``--data``.
        json_keys: what the JSON object holds, for ``--json``'s help.
        batch_unit: what a batch holds (``"sentences"``), for ``--batch-size``'s help.
        several: if given, ``RUN_DIR`` takes one or more run directories (a list in ``args.run_dir``) and this is
            what more than one means, for its help.
    """
    if several:
        parser.add_argument("run_dir", metavar="RUN_DIR", nargs="+", help=f"a {trainer} run directory; {several}")
    else:
        parser.add_argument("run_dir", metavar="RUN_DIR", help=f"a {trainer} run directory")
    parser.add_argument("--split", default="test", choices=("train", "dev", "test"), help="default: test")
    parser.add_argument("--data", metavar=data[0], help=data[1])
    parser.add_argument("--checkpoint", default="best", choices=("best", "last"), help="default: best")
    parser.add_argument("--json", action="store_true", help=f"print one JSON object: {json_keys}")
    parser.add_argument("--confusion", metavar="PNG", help="where to draw the confusion matrix "
                        "(default: RUN_DIR/confusion-SPLIT.png)")
    parser.add_argument("--no-confusion", action="store_true", help="do not draw the confusion matrix")
    parser.add_argument("--batch-size", type=int, metavar="N", help=f"{batch_unit} per batch (default: the run's)")


def confusion_path(args: argparse.Namespace) -> Path | None:
    """Where to draw the confusion matrix: ``--confusion``, else ``RUN_DIR/confusion-SPLIT.png`` (of the first
    RUN_DIR when there are several); ``None`` with ``--no-confusion``."""
    if args.no_confusion:
        return None
    if args.confusion:
        return Path(args.confusion)
    run_dir = args.run_dir[0] if isinstance(args.run_dir, list) else args.run_dir
    name = f"confusion-{args.split}.png" if not isinstance(args.run_dir, list) or len(args.run_dir) == 1 else \
        f"confusion-{args.split}-ensemble.png"
    return Path(run_dir) / name


def print_scores(args: argparse.Namespace, scores: Any, picture: Path | None, header: str, **json_keys: Any) -> int:
    """Print ``scores`` (anything with ``to_dict()`` and ``report()``): with ``--json`` one JSON object, the scores
    followed by ``json_keys`` and ``confusion_png``; otherwise ``header``, the report and where the confusion matrix
    went. Returns the command's exit code, 0."""
    if args.json:
        data = scores.to_dict()
        data.update(json_keys, confusion_png=None if picture is None else str(picture))
        print(json.dumps(data))
        return 0
    print(header)
    print(scores.report())
    if picture is not None:
        print(f"confusion matrix: {picture}")
    return 0
