"""Sentences -> vocabularies -> padded tensors for part-of-speech tagging.

Letters: B sentences in a batch, T words of the longest one, U distinct word forms in the batch, C characters of the
longest of those forms.

::

    Sentence.forms / .upos  --TaggingVocabs.build-->  words, chars, tags (from the training split only)
    sentences  --encode_sentences-->  EncodedSentence (word ids, tag ids, form)   [once per split]
    EncodedSentence[]  --make_batch-->  TaggingBatch                             [once per batch]
        word_ids   (B, T)  padded with 0       tags (B, T)  padded with PAD_TAG
        lengths    (B,)    words per sentence
        char_ids   (U, C)  characters of each distinct form, padded with 0
        char_lengths (U,)  word_index (B, T): the row of char_ids that spells each word

The character encoder runs once per distinct form in the batch, not once per word, which is what makes it cheap.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import torch

from lstmkit.data.conllu import Sentence
from lstmkit.data.errors import DataError
from lstmkit.data.vocab import UNK, Vocab

__all__ = [
    "TAGSETS",
    "PAD_TAG",
    "TaggingVocabs",
    "EncodedSentence",
    "TaggingBatch",
    "sentence_tags",
    "encode_sentences",
    "make_batch",
    "word_chars",
]

TAGSETS = ("upos", "xpos")
"""The tag columns a tagger can learn: CoNLL-U's UPOS or XPOS."""

PAD_TAG = -100
"""The tag id of padding positions (``torch.nn.functional.cross_entropy``'s default ``ignore_index``)."""


def sentence_tags(sentence: Sentence, tagset: str) -> list[str]:
    """The ``tagset`` column (``"upos"`` or ``"xpos"``) of a sentence."""
    if tagset not in TAGSETS:
        raise ValueError(f"tagset must be one of {TAGSETS}, got {tagset!r}")
    return sentence.upos if tagset == "upos" else sentence.xpos


def word_chars(form: str, max_chars: int) -> str:
    """The characters the character encoder reads for ``form``: all of them, or for a form longer than
    ``max_chars`` (URLs, e-mail addresses) its first ``max_chars // 2`` and last ``max_chars - max_chars // 2``
    characters, where prefixes and suffixes carry the useful signal."""
    if max_chars < 2:
        raise ValueError(f"max_chars must be at least 2, got {max_chars}")
    if len(form) <= max_chars:
        return form
    head = max_chars // 2
    return form[:head] + form[len(form) - (max_chars - head) :]


