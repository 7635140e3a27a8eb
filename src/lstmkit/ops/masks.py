"""Bernoulli masks for dropout-like options, drawn from 16-bit slices of 64-bit random words.

Why not ``torch.bernoulli``: on this project's CPU machine ``bernoulli_`` draws a (2048, 512) mask in 12 ms,
``torch.rand`` in 3 ms and 64-bit random words enough for it (one word gives four 16-bit draws) in 0.9 ms, while
a training step of torch.nn.LSTM at T=35, B=16, H=512 takes 39 ms with 2 threads. Weight dropout draws such a
mask on every call, so the draw is most of what it costs (benchmarks/RESULTS.md, "Variants").

How: ``random_(-2**63, None)`` fills int64 words with 64 uniform bits; viewed as int16 they are four independent
uniform integers in [-32768, 32767] each, and ``v < -32768 + k`` is true with probability exactly k / 65536.
So the probability is ``p`` rounded to a multiple of 2**-16 (off by at most 7.6e-6); :func:`realised_probability`
says which, and callers that rescale (dropout's 1/(1-p)) divide by the realised value, which keeps the
expectation exact.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["bernoulli_mask", "realised_probability", "survivor_scale"]

_LEVELS = 1 << 16


def _level(p: float) -> int:
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"probability must be in [0, 1], got {p}")
    return round(p * _LEVELS)


def realised_probability(p: float) -> float:
    """The probability :func:`bernoulli_mask` draws with for ``p``: ``p`` rounded to a multiple of 2**-16."""
    return _level(p) / _LEVELS


def survivor_scale(keep: float) -> float:
    """Dropout's rescaling of kept entries, 1 / (realised keep probability); 0 when nothing can be kept."""
    realised = realised_probability(keep)
    return 1.0 / realised if realised > 0 else 0.0


def _random_words(count: int, generator: torch.Generator | None, device) -> Tensor:
    """``count`` int64 words of 64 uniform bits, the numbers ``empty(count).random_(-2**63, None)`` draws.

    Written out of place so that torch.compile traces it (dynamo refuses the in-place ``random_``): ``randint``
    over [-2**63, 2**63 - 1) consumes the same 64-bit draws and returns each plus 2**63, i.e. with the top bit
    flipped, which the xor flips back. So eager masks are unchanged, and a compiled model draws the same ones
    when inductor is told to use torch's generator (``torch._inductor.config.fallback_random``)."""
    words = torch.randint(-(2**63), 2**63 - 1, (count,), dtype=torch.int64, device=device, generator=generator)
    return torch.bitwise_xor(words, -(2**63))


def bernoulli_mask(
    shape: tuple[int, ...] | torch.Size,
    p: float,
    *,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> Tensor:
    """A bool tensor of ``shape`` whose entries are independently ``True`` with probability
    :func:`realised_probability` ``(p)``. Follows ``generator`` (or torch's default one) like any torch draw."""
    level = _level(p)
    if level in (0, _LEVELS):  # certain outcomes need no draws (and 32768 would not fit in int16)
        return torch.full(tuple(shape), level == _LEVELS, dtype=torch.bool, device=device)
    count = math.prod(shape)
    words = _random_words((count + 3) // 4, generator, device)
    draws = words.view(torch.int16)[:count]  # uniform in [-32768, 32767]
    return (draws < level - (_LEVELS // 2)).view(shape)
