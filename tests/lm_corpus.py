"""Tiny self-written corpora and configurations for the language-model tests (never the real datasets)."""

from __future__ import annotations

import random
from pathlib import Path

SUBJECTS = ["the cat", "a dog", "the old man", "my sister", "the bird", "our teacher"]
VERBS = ["sees", "likes", "finds", "follows", "paints", "hears"]
OBJECTS = ["the house", "a red ball", "the river", "some bread", "the moon", "a small boat"]

# Overrides that make a model and a run small enough for a unit test.
TINY_OVERRIDES = [
    "--model.embedding_size=8",
    "--model.hidden_size=12",
    "--data.batch_size=4",
    "--data.bptt=6",
    "--data.eval_batch_size=2",
    "--data.test_batch_size=2",
    "--threads=1",
    "--train.progress=false",
    "--train.log_every=2",
]


def sentences(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)}" for _ in range(count)]


def write_word_corpus(directory: Path, train_lines: int = 120, seed: int = 0, extra_words: tuple[str, ...] = ()) -> Path:
    """A PTB-layout directory (ptb.{train,valid,test}.txt); validation and test hold a few words unseen in train."""
    directory.mkdir(parents=True, exist_ok=True)
    train = sentences(train_lines, seed)
    if extra_words:
        train.append(" ".join(extra_words))
    (directory / "ptb.train.txt").write_text("\n".join(train) + "\n", encoding="utf-8")
    (directory / "ptb.valid.txt").write_text("\n".join(sentences(20, seed + 1) + ["the zebra sees a unicorn"]) + "\n",
                                             encoding="utf-8")
    (directory / "ptb.test.txt").write_text("\n".join(sentences(20, seed + 2)) + "\n", encoding="utf-8")
    return directory


def write_char_corpus(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(sentences(80, 5)) + "\n", encoding="utf-8")
    return path
