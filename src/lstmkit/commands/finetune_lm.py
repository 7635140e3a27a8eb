"""``lstmkit finetune-lm PRETRAINED --data PATH``: fine-tune a language model on the target task's text, the
vocabulary extended so every pretrained row is kept (see :mod:`lstmkit.classify.finetune`).

Examples::

    lstmkit finetune-lm runs/wt2-small --data ../shared/data/sst --run-dir runs/wt2-sst --max-seconds 300
    lstmkit finetune-lm --resume runs/wt2-sst --max-seconds 600              # continue where it stopped
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ._budget import add_budget_arguments, budget_overrides, finish_training
from .errors import UsageError

ACCEPTS_OVERRIDES = True  # unknown --section.key=value arguments are config overrides


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.epilog = ("Any setting of the language-model run can be given as --section.key=value, e.g. "
                     "--optim.lr=1e-3 --data.bptt=35 --train.max_epochs=5. Defaults: Adam (lr 2e-3, betas 0.8, 0.99), "
                     "a cosine schedule, 10 epochs.")
    parser.add_argument("pretrained", nargs="?", metavar="PRETRAINED_RUN", help="a train-lm run directory")
    parser.add_argument("--data", metavar="PATH", help="the target text: an SST folder (train / dev sentences), "
                        "the MR folder, a folder with train.txt and valid.txt, or a text file")
    parser.add_argument("--run-dir", metavar="DIR", help="where the fine-tuned model goes "
                        "(default: PRETRAINED_RUN-finetuned)")
    parser.add_argument("--resume", metavar="RUN_DIR", help="continue the fine-tuning run in RUN_DIR")
    parser.add_argument("--min-count", type=int, default=1, metavar="N",
                        help="add target words seen at least N times to the vocabulary (default: 1)")
    add_budget_arguments(parser)
    parser.add_argument("--seed", type=int, help="random seed (default: the pretrained run's)")


def run(args: argparse.Namespace) -> int:
    from ..classify.finetune import finetune_language_model

    overrides = budget_overrides(args, "train")
    if args.resume is not None:
        if args.pretrained or args.data or args.seed is not None:
            raise UsageError("a resumed run keeps its model, data and seed; only budgets can change")
        run_dir = Path(args.resume)
        result = finetune_language_model(None, None, run_dir, resume=True, overrides=[*overrides, *args.overrides],
                                         echo=_echo)
    else:
        if args.pretrained is None or args.data is None:
            raise UsageError("give the pretrained run directory and --data PATH (or --resume RUN_DIR)")
        if args.min_count < 1:
            raise UsageError(f"--min-count must be at least 1, got {args.min_count}")
        if args.seed is not None:
            overrides.append(f"--seed={args.seed}")
        run_dir = Path(args.run_dir or f"{Path(args.pretrained)}-finetuned")
        result = finetune_language_model(args.pretrained, args.data, run_dir, overrides=[*overrides, *args.overrides],
                                         min_count=args.min_count, echo=_echo)
    metrics = result.state.last_metrics or {}
    details = [f"validation perplexity {metrics['ppl']:.2f}"] if "ppl" in metrics else []
    return finish_training(result, "finetune-lm", run_dir, "tokens", details, f"run directory: {run_dir}")


def _echo(line: str) -> None:
    print(line, flush=True)
