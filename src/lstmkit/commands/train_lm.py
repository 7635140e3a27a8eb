"""``lstmkit train-lm``: train (or resume) an AWD-LSTM language model; see :mod:`lstmkit.lm.task`.

Examples::

    lstmkit train-lm --preset small --max-seconds 120                         # the built-in corpus
    lstmkit train-lm --data ../shared/data/ptb --preset small --max-seconds 900 --run-dir runs/ptb-small
    lstmkit train-lm --data ../shared/data/ptb --preset awd --optim.lr=20 --model.weight_dropout=0.4
    lstmkit train-lm --resume runs/ptb-small --max-seconds 1800               # continue where it stopped
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from ..train.config import merge_from_args
from ..train.distributed import Distributed, from_environment, is_main_process
from ..lm.task import PRESETS, preset_config, train_language_model
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


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.epilog = (
        "Any hyperparameter can be set as --section.key=value, e.g. --model.hidden_size=800 --optim.lr=20 "
        "--data.bptt=35 --train.eval_every=1000 (sections: data, model, optim, train; top level: seed, threads)."
    )
    parser.add_argument("--data", metavar="PATH", help="corpus directory (word level: PTB or WikiText files) "
                        "or text file (char level); default: the built-in corpus")
    parser.add_argument("--level", choices=("word", "char"), help="word or character tokens (default: word)")
    parser.add_argument("--preset", default=None, help=f"starting configuration: {', '.join(PRESETS)} "
                        "(default: small)")
    add_run_dir_arguments(parser)
    add_budget_arguments(parser)
    parser.add_argument("--seed", type=int, help="random seed")


def run(args: argparse.Namespace) -> int:
    ddp = from_environment()  # under torchrun: join the ranks first, so that rank 0 can read the run for all
    try:
        return _run(args, ddp)
    finally:
        ddp.close()


def _run(args: argparse.Namespace, ddp: Distributed) -> int:
    overrides = []
    if args.data is not None:
        overrides.append(f"--data.path={args.data}")
    if args.level is not None:
        overrides.append(f"--data.level={args.level}")
    if args.seed is not None:
        overrides.append(f"--seed={args.seed}")
    overrides.append(f"--threads={args.threads}")
    overrides.extend(args.overrides)

    if args.resume is not None:
        if args.preset is not None:
            raise UsageError("--preset cannot change a resumed run; its stored configuration is used")
        run_dir, config, resume = resume_dir(args), None, True
        budget, first_line = resumed_budget(args, run_dir, overrides,
                                            read=lambda d: ddp.run_on_main(lambda: stored_progress(d)))
        overrides = budget + overrides
    else:
        preset = args.preset or "small"
        config = preset_config(preset)
        run_dir = Path(args.run_dir or f"runs/lm-{preset}-{time.strftime('%Y%m%d-%H%M%S')}")
        resume = False
        overrides = budget_overrides(args, "train") + overrides
        final = merge_from_args(config, overrides).train
        first_line = budget_line(final.max_seconds)

    result = train_language_model(config, run_dir, resume=resume, overrides=overrides, echo=echo_after(first_line),
                                  distributed=ddp)
    if not is_main_process():  # a torchrun rank other than 0: rank 0 reports
        return 128 + int(result.signal) if result.interrupted else 0
    state = result.state
    metrics = state.last_metrics or {}
    details = []
    if "ppl" in metrics:
        details.append(f"validation perplexity {metrics['ppl']:.2f}")
    if "bpc" in metrics:
        details.append(f"bits per character {metrics['bpc']:.4f}")
    if state.best_score is not None:
        details.append(f"best validation loss {state.best_score:.4f} at step {state.best_step}")
    return finish_training(result, "train-lm", run_dir, "tokens", details, f"run directory: {run_dir}")
