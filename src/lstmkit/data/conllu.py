"""CoNLL-U reading and writing for part-of-speech tagging, and plain tokenised text.

A CoNLL-U file (https://universaldependencies.org/format.html) is a sequence of sentences, each made of comment lines
(``# sent_id = ...``) followed by token lines of 10 tab-separated columns, and ended by a blank line::

    ID  FORM  LEMMA  UPOS  XPOS  FEATS  HEAD  DEPREL  DEPS  MISC

ID is a word index (``1``, ``2``, ...), a multiword token range (``1-2``, the surface form of words 1 and 2) or an
empty node (``8.1``). Tagging works on the words only; ranges and empty nodes are kept, untouched, so that
:func:`write_conllu` reproduces a file byte for byte apart from the tags it is given.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TextIO

from lstmkit.data.errors import DataError
from lstmkit.data.textfile import read_utf8_text, split_lines, strip_bom

__all__ = [
    "COLUMN_NAMES",
    "Sentence",
    "read_conllu",
    "parse_conllu",
    "sentence_to_conllu",
    "write_conllu",
    "read_plain",
    "find_conllu_splits",
]

COLUMN_NAMES = ("ID", "FORM", "LEMMA", "UPOS", "XPOS", "FEATS", "HEAD", "DEPREL", "DEPS", "MISC")
"""The 10 CoNLL-U columns, in file order."""

_ID, _FORM, _UPOS, _XPOS = 0, 1, 3, 4  # column indices used here
_WORD_ID = re.compile(r"[1-9][0-9]*")
_RANGE_ID = re.compile(r"([1-9][0-9]*)-([1-9][0-9]*)")
_EMPTY_NODE_ID = re.compile(r"(0|[1-9][0-9]*)\.([1-9][0-9]*)")


@dataclasses.dataclass
class Sentence:
    """One CoNLL-U sentence: the words and their tags, plus what is needed to write it back unchanged.

    Attributes:
        forms: the word forms (column FORM of the word lines, in order).
        upos: universal part-of-speech tags, one per word (``"_"`` where the file has none).
        xpos: language-specific tags, one per word (``"_"`` where the file has none).
        comments: the comment lines before the tokens, ``#`` included, newline excluded.
        token_lines: every token line as read (words, multiword ranges, empty nodes), newline excluded.
        word_line_indices: position in ``token_lines`` of each word's line.
    """

    forms: list[str]
    upos: list[str]
    xpos: list[str]
    comments: list[str]
    token_lines: list[str]
    word_line_indices: list[int]

    def __len__(self) -> int:
        return len(self.forms)

    def comment_value(self, key: str) -> str | None:
        """The value of a ``# key = value`` comment (such as ``sent_id`` or ``text``), or ``None``."""
        prefix = f"# {key} ="
        for comment in self.comments:
            if comment.startswith(prefix):
                return comment[len(prefix) :].strip()
        return None

    @classmethod
    def from_tokens(cls, forms: Sequence[str], comments: Sequence[str] = ()) -> Sentence:
        """A sentence of untagged words (every column but ID and FORM is ``_``), e.g. to write tagger output.

        Raises:
            ValueError: no words, or a form that is empty or holds a tab or line break.
        """
        if not forms:
            raise ValueError("a sentence needs at least one word")
        for form in forms:
            if not form or any(character in form for character in "\t\n\r"):
                raise ValueError(f"a word form must be non-empty without tabs or line breaks, got {form!r}")
        token_lines = [f"{index}\t{form}" + "\t_" * 8 for index, form in enumerate(forms, start=1)]
        return cls(
            forms=list(forms),
            upos=["_"] * len(forms),
            xpos=["_"] * len(forms),
            comments=list(comments),
            token_lines=token_lines,
            word_line_indices=list(range(len(forms))),
        )


class _SentenceBuilder:
    """Collects the lines of the sentence being read."""

    def __init__(self) -> None:
        self.comments: list[str] = []
        self.token_lines: list[str] = []
        self.forms: list[str] = []
        self.upos: list[str] = []
        self.xpos: list[str] = []
        self.word_line_indices: list[int] = []

    @property
    def started(self) -> bool:
        return bool(self.comments or self.token_lines)

    def build(self) -> Sentence:
        return Sentence(self.forms, self.upos, self.xpos, self.comments, self.token_lines, self.word_line_indices)


