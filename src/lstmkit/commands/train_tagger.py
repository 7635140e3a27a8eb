"""``lstmkit train-tagger``: train (or resume) a BiLSTM part-of-speech tagger; see :mod:`lstmkit.tagger.task`.

Examples::

    lstmkit train-tagger --data ../shared/data/ud_english_ewt --out runs/ewt-upos --max-seconds 1200
    lstmkit train-tagger --data ../shared/data/ud_english_ewt --tagset xpos --out runs/ewt-xpos --model.dropout=0.5
    lstmkit train-tagger --out runs/ewt-upos --resume --max-seconds 1800       # continue where it stopped
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

from ._budget import (
    add_budget_arguments,
    add_run_dir_arguments,
    budget_line,
    budget_overrides,
    echo_after,
    finish_training,
    resume_dir,
    resumed_budget,
    stored_progress,
)
from .errors import UsageError

ACCEPTS_OVERRIDES = True  # unknown --section.key=value arguments are config overrides


def _settings(config: Any, prefix: str = "") -> list[str]:
    """``key=default`` for every setting of a config tree."""
    out = []
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        if dataclasses.is_dataclass(value):
            out.extend(_settings(value, f"{prefix}{field.name}."))
        else:
            out.append(f"{prefix}{field.name}={value}")
    return out


def configure_parser(parser: argparse.ArgumentParser) -> None:
    from ..tagger.task import TrainTaggerConfig

    parser.epilog = ("Any setting can be given as --section.key=value; the settings and their defaults: "
                     + ", ".join(_settings(TrainTaggerConfig())))
    parser.add_argument("--data", metavar="DIR", help="treebank folder with *train*.conllu and *dev*.conllu")
    parser.add_argument("--tagset", choices=("upos", "xpos"), help="the CoNLL-U tag column to learn (default: upos)")
    add_run_dir_arguments(parser, alias="--out")
    add_budget_arguments(parser)
    parser.add_argument("--seed", type=int, help="random seed (default: 1)")


def run(args: argparse.Namespace) -> int:
    from ..train.distributed import from_environment

    ddp = from_environment()  # under torchrun: join the ranks first, so that rank 0 can read the run for all
    try:
        return _run(args, ddp)
    finally:
        ddp.close()


def _run(args: argparse.Namespace, ddp: Any) -> int:
    from ..train.config import merge_from_args
    from ..train.distributed import is_main_process
    from ..train.loop import BEST_CHECKPOINT
    from ..tagger.task import TrainTaggerConfig, train_tagger

    settings = [f"--{key}={value}" for key, value in
                (("tagset", args.tagset), ("seed", args.seed)) if value is not None]
    where = [f"--{key}={value}" for key, value in (("data", args.data), ("threads", args.threads))
             if value is not None]

    if args.resume is not None:
        run_dir = resume_dir(args)
        budget, first_line = resumed_budget(args, run_dir, args.overrides,
                                            read=lambda d: ddp.run_on_main(lambda: stored_progress(d)))
        if settings:
            raise UsageError("a resumed run keeps its configuration; only budgets (--max-seconds, --max-epochs, "
                             "--train.*), --data and --threads can change")
        result = train_tagger(None, run_dir, resume=True, overrides=[*where, *budget, *args.overrides],
                              echo=echo_after(first_line), distributed=ddp)
    else:
        if args.run_dir is None:
            raise UsageError("--run-dir RUN_DIR is required (where the checkpoints and metrics go)")
        run_dir = Path(args.run_dir)
        budget = budget_overrides(args, "train")
        config = merge_from_args(TrainTaggerConfig(), [*where, *settings, *budget, *args.overrides])
        first_line = budget_line(config.train.max_seconds)
        result = train_tagger(config, run_dir, echo=echo_after(first_line), distributed=ddp)

    if not is_main_process():  # a torchrun rank other than 0: rank 0 reports
        return 128 + int(result.signal) if result.interrupted else 0
    state = result.state
    best = "none" if state.best_score is None else f"{state.best_score:.4f} at step {state.best_step}"
    return finish_training(result, "train-tagger", run_dir, "words", [f"best dev accuracy {best}"],
                           f"tagger: {run_dir / BEST_CHECKPOINT}")
