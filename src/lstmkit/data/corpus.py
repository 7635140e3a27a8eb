"""Language-model corpora: text files -> tokens -> :class:`Vocab` (train only) -> id tensors.

Three sources:

* **word level**, a directory holding a train, a validation and a test file in one of the layouts of
  :data:`WORD_LEVEL_LAYOUTS` (Penn Treebank ``ptb.train.txt``, WikiText ``train.txt`` or ``wiki.train.tokens``).
  Each line is split on whitespace and ``<eos>`` is appended to it, *blank lines included* (a blank line becomes a
  lone ``<eos>``). That is what AWD-LSTM's and PyTorch's word_language_model ``Corpus`` do, so token counts match
  the published ones (PTB 929,589 / 73,760 / 82,430; WikiText-2 2,088,628 / 217,646 / 245,569).
* **character level**, one text file (or a directory holding exactly one ``.txt``): the first 90 % of its characters
  train, the last 10 % validate; there is no separate test text, so ``test`` *is* the validation tensor.
* **built in**, the Python reference manual text that every CPython ships in ``pydoc_data.topics``, so that a demo
  runs without downloading anything (see :func:`builtin_corpus`).

The vocabulary is always built from the training split alone; tokens seen only in validation or test become
``<unk>`` and are counted in :attr:`Corpus.unknown_counts`.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Literal

import torch

from lstmkit.data.errors import DataError
from lstmkit.data.textfile import read_utf8_text, split_lines
from lstmkit.data.vocab import EOS, UNK, Vocab

__all__ = [
    "SPLITS",
    "WORD_LEVEL_LAYOUTS",
    "CHAR_TRAIN_FRACTION",
    "Corpus",
    "load_corpus",
    "load_word_corpus",
    "load_char_corpus",
    "builtin_corpus",
    "builtin_lines",
    "find_split_files",
    "word_tokens",
    "check_length",
]

SPLITS: tuple[str, str, str] = ("train", "valid", "test")
"""The three split names, in this order everywhere."""

WORD_LEVEL_LAYOUTS: tuple[tuple[str, str], ...] = (
    ("PTB", "ptb.{split}.txt"),
    ("WikiText", "{split}.txt"),
    ("WikiText tokens", "wiki.{split}.tokens"),
)
"""(name, file name pattern) of each recognised word-level directory layout, tried in this order."""

CHAR_TRAIN_FRACTION = 0.9
"""Share of a character-level text used for training (the rest validates), as in char-rnn and nanoGPT."""

BUILTIN_SPLIT_BOUNDARIES = (0.8, 0.9)
"""Where the built-in corpus' lines are cut: the first 80 % train, the next 10 % valid, the last 10 % test."""

_BUILTIN_TOKEN = re.compile(r"\w+|[^\w\s]+")  # a run of word characters, or a run of punctuation

Level = Literal["word", "char"]


@dataclasses.dataclass(frozen=True, eq=False)
class Corpus:
    """A language-model corpus: a vocabulary and the three splits as id streams.

    Attributes:
        vocab: built from the training split only.
        train, valid, test: ``torch.long`` tensors of shape ``(N,)``, the token ids of each split in reading order
            (for the character level, ``test`` is the same tensor as ``valid``).
        unknown_counts: split name -> number of tokens that were not in the vocabulary and became ``<unk>``
            (always 0 for train; literal ``<unk>`` tokens in the text are not counted).
        paths: split name -> the file each split was read from.
        level: ``"word"`` or ``"char"``.
    """

    vocab: Vocab
    train: torch.Tensor
    valid: torch.Tensor
    test: torch.Tensor
    unknown_counts: Mapping[str, int]
    paths: Mapping[str, Path]
    level: Level

    def split(self, name: str) -> torch.Tensor:
        """The id tensor of split ``name`` (one of :data:`SPLITS`)."""
        if name not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {name!r}")
        return getattr(self, name)

    def __repr__(self) -> str:
        sizes = ", ".join(f"{name}={self.split(name).numel()}" for name in SPLITS)
        unknown = dict(self.unknown_counts)
        return f"Corpus(level={self.level!r}, vocab size={len(self.vocab)}, {sizes}, unknown={unknown})"


def word_tokens(lines: Iterable[str]) -> list[str]:
    """Whitespace tokens of every line, each line followed by ``<eos>`` (a blank line gives a lone ``<eos>``)."""
    tokens: list[str] = []
    for line in lines:
        tokens.extend(line.split())
        tokens.append(EOS)
    return tokens


