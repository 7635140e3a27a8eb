"""Word dropout: replace rare training words by the unknown word, so its embedding learns to stand for unseen ones.

Shape legend: V vocabulary size, and ``*`` any index shape (e.g. B, T).

A word seen ``c`` times in training is replaced with probability ``alpha / (alpha + c)`` (Kiperwasser and Goldberg
2016, used by many BiLSTM taggers after Plank et al. 2016): singletons often, frequent words almost never. Unlike
:func:`~lstmkit.regularize.embedding_dropout` the decision is per position and nothing is rescaled: the word's
vector is swapped for the ``<unk>`` vector, which is what the model meets at test time for unseen words.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

__all__ = ["word_dropout_probabilities", "word_dropout", "WordDropout"]


def word_dropout_probabilities(counts: Sequence[int] | Tensor, alpha: float) -> Tensor:
    r"""Per-word replacement probabilities :math:`\alpha / (\alpha + c_v)`, shape ``(V,)``, float32.

    Args:
        counts: training count of each word id (non-negative).
        alpha: the rarity scale; 0 disables dropout (all probabilities 0).
    """
    if alpha < 0:
        raise ValueError(f"word dropout alpha must be non-negative, got {alpha}")
    counts = torch.as_tensor(counts, dtype=torch.float32)  # (V,)
    if (counts < 0).any():
        raise ValueError("word counts must be non-negative")
    if alpha == 0:
        return torch.zeros_like(counts)
    return alpha / (alpha + counts)  # (V,)


def word_dropout(
    words: Tensor,
    probabilities: Tensor,
    unk_id: int = 0,
    training: bool = True,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Replace each position of ``words`` by ``unk_id`` with the probability of its word.

    Args:
        words: integer word ids of any shape ``*``.
        probabilities: ``(V,)`` replacement probability per word id (see :func:`word_dropout_probabilities`).
        unk_id: the id that replaces dropped words. Default: 0
        training: replace only when ``True``; otherwise ``words`` is returned as it is.
        generator: optional random generator.

    Returns:
        Word ids of the same shape; a new tensor when training, ``words`` itself otherwise.

    Example::

        >>> probabilities = word_dropout_probabilities([0, 1, 100], alpha=0.25)   # <unk>, a singleton, a frequent word
        >>> word_dropout(torch.tensor([1, 2, 2]), probabilities).shape
        torch.Size([3])
    """
    if not training:
        return words
    p = probabilities[words]  # (*)
    dropped = torch.rand(words.shape, generator=generator, device=words.device) < p  # (*)
    return words.masked_fill(dropped, unk_id)


class WordDropout(nn.Module):
    """:func:`word_dropout` with the probabilities kept as a buffer (saved in the ``state_dict``); follows
    ``self.training``.

    Args:
        counts: training count of each word id, length V.
        alpha: the rarity scale. Default: 0.25
        unk_id: the unknown word's id. Default: 0

    Inputs: words (integer tensor of any shape). Outputs: word ids of the same shape.

    Attributes:
        probabilities: ``(V,)`` buffer of replacement probabilities.
    """

    def __init__(self, counts: Sequence[int] | Tensor, alpha: float = 0.25, unk_id: int = 0) -> None:
        super().__init__()
        self.alpha = float(alpha)
        self.unk_id = unk_id
        self.register_buffer("probabilities", word_dropout_probabilities(counts, alpha))

    def forward(self, words: Tensor) -> Tensor:
        return word_dropout(words, self.probabilities, self.unk_id, self.training)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}, unk_id={self.unk_id}"
