"""Tagging raw text: how much accuracy the treebank tokenizer keeps, measured on the EWT test sentences' ``# text``.

For every test sentence the tagger tags (1) the gold words, (2) the raw ``# text`` line cut by
:func:`lstmkit.data.treebank_tokens` (what ``lstmkit tag`` does with plain text), and (3) the same line split at
spaces only (``lstmkit tag --pretokenized``, and what ``tag`` did before it had a tokenizer). A gold word counts as
right when the tokens of (2) or (3) include one with exactly its characters at its place in the text and the tag
given to that token is the gold tag; so a word glued to its punctuation (``dog.``) is wrong, and so is the full
stop. Also printed: how many gold words each tokenization reproduces exactly (tokenization recall), and the time.

    PYTHONPATH=src python benchmarks/bench_raw_text.py RUN_DIR [--data ../shared/data/ud_english_ewt] [--json F]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from lstmkit.data import find_conllu_splits, read_conllu, treebank_tokens
from lstmkit.tagger.data import sentence_tags
from lstmkit.tagger.api import load_tagger, tag_sentences


def spans(text: str, tokens: list[str]) -> list[tuple[int, int] | None]:
    """Where each token sits in ``text``, found left to right (``None`` for a token not found there)."""
    out, cursor = [], 0
    for token in tokens:
        start = text.find(token, cursor)
        if start < 0:
            out.append(None)
            continue
        out.append((start, start + len(token)))
        cursor = start + len(token)
    return out


def score(texts, gold_words, gold_tags, token_lists, predicted) -> tuple[int, int, int]:
    """(words tagged right, words tokenized right, gold words)."""
    right = tokenized = total = 0
    for text, words, tags, tokens, guesses in zip(texts, gold_words, gold_tags, token_lists, predicted):
        by_span = {span: tag for span, tag in zip(spans(text, tokens), guesses) if span is not None}
        for span, tag in zip(spans(text, words), tags):
            total += 1
            if span is not None and span in by_span:
                tokenized += 1
                right += by_span[span] == tag
    return right, tokenized, total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir")
    parser.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared/data/ud_english_ewt"))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", metavar="FILE")
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    tagger = load_tagger(args.run_dir)
    sentences = [s for s in read_conllu(find_conllu_splits(args.data, required=("test",))["test"])
                 if s.comment_value("text")]
    texts = [s.comment_value("text") for s in sentences]
    gold_words = [list(s.forms) for s in sentences]
    gold_tags = [sentence_tags(s, tagger.tagset) for s in sentences]
    report = {"sentences": len(sentences), "run_dir": args.run_dir}
    for name, tokenize in (("gold words", None), ("treebank tokenizer", treebank_tokens),
                           ("split at spaces", str.split)):
        started = time.perf_counter()
        token_lists = gold_words if tokenize is None else [tokenize(text) or [text] for text in texts]
        predicted = tag_sentences(tagger, token_lists)
        seconds = time.perf_counter() - started
        right, tokenized, total = score(texts, gold_words, gold_tags, token_lists, predicted)
        report[name] = {"accuracy": right / total, "tokenization_recall": tokenized / total, "words": total,
                        "seconds": seconds}
        print(f"{name:20s} accuracy {100 * right / total:6.2f} %  words tokenized as gold "
              f"{100 * tokenized / total:6.2f} %  ({total} gold words, {seconds:.1f} s)")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
