"""``lstmkit eval-lm RUN_DIR``: loss and perplexity of a trained language model on a split
(:func:`lstmkit.lm.api.evaluate_lm`)."""

from __future__ import annotations

import argparse
import json


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a train-lm run directory")
    parser.add_argument("--split", default="test", choices=("train", "valid", "test"), help="default: test")
    parser.add_argument("--data", metavar="PATH", help="the corpus (default: the one the run was trained on)")
    parser.add_argument("--checkpoint", default="best", choices=("best", "last"), help="default: best")
    parser.add_argument("--batch-size", type=int, metavar="B", help="parallel streams (default: the run's)")
    parser.add_argument("--json", action="store_true", help="print one JSON object: split, loss, ppl, tokens, "
                        "unknown (and bpc at char level)")


def run(args: argparse.Namespace) -> int:
    from ..lm.api import evaluate_lm, load_language_model

    lm = load_language_model(args.run_dir, args.checkpoint)
    result = evaluate_lm(lm, args.split, data=args.data, batch_size=args.batch_size)
    if args.json:
        print(json.dumps(result.to_dict()))
        return 0
    line = f"{result.split}: loss {result.loss:.4f}, perplexity {result.ppl:.2f}"
    if result.bpc is not None:
        line += f", {result.bpc:.4f} bits per character"
    print(f"{line}, {result.tokens} tokens ({result.unknown} unseen in training, read as <unk>)")
    return 0
