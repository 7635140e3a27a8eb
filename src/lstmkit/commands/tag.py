"""``lstmkit tag RUN_DIR --input FILE``: tag plain text or CoNLL-U with a trained tagger
(:func:`lstmkit.tagger.api.tag_text`).

Plain text (one sentence per line) is cut into words as UD English does (``can't`` -> ``ca n't``, ``dog.`` -> ``dog .``;
``--pretokenized`` when the words are space-separated already) and gives ``word/TAG`` lines, one per non-blank input
line; CoNLL-U gives the file back with the tag column filled in. ``--input -`` reads standard input. A leading
byte-order mark is ignored.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from ..data import DataError, read_utf8_text
from ..tagger.api import FORMAT_RULE
from .errors import UsageError


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a train-tagger run directory")
    parser.add_argument("--input", required=True, metavar="FILE", help="the text to tag; - for standard input")
    parser.add_argument("--format", choices=("auto", "plain", "conllu"), default="auto",
                        help=f"input format (default: {FORMAT_RULE})")
    parser.add_argument("--pretokenized", action="store_true",
                        help="plain text whose words are already separated by spaces: do not split off punctuation "
                        "and clitics (by default plain text is cut as UD English is: can't -> ca n't, dog. -> dog .)")
    parser.add_argument("--output", metavar="FILE", default="-", help="where to write (default: - standard output)")
    parser.add_argument("--checkpoint", default="best", choices=("best", "last"), help="default: best")
    parser.add_argument("--batch-size", type=int, metavar="N", help="sentences per batch (default: the run's)")
    parser.add_argument("--stats", action="store_true", help="print words and words per second to standard error")


def read_stdin() -> str:
    """Standard input as UTF-8 text, or a :class:`~lstmkit.data.DataError` naming the line of the first bad byte."""
    raw = getattr(sys.stdin, "buffer", None)
    if raw is None:  # replaced by a text stream
        return sys.stdin.read()
    data = raw.read()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise DataError(f"<stdin>: line {line}: byte 0x{data[error.start]:02x} is not valid UTF-8") from None


def run(args: argparse.Namespace) -> int:
    from ..tagger.api import load_tagger, tag_text

    started = time.perf_counter()
    if args.output != "-" and os.path.isdir(args.output):
        raise UsageError(f"--output {args.output} is a directory; name a file to write")
    source, text = ("<stdin>", read_stdin()) if args.input == "-" else (args.input, read_utf8_text(args.input))
    tagger = load_tagger(args.run_dir, args.checkpoint)
    loaded = time.perf_counter()
    result = tag_text(tagger, text, args.format, source, args.batch_size, pretokenized=args.pretokenized)
    tagged = time.perf_counter()
    if args.output == "-":
        sys.stdout.write(result.text)
        sys.stdout.flush()
    else:
        with open(args.output, "w", encoding="utf-8", newline="\n") as file:
            file.write(result.text)
    if args.stats:
        seconds = tagged - loaded
        print(f"tagged {result.sentences} sentences, {result.tokens} words ({result.format}) in {seconds:.2f}s "
              f"({result.tokens / max(seconds, 1e-9):,.0f} words/s); {time.perf_counter() - started:.2f}s with "
              "loading and output", file=sys.stderr)
    return 0
