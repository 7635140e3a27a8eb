"""``lstmkit train-classifier``: train (or resume) a sentence classifier, the ULMFiT way on a pretrained encoder or
from scratch; see :mod:`lstmkit.classify.task`.

Examples::

    lstmkit train-classifier --encoder runs/wt2-sst --data ../shared/data/sst --task sst2 --out runs/sst2 \\
        --max-seconds 1200
    lstmkit train-classifier --data ../shared/data/sst --task sst2 --out runs/sst2-scratch --max-seconds 1200
    lstmkit train-classifier --encoder runs/wt2-sst --data ../shared/data/rt_polarity --task mr --fold 3 --out runs/mr3
    lstmkit train-classifier --resume runs/sst2 --max-seconds 1800               # continue where it stopped
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ._budget import add_budget_arguments, budget_line, budget_overrides, echo_after, finish_training, resumed_budget
from .errors import UsageError

ACCEPTS_OVERRIDES = True  # unknown --section.key=value arguments are config overrides


def _fraction(text: str) -> float:
    value = float(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {value}")
    return value


def configure_parser(parser: argparse.ArgumentParser) -> None:
    from .train_tagger import _settings
    from ..classify.task import ClassifierRunConfig

    parser.epilog = ("Any setting can be given as --section.key=value; the settings and their defaults: "
                     + ", ".join(_settings(ClassifierRunConfig())))
    parser.add_argument("--encoder", metavar="LM_RUN", help="a train-lm or finetune-lm run directory: its best "
                        "model is the encoder (default: train from scratch)")
    parser.add_argument("--data", metavar="DIR", help="an SST folder (sst2, sst5) or the MR folder (mr)")
    parser.add_argument("--task", choices=("sst2", "sst5", "mr"), help="default: sst2")
    parser.add_argument("--fold", type=int, metavar="K", help="mr: the held-out test fold, 0-9 (default: 0)")
    parser.add_argument("--no-phrases", action="store_true", help="sst: train on whole sentences only, not on "
                        "every labelled phrase")
    parser.add_argument("--gradual-unfreezing", type=_fraction, metavar="F", help="unfreeze one more layer group "
                        "every F of the budget, the head alone first; 0: all at once (default: 0; ULMFiT: one a epoch)")
    parser.add_argument("--discriminative-lr", type=float, metavar="D", help="each layer group below the top "
                        "trains at 1/D the rate of the one above; 1: one rate (default: 1; ULMFiT: 2.6)")
    parser.add_argument("--stlr", choices=("on", "off"), help="slanted triangular learning rates over the budget, "
                        "or a constant rate (default: on)")
    parser.add_argument("--lr", type=float, help="peak learning rate of the head (default: 4e-3)")
    parser.add_argument("--out", metavar="RUN_DIR", help="run directory: checkpoints, metrics.jsonl")
    parser.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR exactly where it stopped")
    add_budget_arguments(parser)
    parser.add_argument("--seed", type=int, help="random seed (default: 1)")


def run(args: argparse.Namespace) -> int:
    from ..classify.task import ClassifierRunConfig, train_classifier
    from ..train.config import merge_from_args
    from ..train.loop import BEST_CHECKPOINT

    named = {
        "encoder": args.encoder, "data.path": args.data, "data.task": args.task, "data.fold": args.fold,
        "data.phrases": False if args.no_phrases else None, "optim.unfreeze_every": args.gradual_unfreezing,
        "optim.discriminative_decay": args.discriminative_lr,
        "optim.schedule": None if args.stlr is None else ("stlr" if args.stlr == "on" else "constant"),
        "optim.lr": args.lr, "seed": args.seed,
    }
    settings = [f"--{key}={value}" for key, value in named.items() if value is not None]
    if args.resume is not None:
        if args.out is not None and Path(args.out) != Path(args.resume):
            raise UsageError("--out and --resume name different directories; a resumed run stays where it is")
        if settings:
            raise UsageError("a resumed run keeps its configuration; only budgets (--max-seconds, --max-epochs, "
                             "--train.*) can change")
        run_dir = Path(args.resume)
        # --max-seconds S means S more seconds, as for the other trainers; without it the run keeps its total (the
        # learning-rate schedule and unfreezing are laid out over the total, so extending it stretches them).
        budget, first_line = resumed_budget(args, run_dir, args.overrides)
        result = train_classifier(None, run_dir, resume=True, overrides=[*budget, *args.overrides],
                                  echo=echo_after(first_line))
    else:
        if args.out is None:
            raise UsageError("--out RUN_DIR is required (where the checkpoints and metrics go)")
        run_dir = Path(args.out)
        config = merge_from_args(ClassifierRunConfig(), [*settings, *budget_overrides(args, "train"), *args.overrides])
        result = train_classifier(config, run_dir, echo=echo_after(budget_line(config.train.max_seconds)))
    state = result.state
    best = "none" if state.best_score is None else f"{100 * state.best_score:.2f}% at step {state.best_step}"
    return finish_training(result, "train-classifier", run_dir, "examples", [f"best dev accuracy {best}"],
                           f"classifier: {run_dir / BEST_CHECKPOINT}")
