"""Weight dropout (DropConnect) on a weight matrix, e.g. an LSTM's hidden-to-hidden weights ``w_hh``.

The raw parameter is never modified: the caller drops a copy and hands that copy to the op
("drop w_hh, then call the op"), so there is no parameter surgery and no re-registration.

Shape legend: H hidden size; ``w_hh`` is ``(4H, H)``, but any shape works.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..ops.masks import bernoulli_mask, survivor_scale
from ._checks import check_probability


def drop_weight(
    weight: Tensor,
    p: float = 0.5,
    training: bool = True,
    generator: torch.Generator | None = None,
) -> Tensor:
    r"""DropConnect (Wan et al. 2013): zero each entry of ``weight`` with probability ``p``.

    .. math::
        M_{ij} \sim \mathrm{Bernoulli}(1 - p), \qquad \tilde W = \frac{M}{1 - p} \odot W

    The mask comes from :func:`keep_mask`.

    Args:
        weight: the raw weight, any shape; it is not modified.
        p: probability of dropping an entry. Default: 0.5
        training: drop only when ``True``; otherwise ``weight`` itself is returned.
        generator: optional random generator for the mask.

    Returns:
        A new tensor of ``weight``'s shape with a fresh mask on every call. It is a differentiable function of
        ``weight``, so the gradient reaches the raw parameter, and is zero at the dropped entries.

    Example::

        >>> w_hh = nn.Parameter(torch.randn(16, 4))
        >>> w = drop_weight(w_hh, p=0.5)  # pass w to the LSTM op for this forward pass
    """
    check_probability(p)
    if not training or p == 0.0:
        return weight
    scale = survivor_scale(1.0 - p)  # 1/(1-p), with p as the mask realises it
    return weight * keep_mask(weight, p, generator).to(weight.dtype).mul_(scale)


def keep_mask(weight: Tensor, p: float, generator: torch.Generator | None = None) -> Tensor:
    """Boolean mask of ``weight``'s shape, each entry ``True`` (kept) with probability ``1 - p``, with ``p``
    rounded to a multiple of 2**-16 (:func:`lstmkit.ops.masks.bernoulli_mask`, about 13x faster on CPU than
    ``bernoulli_``; :func:`drop_weight` rescales by the realised keep probability, so the expectation is exact)."""
    return bernoulli_mask(weight.shape, 1.0 - p, generator=generator, device=weight.device)


class WeightDropout(nn.Module):
    r"""Module form of :func:`drop_weight`: holds ``p`` and follows ``self.training``; owns no parameters.

    Args:
        p: probability of dropping an entry. Default: 0.5

    Inputs: weight
        - **weight**: the raw weight, any shape.

    Outputs: dropped
        - **dropped**: a dropped copy of ``weight`` while training, ``weight`` itself in eval.

    Example::

        >>> weight_dropout = WeightDropout(p=0.5)
        >>> w_hh = weight_dropout(lstm.weight_hh_l0)  # then run the layer with w_hh  # doctest: +SKIP
    """

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        check_probability(p)
        self.p = p

    def forward(self, weight: Tensor) -> Tensor:
        return drop_weight(weight, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"
