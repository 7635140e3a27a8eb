"""Weight dropout (DropConnect) on a weight matrix, e.g. an LSTM's hidden-to-hidden weights ``w_hh``.

The pure function :func:`drop_weight` lives in :mod:`lstmkit.ops.masks` (so that :mod:`lstmkit.nn` can use it
without importing this package) and is re-exported here beside its module form. The raw parameter is never
modified: the caller drops a copy and hands that copy to the op ("drop w_hh, then call the op"), so there is no
parameter surgery and no re-registration.

Shape legend: H hidden size; ``w_hh`` is ``(4H, H)``, but any shape works.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..ops.masks import bernoulli_mask, check_probability, drop_weight

__all__ = ["WeightDropout", "drop_weight", "keep_mask"]


def keep_mask(weight: Tensor, p: float, generator: torch.Generator | None = None) -> Tensor:
    """Boolean mask of ``weight``'s shape, each entry ``True`` (kept) with probability ``1 - p``: the entries
    :func:`drop_weight` keeps for the same random state (``p`` rounded to a multiple of 2**-16, see
    :mod:`lstmkit.ops.masks`)."""
    return bernoulli_mask(weight.shape, p, generator=generator, device=weight.device).logical_not_()


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
