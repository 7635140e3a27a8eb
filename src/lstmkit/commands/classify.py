"""``lstmkit classify RUN_DIR --input FILE``: one text per line in, ``label<TAB>probability`` per line out
(:func:`lstmkit.classify.classify_texts`). ``--input -`` reads standard input."""

from __future__ import annotations

import argparse
import sys
import time

from .tag import read_stdin


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", metavar="RUN_DIR", nargs="+", help="a train-classifier run directory; several: "
                        "an ensemble (the label of the highest mean probability, and that mean)")
    parser.add_argument("--input", required=True, metavar="FILE", help="one text per line; - for standard input")
    parser.add_argument("--output", metavar="FILE", default="-", help="where to write (default: - standard output)")
    parser.add_argument("--checkpoint", default="best", choices=("best", "last"), help="default: best")
    parser.add_argument("--batch-size", type=int, metavar="N", help="texts per batch (default: the run's)")
    parser.add_argument("--precision", choices=("float32", "bfloat16", "auto", "int8"), default="float32",
                        help="compute: float32 (default), bfloat16 autocast, auto (bfloat16 where the CPU has "
                        "native bfloat16), or int8 weights for the LSTM layers (faster; predictions can differ "
                        "from float32's); see benchmarks/RESULTS.md for speeds and int8's accuracy")
    parser.add_argument("--stats", action="store_true", help="print texts per second to standard error")


def run(args: argparse.Namespace) -> int:
    from ..classify.api import classify_texts, ensemble_members
    from ..data import DataError, read_utf8_text, split_lines

    source, text = ("<stdin>", read_stdin()) if args.input == "-" else (args.input, read_utf8_text(args.input))
    lines = split_lines(text)
    if not lines:
        raise DataError(f"{source}: empty input, nothing to classify")
    clf = ensemble_members(args.run_dir, args.checkpoint)
    started = time.perf_counter()
    predictions = classify_texts(clf, lines, args.batch_size, args.precision)
    seconds = time.perf_counter() - started
    out = "".join(f"{p.label}\t{p.probability:.4f}\n" for p in predictions)
    if args.output == "-":
        sys.stdout.write(out)
        sys.stdout.flush()
    else:
        with open(args.output, "w", encoding="utf-8", newline="\n") as file:
            file.write(out)
    if args.stats:
        print(f"classified {len(lines)} texts in {seconds:.3f}s ({len(lines) / max(seconds, 1e-9):,.0f} texts/s)",
              file=sys.stderr)
    return 0
