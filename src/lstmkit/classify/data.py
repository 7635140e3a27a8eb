"""Sentence classification data: the Stanford Sentiment Treebank (SST), the MR sentence polarity data, one tokenizer
for everything, cross-validation folds, and padded batches of similar length.

::

    sst/{train,dev,test}.txt  (PTB trees, one per line) --read_sst--> SSTTree: tokens, root label, labelled phrases
        --sst_examples(task="sst2"|"sst5", phrases)--> Example(tokens, label)
        (SST-2 drops neutral, maps 0/1 -> 0, 3/4 -> 1)
    rt_polarity/rt-polarity.{neg,pos} --read_mr--> Example(tokens, 0 | 1) --mr_folds(k=10, seed)--> fold of each example
    Example lists --encode with a Vocab--> id lists --batch_plan (sortish)--> make_batch --> ClassifierBatch

Every example is tokenized by :func:`tokenize` (lowercased, PTB-style clitics and punctuation split off), so the
trees' tokens, MR's lines and text typed at ``lstmkit classify`` look alike to the model.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import torch

from ..data import DataError, Vocab, read_utf8_text, split_lines

__all__ = [
    "TASKS",
    "LABELS",
    "Example",
    "SSTTree",
    "tokenize",
    "parse_tree",
    "read_sst",
    "sst_examples",
    "read_mr",
    "mr_folds",
    "ClassifierBatch",
    "make_batch",
    "task_splits",
    "target_text",
]

TASKS = ("sst2", "sst5", "mr")
"""The classification tasks the readers know."""

LABELS = {
    "sst2": ("negative", "positive"),
    "sst5": ("very negative", "negative", "neutral", "positive", "very positive"),
    "mr": ("negative", "positive"),
}
"""Label names by task, in id order."""

SST_FILES = {"train": "train.txt", "dev": "dev.txt", "test": "test.txt"}
MR_FILES = ("rt-polarity.neg", "rt-polarity.pos")  # label 0, label 1

_PTB_ESCAPES = {"-LRB-": "(", "-RRB-": ")", "-LSB-": "[", "-RSB-": "]", "-LCB-": "{", "-RCB-": "}"}
_TOKEN = re.compile(
    r"n't|'(?:s|re|ve|ll|d|m)\b|\w+(?:[-./]\w+)*(?=n't\b)|\w+(?:[-./]\w+)*|\.\.\.|--|``|''|[^\w\s]"
)
_QUOTES = {"``": '"', "''": '"'}


def tokenize(text: str) -> list[str]:
    """Lowercased tokens of ``text``, split as the Penn Treebank does: clitics (``'s``, ``n't``...) and punctuation
    become tokens of their own; hyphenated words, numbers like ``3.5`` and abbreviations like ``j.r.r`` stay whole.

    Example::

        >>> tokenize("It isn't Jean-Claud Van Damme's best (sadly).")
        ['it', 'is', "n't", 'jean-claud', 'van', 'damme', "'s", 'best', '(', 'sadly', ')', '.']
    """
    return [_QUOTES.get(token, token) for token in _TOKEN.findall(text.lower())]


class Example(NamedTuple):
    """One labelled text: its tokens (:func:`tokenize`'d) and its label id."""

    tokens: tuple[str, ...]
    label: int


@dataclasses.dataclass(frozen=True)
class SSTTree:
    """One SST sentence: its tokens, the sentiment of the whole sentence (0-4) and of each of its phrases.

    Attributes:
        tokens: the sentence's tokens (leaves, PTB escapes undone, then :func:`tokenize`'d).
        label: the root's label, 0 (very negative) to 4 (very positive).
        phrases: ``(label, tokens)`` of every node of the tree, the root included, leaves to root.
    """

    tokens: tuple[str, ...]
    label: int
    phrases: tuple[tuple[int, tuple[str, ...]], ...]


def _leaf_tokens(word: str) -> list[str]:
    word = _PTB_ESCAPES.get(word, word).replace("\\/", "/").replace("\\*", "*")
    return tokenize(word)


def parse_tree(line: str, where: str = "<tree>") -> SSTTree:
    """Parse one SST tree, e.g. ``(3 (2 It) (4 (4 works) (2 .)))``.

    Raises:
        DataError: unbalanced parentheses, a label other than 0-4, a node without words, or text after the tree;
            the message starts with ``where`` (``file: line N``).
    """
    pieces = re.findall(r"\(|\)|[^\s()]+", line)
    if not pieces or pieces[0] != "(":
        raise DataError(f"{where}: expected a tree starting with '(', got {line.strip()[:40]!r}")
    phrases: list[tuple[int, tuple[str, ...]]] = []
    position = 0

    def node() -> tuple[int, list[str]]:
        nonlocal position
        position += 1  # the "("
        if position >= len(pieces) or pieces[position] in "()":
            raise DataError(f"{where}: a node without a label at token {position + 1}")
        text = pieces[position]
        if text not in ("0", "1", "2", "3", "4"):
            raise DataError(f"{where}: label {text!r} is not a sentiment 0-4")
        label = int(text)
        position += 1
        tokens: list[str] = []
        while True:
            if position >= len(pieces):
                raise DataError(f"{where}: unbalanced parentheses: the tree is not closed")
            piece = pieces[position]
            if piece == ")":
                position += 1
                break
            if piece == "(":
                tokens.extend(node()[1])
            else:
                tokens.extend(_leaf_tokens(piece))
                position += 1
        if not tokens:
            raise DataError(f"{where}: a node (label {label}) without words")
        phrases.append((label, tuple(tokens)))
        return label, tokens

    label, tokens = node()
    if position != len(pieces):
        raise DataError(f"{where}: unexpected text after the tree: {' '.join(pieces[position:position + 3])!r}")
    return SSTTree(tuple(tokens), label, tuple(phrases))


def read_sst(path: str | os.PathLike) -> list[SSTTree]:
    """The trees of one SST file (one tree per line; blank lines are skipped).

    Raises:
        DataError: a missing or non-UTF-8 file, a malformed tree (naming file and line), or no trees at all.
    """
    path = Path(path)
    trees = []
    for number, line in enumerate(split_lines(read_utf8_text(path)), start=1):
        if line.strip():
            trees.append(parse_tree(line, f"{path}: line {number}"))
    if not trees:
        raise DataError(f"{path}: no trees")
    return trees


def sst_examples(trees: Sequence[SSTTree], task: str, phrases: bool = False) -> list[Example]:
    """Sentence (or phrase) examples of an SST task.

    Args:
        trees: from :func:`read_sst`.
        task: ``"sst5"`` (labels 0-4) or ``"sst2"`` (neutral dropped; 0, 1 -> negative, 3, 4 -> positive).
        phrases: also every labelled phrase of every tree (Tai et al. 2015 train on them), each distinct
            (tokens, label) once; the sentences themselves come first.
    """
    if task not in ("sst2", "sst5"):
        raise ValueError(f"task must be 'sst2' or 'sst5', got {task!r}")

    def label_of(label: int) -> int | None:
        if task == "sst5":
            return label
        return None if label == 2 else int(label > 2)

    examples, seen = [], set()
    for tree in trees:
        label = label_of(tree.label)
        if label is not None:
            examples.append(Example(tree.tokens, label))
            seen.add((tree.tokens, label))
    if phrases:
        for tree in trees:
            for raw, tokens in tree.phrases:
                label = label_of(raw)
                if label is not None and (tokens, label) not in seen:
                    seen.add((tokens, label))
                    examples.append(Example(tokens, label))
    return examples


def read_mr(directory: str | os.PathLike) -> list[Example]:
    """The MR sentence polarity data: ``rt-polarity.neg`` (label 0) then ``rt-polarity.pos`` (label 1).

    Raises:
        DataError: a missing file, bytes that are not UTF-8, or a line without words (naming file and line).
    """
    directory = Path(directory)
    examples = []
    for label, name in enumerate(MR_FILES):
        path = directory / name
        if not path.is_file():
            raise DataError(f"{directory}: no {name} (expected the MR files {', '.join(MR_FILES)})")
        for number, line in enumerate(split_lines(read_utf8_text(path)), start=1):
            tokens = tokenize(line)
            if not tokens:
                raise DataError(f"{path}: line {number}: no words")
            examples.append(Example(tuple(tokens), label))
    return examples


def mr_folds(count: int, folds: int = 10, seed: int = 0) -> list[int]:
    """The cross-validation fold (0 .. folds-1) of each of ``count`` examples: a seeded permutation dealt out in
    turn, so fold sizes differ by at most one and the same seed always gives the same folds."""
    if folds < 2:
        raise ValueError(f"folds must be at least 2, got {folds}")
    if count < folds:
        raise DataError(f"{count} examples cannot make {folds} folds")
    order = torch.randperm(count, generator=torch.Generator().manual_seed(seed)).tolist()
    fold = [0] * count
    for rank, index in enumerate(order):
        fold[index] = rank % folds
    return fold


def task_splits(
    path: str | os.PathLike, task: str, *, phrases: bool = False, fold: int = 0, folds: int = 10, seed: int = 0
) -> dict[str, list[Example]]:
    """``{"train": ..., "dev": ..., "test": ...}`` examples of a task.

    SST: the treebank's three files (phrases added to train only). MR: fold ``fold`` of a seeded ``folds``-way
    split is the test set; of the other examples a seeded ninth is the dev set (for choosing the checkpoint) and the
    rest is trained on.

    Raises:
        DataError: missing or malformed files, or a fold outside 0 .. folds-1.
    """
    path = Path(path)
    if task not in TASKS:
        raise DataError(f"unknown task {task!r}; choose from {', '.join(TASKS)}")
    if not path.is_dir():
        raise DataError(f"{path}: no such data directory")
    if task in ("sst2", "sst5"):
        missing = [name for name in SST_FILES.values() if not (path / name).is_file()]
        if missing:
            raise DataError(f"{path}: no {missing[0]} (an SST folder holds {', '.join(SST_FILES.values())})")
        return {split: sst_examples(read_sst(path / name), task, phrases and split == "train")
                for split, name in SST_FILES.items()}
    if not 0 <= fold < folds:
        raise DataError(f"fold {fold} is outside 0 .. {folds - 1}")
    examples = read_mr(path)
    assigned = mr_folds(len(examples), folds, seed)
    test = [example for example, f in zip(examples, assigned) if f == fold]
    rest = [example for example, f in zip(examples, assigned) if f != fold]
    dev_mark = torch.randperm(len(rest), generator=torch.Generator().manual_seed(seed + 1 + fold)).tolist()
    dev_size = len(rest) // (folds - 1)
    dev_set = set(dev_mark[:dev_size])
    return {
        "train": [example for index, example in enumerate(rest) if index not in dev_set],
        "dev": [example for index, example in enumerate(rest) if index in dev_set],
        "test": test,
    }


def target_text(path: str | os.PathLike, seed: int = 0) -> tuple[list[list[str]], list[list[str]]]:
    """The tokenized text of a target corpus for fine-tuning a language model: ``(train lines, valid lines)``.

    - an SST folder: the sentences of ``train.txt`` (train) and ``dev.txt`` (valid); never the test trees;
    - an MR folder: its lines, a seeded 90 % / 10 % split;
    - a folder with ``train.txt`` and ``valid.txt`` of plain text, or one plain text file (seeded 90 % / 10 %).

    Raises:
        DataError: nothing usable at ``path``.
    """
    path = Path(path)

    def plain(file: Path) -> list[list[str]]:
        return [tokens for tokens in map(tokenize, split_lines(read_utf8_text(file))) if tokens]

    def split(lines: list[list[str]]) -> tuple[list[list[str]], list[list[str]]]:
        order = torch.randperm(len(lines), generator=torch.Generator().manual_seed(seed)).tolist()
        cut = max(1, len(lines) // 10)
        valid = set(order[:cut])
        return ([line for i, line in enumerate(lines) if i not in valid],
                [line for i, line in enumerate(lines) if i in valid])

    if path.is_file():
        train, valid = split(plain(path))
    elif not path.is_dir():
        raise DataError(f"{path}: no such file or directory")
    elif (path / "dev.txt").is_file() and (path / "train.txt").is_file():
        train = [list(tree.tokens) for tree in read_sst(path / "train.txt")]
        valid = [list(tree.tokens) for tree in read_sst(path / "dev.txt")]
    elif all((path / name).is_file() for name in MR_FILES):
        train, valid = split([list(example.tokens) for example in read_mr(path)])
    elif (path / "train.txt").is_file() and (path / "valid.txt").is_file():
        train, valid = plain(path / "train.txt"), plain(path / "valid.txt")
    else:
        raise DataError(f"{path}: not an SST folder, an MR folder, a folder with train.txt and valid.txt, or a file")
    if not train or not valid:
        raise DataError(f"{path}: too little text to fine-tune on ({len(train)} train / {len(valid)} valid lines)")
    return train, valid


# ------------------------------------------------------------------------------------------------------ batches


class ClassifierBatch(NamedTuple):
    """Padded examples, time-major as the language model reads them.

    Attributes:
        words: ``(T, B)`` token ids, padded after each example's end with the unknown id (never read as input
            to a real position: the encoder runs forwards only).
        lengths: ``(B,)`` tokens per example (at least 1).
        labels: ``(B,)`` label ids (``-1`` when unknown, e.g. text to classify).
    """

    words: torch.Tensor
    lengths: torch.Tensor
    labels: torch.Tensor

    @property
    def mask(self) -> torch.Tensor:
        """``(T, B)`` bool, True at real tokens."""
        steps = self.words.size(0)
        return torch.arange(steps).unsqueeze(1) < self.lengths.unsqueeze(0)


def make_batch(ids: Sequence[Sequence[int]], labels: Sequence[int] | None, pad_id: int) -> ClassifierBatch:
    """Pad id lists into a :class:`ClassifierBatch`; an empty list becomes one ``pad_id`` token.

    Raises:
        ValueError: no examples, or labels of another count.
    """
    if not ids:
        raise ValueError("a batch needs at least one example")
    if labels is not None and len(labels) != len(ids):
        raise ValueError(f"{len(ids)} examples but {len(labels)} labels")
    lengths = [max(1, len(row)) for row in ids]
    words = torch.full((max(lengths), len(ids)), pad_id, dtype=torch.long)  # (T, B)
    for column, row in enumerate(ids):
        if row:
            words[: len(row), column] = torch.as_tensor(row, dtype=torch.long)
    label_tensor = torch.as_tensor(labels if labels is not None else [-1] * len(ids), dtype=torch.long)
    return ClassifierBatch(words, torch.as_tensor(lengths, dtype=torch.long), label_tensor)


def encode(examples: Sequence[Example] | Sequence[Sequence[str]], vocab: Vocab) -> list[list[int]]:
    """Token ids of each example (or token list); unknown tokens get the vocabulary's unknown id."""
    return [vocab.encode(example.tokens if isinstance(example, Example) else example) for example in examples]
