"""Tagging text with a trained tagger: plain tokenised text or CoNLL-U, from a file or standard input.

- Plain text: one sentence per line, tokens separated by spaces; the output has one line per sentence of
  ``word/TAG`` items separated by spaces (``The/DET cat/NOUN sat/VERB ./PUNCT``).
- CoNLL-U: the output is the same file with the tag column of the run's tagset (UPOS or XPOS) filled in; every
  other column, comment, multiword token and empty node is written as read.

Command line: ``lstmkit tag RUN_DIR --input FILE [--format auto|plain|conllu] [--output FILE]``; FILE ``-`` is
standard input.
"""

from __future__ import annotations

import argparse
import io
import os
import re
import sys
import time
from typing import NamedTuple

import torch

from lstmkit.data import DataError, parse_conllu, read_plain, read_utf8_text, write_conllu

from .tagger import LoadedTagger, load_tagger, tag_sentences, threads_argument

__all__ = ["FORMATS", "TaggedText", "detect_format", "tag_text"]

FORMATS = ("auto", "plain", "conllu")
_CONLLU_WORD_LINE = re.compile(r"[0-9]+([-.][0-9]+)?\t")


class TaggedText(NamedTuple):
    """What :func:`tag_text` produced: the output ``text``, its ``format``, and how many sentences and words."""

    text: str
    format: str
    sentences: int
    tokens: int


def detect_format(text: str) -> str:
    """``"conllu"`` when the first non-blank line is a comment (``#``) or a token line (an ID and a tab), else
    ``"plain"``."""
    for line in text.splitlines():
        if line.strip():
            return "conllu" if line.startswith("#") or _CONLLU_WORD_LINE.match(line) else "plain"
    return "plain"


def tag_text(
    model_or_run_dir: LoadedTagger | str | os.PathLike,
    text: str,
    input_format: str = "auto",
    source: str = "<input>",
    batch_size: int | None = None,
) -> TaggedText:
    """Tag plain text or CoNLL-U (see the module docstring for both formats).

    Args:
        model_or_run_dir: a :class:`~lstmkit.train.tagger.LoadedTagger` or a run directory.
        text: the input.
        input_format: ``"plain"``, ``"conllu"`` or ``"auto"`` (:func:`detect_format`).
        source: the input's name in error messages.
        batch_size: sentences per batch (default: the run's ``eval_batch_size``).

    Raises:
        DataError: empty input (no sentences), or malformed CoNLL-U (naming the line).
    """
    if input_format not in FORMATS:
        raise ValueError(f"input_format must be one of {FORMATS}, got {input_format!r}")
    if not text.strip():
        raise DataError(f"{source}: empty input, nothing to tag")
    tagger = model_or_run_dir if isinstance(model_or_run_dir, LoadedTagger) else load_tagger(model_or_run_dir)
    kind = detect_format(text) if input_format == "auto" else input_format
    if kind == "conllu":
        sentences = parse_conllu(text, source=source, require_upos=False)
        if not sentences:
            raise DataError(f"{source}: no sentences found")
        tags = tag_sentences(tagger, sentences, batch_size)
        out = io.StringIO()
        write_conllu(sentences, out, **{tagger.tagset: tags})
        return TaggedText(out.getvalue(), kind, len(sentences), sum(len(sentence) for sentence in sentences))
    token_lists = read_plain(text.splitlines())
    tags = tag_sentences(tagger, token_lists, batch_size)
    lines = [" ".join(f"{word}/{tag}" for word, tag in zip(words, line_tags)) + "\n"
             for words, line_tags in zip(token_lists, tags)]
    return TaggedText("".join(lines), kind, len(token_lists), sum(len(words) for words in token_lists))


# ---------------------------------------------------------------------------------------------- command line


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Tag text with a trained tagger. Plain text (one sentence per line, tokens separated by spaces) prints "
        "word/TAG lines; CoNLL-U prints the file with the tag column filled in."
    )
    parser.add_argument("run_dir", metavar="RUN_DIR", help="run directory written by lstmkit train-tagger")
    parser.add_argument("--input", required=True, metavar="FILE", help="the text to tag; - for standard input")
    parser.add_argument("--format", choices=FORMATS, default="auto",
                        help="input format (default: auto: CoNLL-U when the first line is a comment or token line)")
    parser.add_argument("--output", metavar="FILE", default="-", help="where to write (default: - standard output)")
    parser.add_argument("--batch-size", type=int, default=None, metavar="N", help="sentences per batch")
    parser.add_argument("--stats", action="store_true", help="print words and words per second to standard error")
    parser.add_argument("--threads", type=threads_argument, default=0, metavar="N",
                        help="torch CPU threads (default: 0, torch's default; OMP_NUM_THREADS sets that)")


def _read_stdin() -> str:
    """Standard input as UTF-8 text, or a :class:`DataError` naming the first bad byte."""
    raw = getattr(sys.stdin, "buffer", None)
    if raw is None:  # replaced by a text stream (tests, embedding)
        return sys.stdin.read()
    data = raw.read()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise DataError(f"<stdin>: line {line}: byte 0x{data[error.start]:02x} is not valid UTF-8") from None


def run(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.input == "-":
        source, text = "<stdin>", _read_stdin()
    else:
        source, text = args.input, read_utf8_text(args.input)
    tagger = load_tagger(args.run_dir)
    loaded = time.perf_counter()
    result = tag_text(tagger, text, args.format, source, args.batch_size)
    tagged = time.perf_counter()
    if args.output == "-":
        sys.stdout.write(result.text)
        sys.stdout.flush()
    else:
        with open(args.output, "w", encoding="utf-8", newline="\n") as file:
            file.write(result.text)
    if args.stats:
        total = time.perf_counter() - started
        print(f"tagged {result.sentences} sentences, {result.tokens} words ({result.format}) in {tagged - loaded:.2f}s "
              f"({result.tokens / max(tagged - loaded, 1e-9):,.0f} words/s); {total:.2f}s with loading and output",
              file=sys.stderr)
    return 0
