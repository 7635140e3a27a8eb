"""Locked (variational) dropout: one mask per sequence, the same at every time step.

Shape legend: T time steps, B batch, D features.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..ops.masks import check_probability, dropout_mask


def locked_dropout(
    x: Tensor,
    p: float = 0.5,
    training: bool = True,
    batch_first: bool = False,
    generator: torch.Generator | None = None,
) -> Tensor:
    r"""Drop the same features at every time step of a sequence.

    One Bernoulli mask is drawn per sequence and feature, broadcast along time, and the survivors are scaled
    by :math:`1 / (1 - p)` so that the expectation is unchanged (Gal and Ghahramani 2016):

    .. math::
        m_{b,d} \sim \mathrm{Bernoulli}(1 - p), \qquad y_{t,b,d} = \frac{m_{b,d}}{1 - p}\, x_{t,b,d}

    Args:
        x: input of shape ``(T, B, D)``, ``(B, T, D)`` when ``batch_first``, or unbatched ``(T, D)``.
        p: probability of dropping a feature. Default: 0.5
        training: apply dropout only when ``True``; otherwise ``x`` is returned unchanged.
        batch_first: whether ``x`` is ``(B, T, D)``. Ignored for unbatched input.
        generator: optional random generator for the mask.

    Returns:
        Tensor of the same shape as ``x``; a new mask is drawn on every call.

    Example::

        >>> x = torch.ones(5, 2, 3)
        >>> y = locked_dropout(x, p=0.5)
        >>> bool((y == y[0]).all())  # constant over time
        True
    """
    check_probability(p)
    if not training or p == 0.0:
        return x
    if x.dim() not in (2, 3):
        raise ValueError(f"locked_dropout: expected a 2-D (T, D) or 3-D input, but got {x.dim()}-D input")
    time_dim = 1 if (batch_first and x.dim() == 3) else 0
    mask_shape = list(x.shape)
    mask_shape[time_dim] = 1  # (1, B, D), (B, 1, D) or (1, D)
    return x * dropout_mask(mask_shape, p, dtype=x.dtype, device=x.device, generator=generator)


class LockedDropout(nn.Module):
    r"""Module form of :func:`locked_dropout`; follows ``self.training``.

    Args:
        p: probability of dropping a feature. Default: 0.5
        batch_first: whether inputs are ``(B, T, D)``. Default: ``False``

    Inputs: x
        - **x**: ``(T, B, D)``, ``(B, T, D)`` when ``batch_first``, or ``(T, D)``.

    Outputs: y
        - **y**: same shape as ``x``; one mask per sequence, constant over time.

    Example::

        >>> drop = LockedDropout(p=0.3)
        >>> y = drop(torch.randn(35, 8, 400))
    """

    def __init__(self, p: float = 0.5, batch_first: bool = False) -> None:
        super().__init__()
        check_probability(p)
        self.p = p
        self.batch_first = batch_first

    def forward(self, x: Tensor) -> Tensor:
        return locked_dropout(x, self.p, self.training, self.batch_first)

    def extra_repr(self) -> str:
        return f"p={self.p}, batch_first={self.batch_first}"
