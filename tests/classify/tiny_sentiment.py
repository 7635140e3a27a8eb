"""Tiny self-written sentiment data for the classifier tests: SST-style trees and MR-style files (never the real
datasets). Positive sentences use positive words, negative ones negative words, so a small model can learn them."""

from __future__ import annotations

import random
from pathlib import Path

POSITIVE = ["great", "moving", "witty", "gorgeous", "fun"]
NEGATIVE = ["dull", "boring", "awful", "tedious", "flat"]
NOUNS = ["film", "movie", "story", "cast", "script"]


def _sentence(rng: random.Random, label: int) -> tuple[str, str, str, str]:
    """(determiner, adjective, noun, label) pieces of one sentence of sentiment ``label`` (0-4)."""
    words = POSITIVE if label > 2 else NEGATIVE if label < 2 else ["plain", "long", "new"]
    return rng.choice(["a", "the"]), rng.choice(words), rng.choice(NOUNS), str(label)


def tree(rng: random.Random, label: int) -> str:
    det, adj, noun, lab = _sentence(rng, label)
    return f"({lab} (2 (2 {det}) ({lab} (2 {adj}) (2 {noun}))) (2 .))" if label != 2 else \
        f"(2 (2 (2 {det}) (2 (2 {adj}) (2 {noun}))) (2 .))"


def write_sst(directory: Path, sizes: tuple[int, int, int] = (60, 20, 20), seed: int = 0) -> Path:
    """An SST folder (train.txt, dev.txt, test.txt) of one-tree-per-line sentences with labels 0-4."""
    directory.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    for name, count in zip(("train.txt", "dev.txt", "test.txt"), sizes):
        lines = [tree(rng, index % 5) for index in range(count)]
        (directory / name).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return directory


def write_mr(directory: Path, per_class: int = 30, seed: int = 0) -> Path:
    """An MR folder: rt-polarity.neg and rt-polarity.pos, lowercased lines."""
    directory.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    for name, label in (("rt-polarity.neg", 0), ("rt-polarity.pos", 4)):
        lines = [" ".join(_sentence(rng, label)[:3]) + " ." for _ in range(per_class)]
        (directory / name).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return directory
