"""``lstmkit generate RUN_DIR --prompt TEXT --words N``: sample a continuation (:func:`lstmkit.lm.api.generate`)."""

from __future__ import annotations

import argparse

from .errors import UsageError


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a train-lm run directory")
    parser.add_argument("--prompt", default="", help="text to continue (default: start of a line)")
    parser.add_argument("--words", type=int, default=50, metavar="N", help="tokens to generate (default: 50)")
    parser.add_argument("--temperature", type=float, default=1.0, help="sampling temperature (default: 1.0)")
    parser.add_argument("--top-k", type=int, default=None, metavar="K", help="sample among the K likeliest")
    parser.add_argument("--seed", type=int, default=None, help="seed: the same seed gives the same text")
    parser.add_argument("--checkpoint", default="best", choices=("best", "last"), help="default: best")


def run(args: argparse.Namespace) -> int:
    from ..lm.api import generate, load_language_model

    if args.words < 0:
        raise UsageError(f"--words must be >= 0, got {args.words}")
    if not args.temperature > 0 or args.temperature == float("inf"):
        raise UsageError(f"--temperature must be a finite number > 0, got {args.temperature}")
    if args.top_k is not None and args.top_k < 1:
        raise UsageError(f"--top-k must be >= 1, got {args.top_k}")
    lm = load_language_model(args.run_dir, args.checkpoint)
    text = generate(lm, args.prompt, args.words, args.temperature, args.top_k, args.seed)
    joiner = "" if lm.level == "char" or not args.prompt or text.startswith("\n") else " "
    print(f"{args.prompt}{joiner}{text}")
    return 0