def _check_token_line(line: str, builder: _SentenceBuilder, require_upos: bool, where: str) -> list[str]:
    """Validate one token line against the sentence so far; return its columns."""
    columns = line.split("\t")
    if len(columns) != len(COLUMN_NAMES):
        raise DataError(f"{where}: expected {len(COLUMN_NAMES)} tab-separated columns, found {len(columns)}")
    for name, value in zip(COLUMN_NAMES, columns):
        if not value:
            raise DataError(f"{where}: column {name} is empty (use '_' for no value)")
    token_id = columns[_ID]
    next_word = len(builder.forms) + 1
    if _WORD_ID.fullmatch(token_id):
        if int(token_id) != next_word:
            raise DataError(f"{where}: word ID {token_id} out of order, expected {next_word}")
        if require_upos and columns[_UPOS] == "_":
            raise DataError(f"{where}: word {token_id} has no UPOS tag ('_')")
        return columns
    range_match = _RANGE_ID.fullmatch(token_id)
    if range_match:
        first, last = int(range_match.group(1)), int(range_match.group(2))
        if first != next_word or last <= first:
            raise DataError(f"{where}: bad multiword token range {token_id}, expected {next_word}-N, N > {next_word}")
        return columns
    empty_match = _EMPTY_NODE_ID.fullmatch(token_id)
    if empty_match:
        if int(empty_match.group(1)) != next_word - 1:
            raise DataError(f"{where}: empty node {token_id} must follow word {empty_match.group(1)}")
        return columns
    raise DataError(f"{where}: bad ID {token_id!r}, expected a word index, a range like 1-2 or an empty node like 8.1")


def parse_conllu(text: str, source: str = "<string>", require_upos: bool = True) -> list[Sentence]:
    """Parse CoNLL-U text into sentences (see :func:`read_conllu`); ``source`` names the text in error messages."""
    sentences: list[Sentence] = []
    builder = _SentenceBuilder()
    line_number = 0

    def finish() -> None:
        nonlocal builder
        if not builder.forms:
            raise DataError(f"{source}: line {line_number}: sentence has no words")
        sentences.append(builder.build())
        builder = _SentenceBuilder()

    for line_number, line in enumerate(split_lines(strip_bom(text)), start=1):
        if not line:
            if builder.started:
                finish()
            continue
        where = f"{source}: line {line_number}"
        if line.startswith("#"):
            if builder.token_lines:
                raise DataError(f"{where}: comment inside a sentence (comments must come before the token lines)")
            builder.comments.append(line)
            continue
        columns = _check_token_line(line, builder, require_upos, where)
        if _WORD_ID.fullmatch(columns[_ID]):
            builder.word_line_indices.append(len(builder.token_lines))
            builder.forms.append(columns[_FORM])
            builder.upos.append(columns[_UPOS])
            builder.xpos.append(columns[_XPOS])
        builder.token_lines.append(line)
    if builder.started:
        finish()
    return sentences


def read_conllu(path: str | os.PathLike[str], require_upos: bool = True) -> list[Sentence]:
    """Read a CoNLL-U file.

    Args:
        path: the UTF-8 file.
        require_upos: reject word lines whose UPOS is ``_`` (gold data for training and evaluation must have tags);
            pass ``False`` to read untagged input for prediction.

    Returns:
        The sentences in file order.

    Raises:
        DataError: missing or empty file, non-UTF-8 bytes, or a malformed line; the message names the file and the
            1-based line number, e.g. ``dev.conllu: line 12: expected 10 tab-separated columns, found 9``. Malformed
            means: not 10 tab-separated columns, an empty column, an ID that is not a word index in order, a range
            ``a-b`` starting at the next word, or an empty node ``w.k`` after word ``w``; a missing UPOS (see above);
            a comment between token lines; or a sentence without words.

    Example::

        >>> sentences = read_conllu("../shared/data/ud_english_ewt/en_ewt-ud-dev.conllu")
        >>> sentences[0].forms, sentences[0].upos
        (['From', 'the', 'AP', 'comes', 'this', 'story', ':'], ['ADP', 'DET', 'PROPN', 'VERB', 'DET', 'NOUN', 'PUNCT'])
    """
    text = read_utf8_text(path)
    if not text:
        raise DataError(f"{path}: file is empty")
    sentences = parse_conllu(text, source=str(path), require_upos=require_upos)
    if not sentences:
        raise DataError(f"{path}: no sentences found")
    return sentences


def _checked_tags(tags: Sequence[str], sentence: Sentence, sentence_index: int, column: str) -> Sequence[str]:
    if len(tags) != len(sentence):
        raise ValueError(f"sentence {sentence_index} has {len(sentence)} words but {len(tags)} {column} tags")
    for tag in tags:
        if not tag or any(character.isspace() for character in tag):
            raise ValueError(f"sentence {sentence_index}: {column} tag {tag!r} must be non-empty without whitespace")
    return tags


