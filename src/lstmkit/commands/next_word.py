"""``lstmkit next-word RUN_DIR --prompt TEXT --k 5``: the likeliest next tokens with their probabilities
(:func:`lstmkit.lm.api.next_words`)."""

from __future__ import annotations

import argparse
import json

from .errors import UsageError


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a train-lm run directory")
    parser.add_argument("--prompt", required=True, help="the text so far")
    parser.add_argument("--k", type=int, default=5, help="how many candidates (default: 5)")
    parser.add_argument("--checkpoint", default="best", choices=("best", "last"), help="default: best")
    parser.add_argument("--json", action="store_true", help="print a JSON list of [token, probability]")


def run(args: argparse.Namespace) -> int:
    from ..lm.api import load_language_model, next_words

    if args.k < 1:
        raise UsageError(f"--k must be at least 1, got {args.k}")
    candidates = next_words(load_language_model(args.run_dir, args.checkpoint), args.prompt, args.k)
    if args.json:
        print(json.dumps(candidates))
        return 0
    width = max(len(repr(token)) for token, _ in candidates)
    for token, probability in candidates:
        print(f"{token!r:<{width}}  {probability:.4f}")
    return 0