@dataclasses.dataclass(frozen=True)
class TaggingVocabs:
    """The three vocabularies of a tagger, built from the training split, and the training count of each word.

    Attributes:
        words: word forms, ``<unk>`` first (id 0), then by descending training count.
        chars: characters, ``<unk>`` first.
        tags: tags, ``<unk>`` first (the id of a gold tag never seen in training; never predicted).
        word_counts: training count of each word id (0 for ``<unk>``), for word dropout.
        tagset: ``"upos"`` or ``"xpos"``: which column the tags come from.
    """

    words: Vocab
    chars: Vocab
    tags: Vocab
    word_counts: tuple[int, ...]
    tagset: str = "upos"

    def __post_init__(self) -> None:
        if self.tagset not in TAGSETS:
            raise ValueError(f"tagset must be one of {TAGSETS}, got {self.tagset!r}")
        if len(self.word_counts) != len(self.words):
            raise ValueError(f"{len(self.word_counts)} word counts for a vocabulary of {len(self.words)} words")

    @classmethod
    def build(cls, sentences: Sequence[Sentence], tagset: str = "upos") -> TaggingVocabs:
        """Vocabularies of the training ``sentences``; every training word is kept (rare ones meet ``<unk>``
        through word dropout instead).

        Raises:
            DataError: no sentences, or a word without a tag in the ``tagset`` column (``"_"``).
        """
        if not sentences:
            raise DataError("no training sentences to build the vocabularies from")
        counts: Counter[str] = Counter()
        for sentence in sentences:
            counts.update(sentence.forms)
        for index, sentence in enumerate(sentences):
            if "_" in sentence_tags(sentence, tagset):
                where = sentence.comment_value("sent_id") or f"number {index + 1}"
                raise DataError(f"training sentence {where} has a word without a {tagset.upper()} tag ('_')")
        words = Vocab.build((form for sentence in sentences for form in sentence.forms), specials=(UNK,))
        chars = Vocab.build((char for form in counts for char in form), specials=(UNK,))
        tags = Vocab.build((tag for sentence in sentences for tag in sentence_tags(sentence, tagset)), specials=(UNK,))
        word_counts = tuple(counts.get(word, 0) if index else 0 for index, word in enumerate(words.itos))
        return cls(words, chars, tags, word_counts, tagset)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data, the inverse of :meth:`from_dict`."""
        return {
            "tagset": self.tagset,
            "words": self.words.to_dict(),
            "chars": self.chars.to_dict(),
            "tags": self.tags.to_dict(),
            "word_counts": list(self.word_counts),
        }

    @classmethod
    def from_dict(cls, state: Mapping[str, Any]) -> TaggingVocabs:
        """Rebuild from :meth:`to_dict`'s output.

        Raises:
            ValueError: a missing key or inconsistent sizes.
        """
        try:
            return cls(
                words=Vocab.from_dict(state["words"]),
                chars=Vocab.from_dict(state["chars"]),
                tags=Vocab.from_dict(state["tags"]),
                word_counts=tuple(int(count) for count in state["word_counts"]),
                tagset=state["tagset"],
            )
        except (KeyError, TypeError) as error:
            raise ValueError(f"not a tagging vocabulary description: {error!r}") from None


class EncodedSentence(NamedTuple):
    """One sentence as ids: ``forms`` (the strings, for the character encoder), ``word_ids`` and ``tag_ids``
    (``None`` for untagged input)."""

    forms: tuple[str, ...]
    word_ids: tuple[int, ...]
    tag_ids: tuple[int, ...] | None


def encode_sentences(
    sentences: Sequence[Sentence] | Sequence[Sequence[str]], vocabs: TaggingVocabs, with_tags: bool = True
) -> list[EncodedSentence]:
    """Encode sentences (:class:`Sentence` objects, or token lists when ``with_tags`` is false).

    Unknown words and tags get the ``<unk>`` id 0.

    Raises:
        ValueError: an empty sentence, or ``with_tags`` with token lists.
    """
    encoded = []
    for index, sentence in enumerate(sentences):
        if isinstance(sentence, Sentence):
            forms = tuple(sentence.forms)
        elif with_tags:
            raise ValueError("tags need Sentence objects (token lists have no tags)")
        else:
            forms = tuple(sentence)
        if not forms:
            raise ValueError(f"sentence {index} has no words")
        tag_ids = tuple(vocabs.tags.encode(sentence_tags(sentence, vocabs.tagset))) if with_tags else None
        encoded.append(EncodedSentence(forms, tuple(vocabs.words.encode(forms)), tag_ids))
    return encoded


class TaggingBatch(NamedTuple):
    """A padded batch of sentences (shapes in the module docstring). Padding positions hold word id 0 and tag
    :data:`PAD_TAG`; ``word_index`` of a padding position is 0 (a real row, to be masked out by ``lengths``)."""

    word_ids: torch.Tensor  # (B, T) long
    lengths: torch.Tensor  # (B,) long, on the CPU
    char_ids: torch.Tensor  # (U, C) long
    char_lengths: torch.Tensor  # (U,) long, on the CPU
    word_index: torch.Tensor  # (B, T) long, into the rows of char_ids
    tags: torch.Tensor | None  # (B, T) long, PAD_TAG where padded; None for untagged input

    @property
    def mask(self) -> torch.Tensor:
        """``(B, T)`` bool: True at real words, False at padding."""
        positions = torch.arange(self.word_ids.size(1))
        return positions.unsqueeze(0) < self.lengths.unsqueeze(1)  # (B, T)

    @property
    def num_tokens(self) -> int:
        return int(self.lengths.sum())

    def to(self, device: torch.device | str) -> TaggingBatch:
        """The batch with its index tensors on ``device`` (``lengths`` and ``char_lengths`` stay on the CPU, as
        packing wants them)."""
        move = lambda tensor: None if tensor is None else tensor.to(device)  # noqa: E731
        return self._replace(
            word_ids=move(self.word_ids),
            char_ids=move(self.char_ids),
            word_index=move(self.word_index),
            tags=move(self.tags),
        )


def make_batch(
    sentences: Sequence[EncodedSentence], vocabs: TaggingVocabs, max_word_chars: int = 32
) -> TaggingBatch:
    """Pad encoded sentences into one :class:`TaggingBatch` (tags included when every sentence has them).

    Args:
        sentences: at least one encoded sentence.
        vocabs: for the characters.
        max_word_chars: longest character sequence per form (see :func:`word_chars`).
    """
    if not sentences:
        raise ValueError("a batch needs at least one sentence")
    batch, longest = len(sentences), max(len(sentence.word_ids) for sentence in sentences)
    with_tags = all(sentence.tag_ids is not None for sentence in sentences)
    word_ids = torch.zeros(batch, longest, dtype=torch.long)
    word_index = torch.zeros(batch, longest, dtype=torch.long)
    tags = torch.full((batch, longest), PAD_TAG, dtype=torch.long) if with_tags else None
    rows: dict[str, int] = {}  # form -> row in char_ids, in order of first occurrence
    for b, sentence in enumerate(sentences):
        n = len(sentence.word_ids)
        word_ids[b, :n] = torch.tensor(sentence.word_ids)
        word_index[b, :n] = torch.tensor([rows.setdefault(form, len(rows)) for form in sentence.forms])
        if tags is not None:
            tags[b, :n] = torch.tensor(sentence.tag_ids)
    spellings = [vocabs.chars.encode(word_chars(form, max_word_chars)) for form in rows]
    char_lengths = torch.tensor([len(spelling) for spelling in spellings], dtype=torch.long)
    char_ids = torch.zeros(len(spellings), int(char_lengths.max()), dtype=torch.long)
    for u, spelling in enumerate(spellings):
        char_ids[u, : len(spelling)] = torch.tensor(spelling)
    lengths = torch.tensor([len(sentence.word_ids) for sentence in sentences], dtype=torch.long)
    return TaggingBatch(word_ids, lengths, char_ids, char_lengths, word_index, tags)
