"""Write a lowercased copy of a word-level corpus folder whose training vocabulary is capped at the N most frequent
words (the rest become ``<unk>``): the pretraining corpus of the ULMFiT experiments in RESULTS.md.

Why: the classifiers read lowercased text (``lstmkit.classify.data.tokenize``), and on 2 shared cores the
language model's softmax over WikiText-2's 33,278 cased words took most of each step; over 10,000 lowercased words
the small preset trained at 3,443 tokens/s instead of under 400 (see RESULTS.md).

    python benchmarks/make_lowercase_corpus.py ../shared/data/wikitext2 runs/wt2-lower --vocab 10000
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", help="a folder with train.txt, valid.txt and test.txt")
    parser.add_argument("target", help="where the lowercased copy goes")
    parser.add_argument("--vocab", type=int, default=10000, help="words kept (default: 10000)")
    args = parser.parse_args(argv)
    source, target = Path(args.source), Path(args.target)
    texts = {name: (source / f"{name}.txt").read_text(encoding="utf-8").lower() for name in ("train", "valid", "test")}
    counts = Counter(texts["train"].split())
    keep = {word for word, _ in counts.most_common(args.vocab)} | {"<unk>"}
    target.mkdir(parents=True, exist_ok=True)
    for name, text in texts.items():
        lines = [" ".join(word if word in keep else "<unk>" for word in line.split()) for line in text.split("\n")]
        (target / f"{name}.txt").write_text("\n".join(lines), encoding="utf-8")
    dropped = sum(count for word, count in counts.items() if word not in keep) / sum(counts.values())
    print(f"{len(counts)} lowercased training words, {args.vocab} kept; "
          f"{100 * dropped:.2f}% of training tokens -> <unk>")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
