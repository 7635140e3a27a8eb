"""Embedding dropout: drop whole words, i.e. rows of the embedding matrix.

Shape legend: V vocabulary size, E embedding size, and ``*`` any index shape (e.g. T, B).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..ops.masks import check_probability, dropout_mask


def embedding_dropout(
    weight: Tensor,
    words: Tensor,
    p: float = 0.1,
    training: bool = True,
    scale: float | Tensor | None = None,
    padding_idx: int | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    r"""Look up ``words`` in ``weight`` after dropping whole rows (words) of it.

    A word that is dropped is zero at every position where it occurs in the batch, not just at one position
    (Gal and Ghahramani 2016; Merity et al. 2017). Survivors are scaled by :math:`1 / (1 - p)`:

    .. math::
        m_v \sim \mathrm{Bernoulli}(1 - p), \qquad
        \tilde W_{v,:} = \frac{m_v}{1 - p}\, s \odot W_{v,:}, \qquad y = \tilde W[\text{words}]

    Args:
        weight: embedding matrix of shape ``(V, E)``; it is not modified.
        words: integer indices of any shape ``*``.
        p: probability of dropping a word. Default: 0.1
        training: drop only when ``True``; otherwise a plain lookup (still multiplied by ``scale``).
        scale: optional factor for the weight: a number or a tensor broadcastable to ``(V, E)``.
        padding_idx: passed to :func:`torch.nn.functional.embedding` (no gradient for that row).
        generator: optional random generator for the mask.

    Returns:
        Tensor of shape ``(*, E)``. Gradients reach ``weight`` only through the kept rows.

    Example::

        >>> weight = torch.randn(10, 4)
        >>> words = torch.tensor([[1, 2], [1, 3]])
        >>> y = embedding_dropout(weight, words, p=0.5)  # both occurrences of word 1 share one fate
    """
    check_probability(p)
    if training and p > 0.0:
        mask = dropout_mask((weight.size(0), 1), p, dtype=weight.dtype, device=weight.device, generator=generator)
        weight = weight * mask  # (V, E); mask (V, 1)
    if scale is not None:
        weight = weight * scale  # (V, E)
    return F.embedding(words, weight, padding_idx=padding_idx)  # (*, E)


class EmbeddingDropout(nn.Module):
    r"""An :class:`torch.nn.Embedding` whose lookups drop whole words while training.

    Wraps an existing embedding (so its weight can be tied to a decoder) and applies
    :func:`embedding_dropout` to it; follows ``self.training``.

    Args:
        embedding: the embedding to look words up in; its ``padding_idx`` is respected.
        p: probability of dropping a word. Default: 0.1

    Inputs: words
        - **words**: integer tensor of any shape ``*``.

    Outputs: y
        - **y**: ``(*, E)``.

    Attributes:
        embedding: the wrapped :class:`torch.nn.Embedding`.

    Example::

        >>> encoder = EmbeddingDropout(nn.Embedding(10000, 400), p=0.1)
        >>> y = encoder(torch.randint(10000, (35, 8)))  # (35, 8, 400)
    """

    def __init__(self, embedding: nn.Embedding, p: float = 0.1) -> None:
        super().__init__()
        check_probability(p)
        if embedding.max_norm is not None or embedding.sparse:
            raise ValueError("EmbeddingDropout: embeddings with max_norm or sparse=True are not supported")
        self.embedding = embedding
        self.p = p

    def forward(self, words: Tensor) -> Tensor:
        return embedding_dropout(
            self.embedding.weight, words, self.p, self.training, padding_idx=self.embedding.padding_idx
        )

    def extra_repr(self) -> str:
        return f"p={self.p}"