def find_split_files(directory: str | os.PathLike[str]) -> dict[str, Path]:
    """Locate the train, valid and test files of a word-level corpus directory.

    The first layout of :data:`WORD_LEVEL_LAYOUTS` whose train file exists is used, and its valid and test files must
    exist too.

    Returns:
        split name -> file path.

    Raises:
        DataError: the directory is missing, no layout's train file is there, or the chosen layout lacks a file
            (the message lists the file names looked for).
    """
    root = Path(directory)
    if not root.exists():
        raise DataError(f"{root}: no such directory")
    if not root.is_dir():
        raise DataError(f"{root}: is a file; a word-level corpus is a directory with train/valid/test files "
                        "(use level='char' for a single text file)")
    for layout_name, pattern in WORD_LEVEL_LAYOUTS:
        files = {split: root / pattern.format(split=split) for split in SPLITS}
        if not files["train"].is_file():
            continue
        missing = [path.name for path in files.values() if not path.is_file()]
        if missing:
            raise DataError(f"{root}: {layout_name} layout is incomplete, missing {', '.join(missing)}")
        return files
    looked_for = ", ".join(pattern.format(split="train") for _, pattern in WORD_LEVEL_LAYOUTS)
    raise DataError(f"{root}: no training file found, looked for {looked_for}")


def _read_nonempty_text(path: Path) -> str:
    text = read_utf8_text(path)
    if not text:
        raise DataError(f"{path}: file is empty")
    return text


def _corpus_from_token_splits(
    token_splits: Mapping[str, Sequence[str]], specials: Sequence[str], paths: Mapping[str, Path], level: Level
) -> Corpus:
    vocab = Vocab.build(token_splits["train"], specials=specials)
    ids: dict[str, torch.Tensor] = {}
    unknown_counts: dict[str, int] = {}
    for name in SPLITS:
        encoded = vocab.encode_counting_unknown(token_splits[name])
        ids[name] = encoded.ids
        unknown_counts[name] = encoded.unknown_count
    return Corpus(vocab, ids["train"], ids["valid"], ids["test"], unknown_counts, dict(paths), level)


def load_word_corpus(directory: str | os.PathLike[str]) -> Corpus:
    """Load a word-level corpus directory (layouts in :data:`WORD_LEVEL_LAYOUTS`).

    Raises:
        DataError: see :func:`find_split_files`; a split file is empty, holds no words, or is not UTF-8.
    """
    paths = find_split_files(directory)
    token_splits: dict[str, list[str]] = {}
    for name, path in paths.items():
        lines = split_lines(_read_nonempty_text(path))
        tokens = word_tokens(lines)
        if len(tokens) == len(lines):  # nothing but <eos>: every line was blank
            raise DataError(f"{path}: contains no words, only blank lines")
        token_splits[name] = tokens
    return _corpus_from_token_splits(token_splits, (UNK, EOS), paths, "word")


def _single_text_file(path: Path) -> Path:
    if path.is_file():
        return path
    if not path.exists():
        raise DataError(f"{path}: no such file or directory")
    candidates = sorted(child for child in path.glob("*.txt") if child.is_file())
    if len(candidates) != 1:
        found = ", ".join(child.name for child in candidates) or "none"
        raise DataError(f"{path}: a character-level corpus directory must hold exactly one .txt file, found {found}")
    return candidates[0]


def load_char_corpus(path: str | os.PathLike[str]) -> Corpus:
    """Load a character-level corpus: one UTF-8 text file, or a directory holding exactly one ``.txt``.

    The first ``int(0.9 * len(text))`` characters train, the rest validate (for tinyshakespeare: 1,003,854 / 111,540).
    ``test`` is the validation tensor itself. The vocabulary holds ``<unk>`` and the training characters (no
    ``<eos>``: line ends are ``"\\n"`` characters like any other).

    Raises:
        DataError: missing path, not exactly one ``.txt`` in a directory, empty or non-UTF-8 file, or a text too short
            to leave a character for each part.
    """
    file_path = _single_text_file(Path(path))
    text = _read_nonempty_text(file_path)
    split_at = int(len(text) * CHAR_TRAIN_FRACTION)
    if split_at == 0 or split_at == len(text):
        raise DataError(f"{file_path}: too short to split 90/10 into train and valid ({len(text)} characters)")
    train_text, valid_text = text[:split_at], text[split_at:]
    token_splits = {"train": train_text, "valid": valid_text, "test": valid_text}
    corpus = _corpus_from_token_splits(token_splits, (UNK,), dict.fromkeys(SPLITS, file_path), "char")
    return dataclasses.replace(corpus, test=corpus.valid)


