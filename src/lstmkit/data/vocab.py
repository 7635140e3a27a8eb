"""Vocabulary: the mapping between tokens (words, characters, tags) and integer ids."""

from __future__ import annotations

import types
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import torch

__all__ = ["UNK", "EOS", "Vocab", "EncodedTokens"]

UNK = "<unk>"
"""The token that stands for every token outside the vocabulary."""

EOS = "<eos>"
"""The token appended at the end of every line of a word-level corpus."""


class EncodedTokens(NamedTuple):
    """Ids of a token sequence and how many of its tokens were not in the vocabulary.

    Attributes:
        ids: one id per token, ``torch.long``, shape ``(N,)``.
        unknown_count: how many tokens were outside the vocabulary and became the unknown id. A token that literally
            reads ``<unk>`` (PTB and WikiText contain it) is in the vocabulary and is not counted.
    """

    ids: torch.Tensor
    unknown_count: int


class Vocab:
    """An ordered, immutable list of distinct tokens; a token's id is its position.

    Build one from training tokens with :meth:`build`: the special tokens come first, in the order given (by default
    ``<unk>`` = 0 and ``<eos>`` = 1), then every other token ordered by descending count, ties broken by first
    occurrence in the training stream. The order depends on the training tokens only, so the same training file always
    gives the same ids. Encoding maps a token outside the vocabulary to the unknown token's id.

    Args:
        itos: the tokens, id order; they must be distinct and include ``unk_token``.
        unk_token: the token that unknown tokens map to.

    Attributes:
        itos: tuple of tokens, ``itos[i]`` is the token of id ``i``.
        stoi: read-only mapping from token to id.
        unk_token, unk_id: the unknown token and its id.
        eos_id: id of ``<eos>`` or ``None`` when the vocabulary has none (a character vocabulary).

    Example::

        >>> vocab = Vocab.build("the cat sat on the mat".split())
        >>> vocab.itos[:4]
        ('<unk>', '<eos>', 'the', 'cat')
        >>> vocab.encode(["the", "dog"])
        [2, 0]
        >>> vocab.decode([2, 3])
        ['the', 'cat']
    """

    def __init__(self, itos: Sequence[str], unk_token: str = UNK) -> None:
        tokens = tuple(itos)
        for token in tokens:
            if not isinstance(token, str):
                raise TypeError(f"vocabulary tokens must be str, got {type(token).__name__}: {token!r}")
        stoi = {token: index for index, token in enumerate(tokens)}
        if len(stoi) != len(tokens):
            duplicates = sorted(token for token, count in Counter(tokens).items() if count > 1)
            raise ValueError(f"vocabulary tokens must be distinct, repeated: {duplicates[:5]}")
        if unk_token not in stoi:
            raise ValueError(f"the unknown token {unk_token!r} must be in the vocabulary")
        self._itos = tokens
        self._stoi = stoi
        self.unk_token = unk_token
        self.unk_id = stoi[unk_token]
        self.eos_id: int | None = stoi.get(EOS)

    @classmethod
    def build(cls, tokens: Iterable[str], specials: Sequence[str] = (UNK, EOS), min_count: int = 1) -> Vocab:
        """Build a vocabulary from a stream of training tokens.

        Args:
            tokens: the training tokens (never validation or test tokens: words seen only there must stay unknown).
            specials: tokens placed first, in this order, whether or not they occur; the first is the unknown token.
            min_count: tokens seen fewer times than this are left out (they will encode as the unknown token).

        Returns:
            The vocabulary: specials, then the other tokens by descending count, ties by first occurrence.
        """
        if not specials:
            raise ValueError("specials must contain at least the unknown token")
        if min_count < 1:
            raise ValueError(f"min_count must be at least 1, got {min_count}")
        counts = Counter(tokens)  # insertion order = order of first occurrence
        special_set = set(specials)
        ranked = sorted(
            (token for token, count in counts.items() if count >= min_count and token not in special_set),
            key=lambda token: -counts[token],  # sorted() is stable: ties keep first-occurrence order
        )
        return cls([*specials, *ranked], unk_token=specials[0])

    @property
    def itos(self) -> tuple[str, ...]:
        """Tokens in id order."""
        return self._itos

    @property
    def stoi(self) -> Mapping[str, int]:
        """Read-only mapping from token to id."""
        return types.MappingProxyType(self._stoi)

    def __len__(self) -> int:
        return len(self._itos)

    def __contains__(self, token: object) -> bool:
        return token in self._stoi

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Vocab):
            return NotImplemented
        return self._itos == other._itos and self.unk_token == other.unk_token

    def __hash__(self) -> int:
        return hash((self._itos, self.unk_token))

    def __repr__(self) -> str:
        preview = ", ".join(repr(token) for token in self._itos[:5])
        more = ", ..." if len(self._itos) > 5 else ""
        return f"Vocab(size={len(self)}, itos=({preview}{more}))"

    def encode(self, tokens: Iterable[str]) -> list[int]:
        """Ids of ``tokens``; a token outside the vocabulary gets :attr:`unk_id`."""
        lookup = self._stoi.get
        unk_id = self.unk_id
        return [lookup(token, unk_id) for token in tokens]

    def encode_counting_unknown(self, tokens: Iterable[str]) -> EncodedTokens:
        """Ids of ``tokens`` as a ``torch.long`` tensor, with the number of tokens that were outside the vocabulary."""
        lookup = self._stoi.get
        ids = [lookup(token, -1) for token in tokens]
        unknown_count = ids.count(-1)
        if unknown_count:
            unk_id = self.unk_id
            ids = [unk_id if index < 0 else index for index in ids]
        return EncodedTokens(torch.tensor(ids, dtype=torch.long), unknown_count)

    def decode(self, ids: Iterable[int] | torch.Tensor) -> list[str]:
        """Tokens of ``ids`` (a sequence of ints or a 1-D integer tensor)."""
        if isinstance(ids, torch.Tensor):
            if ids.dim() != 1:
                raise ValueError(f"decode expects a 1-D tensor of ids, got shape {tuple(ids.shape)}")
            ids = ids.tolist()
        size = len(self._itos)
        tokens = []
        for index in ids:
            if not 0 <= index < size:
                raise IndexError(f"id {index} is outside the vocabulary of size {size}")
            tokens.append(self._itos[index])
        return tokens

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable description (plain lists and strings), the inverse of :meth:`from_dict`."""
        return {"itos": list(self._itos), "unk_token": self.unk_token}

    @classmethod
    def from_dict(cls, state: Mapping[str, Any]) -> Vocab:
        """Rebuild a vocabulary from :meth:`to_dict`'s output."""
        if not isinstance(state, Mapping) or "itos" not in state:
            raise ValueError("a vocabulary dict needs an 'itos' list (as written by Vocab.to_dict)")
        return cls(state["itos"], unk_token=state.get("unk_token", UNK))