def sentence_to_conllu(
    sentence: Sentence, upos: Sequence[str] | None = None, xpos: Sequence[str] | None = None, sentence_index: int = 0
) -> str:
    """One sentence as CoNLL-U text: comments, token lines, and the blank line that ends it.

    Word lines get the UPOS and XPOS columns from ``upos`` / ``xpos`` when given, else from ``sentence.upos`` /
    ``sentence.xpos``; every other column and every other line is written exactly as read.

    Raises:
        ValueError: a tag list of the wrong length, or a tag that is empty or holds whitespace
            (``sentence_index`` is only used to say which sentence).
    """
    upos_tags = _checked_tags(sentence.upos if upos is None else upos, sentence, sentence_index, "UPOS")
    xpos_tags = _checked_tags(sentence.xpos if xpos is None else xpos, sentence, sentence_index, "XPOS")
    lines = list(sentence.token_lines)
    for word_index, line_index in enumerate(sentence.word_line_indices):
        columns = lines[line_index].split("\t")
        columns[_UPOS] = upos_tags[word_index]
        columns[_XPOS] = xpos_tags[word_index]
        lines[line_index] = "\t".join(columns)
    return "".join(f"{line}\n" for line in [*sentence.comments, *lines]) + "\n"


def write_conllu(
    sentences: Sequence[Sentence],
    path_or_file: str | os.PathLike[str] | TextIO,
    upos: Sequence[Sequence[str]] | None = None,
    xpos: Sequence[Sequence[str]] | None = None,
) -> None:
    """Write sentences as CoNLL-U, with predicted tags filled in.

    Args:
        sentences: as returned by :func:`read_conllu` (or built with :meth:`Sentence.from_tokens`).
        path_or_file: a path (written as UTF-8 with ``\\n`` line ends) or an open text file.
        upos: one UPOS tag list per sentence; ``None`` keeps each sentence's own tags.
        xpos: one XPOS tag list per sentence; ``None`` keeps each sentence's own tags.

    Writing what :func:`read_conllu` read, without new tags, reproduces the file byte for byte (for a file that
    follows the format: ``\\n`` line ends and one blank line after every sentence).

    Raises:
        ValueError: the tag lists do not match the sentences in number or length, or a tag is empty or has whitespace.
    """
    for tags, column in ((upos, "UPOS"), (xpos, "XPOS")):
        if tags is not None and len(tags) != len(sentences):
            raise ValueError(f"{len(sentences)} sentences but {len(tags)} {column} tag lists")
    text = "".join(
        sentence_to_conllu(
            sentence,
            None if upos is None else upos[index],
            None if xpos is None else xpos[index],
            sentence_index=index,
        )
        for index, sentence in enumerate(sentences)
    )
    if isinstance(path_or_file, (str, os.PathLike)):
        Path(path_or_file).write_text(text, encoding="utf-8", newline="\n")
    else:
        path_or_file.write(text)


def read_plain(path_or_lines: str | os.PathLike[str] | Iterable[str]) -> list[list[str]]:
    """Read plain tokenised text: one sentence per line, tokens separated by whitespace; blank lines are skipped.

    Args:
        path_or_lines: a UTF-8 file path (a ``str`` is always taken as a path), or an iterable of lines such as an
            open text file or ``sys.stdin`` (line ends are ignored).

    Returns:
        One token list per non-blank line. :meth:`Sentence.from_tokens` turns one into a sentence to write as CoNLL-U.

    Raises:
        DataError: a missing or non-UTF-8 file.
    """
    if isinstance(path_or_lines, (bytes, bytearray)):
        raise TypeError("read_plain takes a path or an iterable of str lines, not bytes")
    if isinstance(path_or_lines, (str, os.PathLike)):
        lines: Iterable[str] = split_lines(read_utf8_text(path_or_lines))
    else:
        lines = path_or_lines
    out = []
    for number, line in enumerate(lines):
        tokens = (strip_bom(line) if number == 0 else line).split()
        if tokens:
            out.append(tokens)
    return out


_SPLIT_PATTERNS = {"train": re.compile(r"train"), "dev": re.compile(r"dev|valid"), "test": re.compile(r"test")}


def find_conllu_splits(directory: str | Path, required: Sequence[str] = ("train", "dev")) -> dict[str, Path]:
    """The CoNLL-U files of a treebank directory, by split: ``*train*.conllu``, ``*dev*.conllu`` (or ``*valid*``),
    ``*test*.conllu``, as in Universal Dependencies (``en_ewt-ud-train.conllu``).

    Args:
        directory: the treebank folder.
        required: splits that must be present.

    Raises:
        DataError: the directory does not exist, a required split has no file, or a split matches several files.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise DataError(f"{directory}: no such directory (expected a folder of CoNLL-U files)")
    files = sorted(path for path in directory.iterdir() if path.suffix == ".conllu" and path.is_file())
    found: dict[str, Path] = {}
    for split, pattern in _SPLIT_PATTERNS.items():
        matches = [path for path in files if pattern.search(path.name)]
        if len(matches) > 1:
            names = ", ".join(path.name for path in matches)
            raise DataError(f"{directory}: several {split} files ({names}); keep one")
        if matches:
            found[split] = matches[0]
    missing = [split for split in required if split not in found]
    if missing:
        raise DataError(f"{directory}: no {' or '.join(missing)} file (expected names like en_ewt-ud-{missing[0]}.conllu)")
    return found