def builtin_lines() -> list[str]:
    """The built-in corpus text: the Python reference manual topics of ``pydoc_data.topics``, tokenised, one line each.

    Topics are taken in sorted order, each topic's text line by line. A line is tokenised into runs of word characters
    and runs of punctuation (so ``print("hi")`` gives ``print ("  hi  ")``), tokens are joined by single spaces, and
    lines without tokens are dropped. The result depends only on the running CPython's version.
    """
    from pydoc_data.topics import topics  # part of the standard library of every CPython

    lines = []
    for topic in sorted(topics):
        for raw_line in split_lines(topics[topic]):
            tokens = _BUILTIN_TOKEN.findall(raw_line)
            if tokens:
                lines.append(" ".join(tokens))
    return lines


def builtin_corpus(level: Level = "word") -> Corpus:
    """A small corpus that needs no download: the Python reference manual shipped with CPython.

    The lines of :func:`builtin_lines` are split contiguously into the first 80 % (train), the next 10 % (valid) and
    the last 10 % (test). At word level each line gets ``<eos>`` as in :func:`load_word_corpus` (about 90,000 training
    tokens and 4,400 word types on CPython 3.11); at character level each split is its lines joined with ``"\\n"``,
    including a final one. ``paths`` points at the ``pydoc_data.topics`` module file.
    """
    import pydoc_data.topics

    _check_level(level)
    lines = builtin_lines()
    train_end, valid_end = (int(len(lines) * boundary) for boundary in BUILTIN_SPLIT_BOUNDARIES)
    line_splits = {"train": lines[:train_end], "valid": lines[train_end:valid_end], "test": lines[valid_end:]}
    paths = dict.fromkeys(SPLITS, Path(pydoc_data.topics.__file__))
    if level == "word":
        word_splits = {name: word_tokens(part) for name, part in line_splits.items()}
        return _corpus_from_token_splits(word_splits, (UNK, EOS), paths, "word")
    char_splits = {name: "".join(f"{line}\n" for line in part) for name, part in line_splits.items()}
    return _corpus_from_token_splits(char_splits, (UNK,), paths, "char")


def _check_level(level: str) -> None:
    if level not in ("word", "char"):
        raise ValueError(f"level must be 'word' or 'char', got {level!r}")


def load_corpus(path: str | os.PathLike[str] | None = None, level: Level = "word") -> Corpus:
    """Load a language-model corpus.

    Args:
        path: a word-level corpus directory, a character-level text file (or directory with one ``.txt``), or
            ``None`` for the built-in corpus (:func:`builtin_corpus`).
        level: ``"word"`` (whitespace tokens, ``<eos>`` per line) or ``"char"`` (characters, 90/10 split).

    Returns:
        The :class:`Corpus`.

    Raises:
        DataError: missing directory or split file, empty or non-UTF-8 file (see :func:`load_word_corpus`,
            :func:`load_char_corpus`).
        ValueError: an unknown ``level``.

    Example::

        >>> corpus = load_corpus("../shared/data/ptb")
        >>> corpus.train.shape, len(corpus.vocab)
        (torch.Size([929589]), 10000)
    """
    _check_level(level)
    if path is None:
        return builtin_corpus(level)
    if level == "word":
        return load_word_corpus(path)
    return load_char_corpus(path)


def check_length(ids: torch.Tensor | Sequence[int], batch_size: int, bptt: int, split_name: str) -> None:
    """Check that a split is long enough to lay out as ``batch_size`` columns with one full ``bptt`` window.

    :func:`~lstmkit.data.batching.batchify` gives ``len(ids) // batch_size`` rows, and a window of ``bptt`` inputs
    needs ``bptt + 1`` rows (the targets are shifted by one), so at least ``batch_size * (bptt + 1)`` tokens are needed.

    Raises:
        DataError: the split is too short (the message names it and the numbers involved).
        ValueError: ``batch_size`` or ``bptt`` is not positive.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    if bptt < 1:
        raise ValueError(f"bptt must be positive, got {bptt}")
    token_count = ids.numel() if isinstance(ids, torch.Tensor) else len(ids)
    needed = batch_size * (bptt + 1)
    if token_count < needed:
        raise DataError(
            f"{split_name} split has {token_count} tokens, fewer than batch_size {batch_size} x (bptt {bptt} + 1) = "
            f"{needed}; use a smaller batch size or bptt"
        )
