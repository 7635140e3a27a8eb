"""Probabilities and masks for every dropout-like option: one range check, one meaning of p, one mask helper.

``p`` is always the probability of *dropping* (zeroing) an entry, as in :class:`torch.nn.Dropout`; for zoneout it
is the probability that a unit keeps its previous value. :func:`check_probability` is the one range check,
:func:`bernoulli_mask` the one draw, and :func:`dropout_mask` the one scaled dropout mask (zeros with probability
``p``, survivors ``1 / (1 - p)``) that recurrent dropout, weight dropout, locked and embedding dropout all use.
:func:`drop_weight` is weight dropout (DropConnect) as a pure function, here so that :mod:`lstmkit.nn` needs
nothing from :mod:`lstmkit.regularize`.

The draws are 16-bit slices of 64-bit random words rather than ``torch.bernoulli``, which is several times slower
on CPU (benchmarks/RESULTS.md, "weight_dropout", has the measurements). ``random_(-2**63, None)`` fills int64
words with 64 uniform bits; viewed as int16 they are four independent uniform integers in [-32768, 32767] each,
and ``v < -32768 + k`` is true with probability exactly k / 65536. So a probability is ``p`` rounded to a multiple
of 2**-16 (off by at most 7.6e-6); :func:`realised_probability` says which, and :func:`dropout_scale` divides by
the realised keep probability, which keeps the expectation exact. With the C++ extension, a float mask on the CPU is
drawn in one pass from the same words (``lstmkit.ops._C.fill_lanes``): the same values and the same generator state
after, without the words, the comparison and the conversion as three tensors.
"""

from __future__ import annotations

import math
import numbers
import warnings

import torch
from torch import Tensor

from .layer_op import _cpp, fused_backend

__all__ = [
    "bernoulli_mask",
    "check_probability",
    "drop_weight",
    "dropout_mask",
    "dropout_scale",
    "realised_probability",
    "survivor_scale",
]

_LEVELS = 1 << 16


def check_probability(p: float, name: str = "p", *, allow_one: bool = True) -> float:
    """Return ``p`` as a float, or raise ``ValueError("<name> must be a probability in [0, 1], got <p>")``.

    ``allow_one=False`` makes the range [0, 1), for options where p = 1 would leave nothing to learn
    (an LSTM's weight dropout, recurrent dropout, zoneout)."""
    number = isinstance(p, numbers.Real) and not isinstance(p, bool)
    if not (number and 0 <= p <= 1 and (allow_one or p < 1)):
        raise ValueError(f"{name} must be a probability in [0, {'1]' if allow_one else '1)'}, got {p!r}")
    return float(p)


def _level(p: float) -> int:
    return round(check_probability(p) * _LEVELS)


def realised_probability(p: float) -> float:
    """The probability :func:`bernoulli_mask` draws with for ``p``: ``p`` rounded to a multiple of 2**-16."""
    return _level(p) / _LEVELS


def dropout_scale(p: float) -> float:
    """Dropout's factor for the survivors of a :func:`dropout_mask` with drop probability ``p``:
    ``1 / (1 - p)`` with ``p`` as the mask realises it; 0 when everything is dropped."""
    keep = 1.0 - realised_probability(p)
    return 1.0 / keep if keep > 0 else 0.0


def survivor_scale(keep: float) -> float:
    """Deprecated: takes the *keep* probability. Use :func:`dropout_scale` with the drop probability."""
    warnings.warn(
        "lstmkit.ops.masks.survivor_scale(keep) is deprecated; use dropout_scale(p) with the drop probability p",
        DeprecationWarning,
        stacklevel=2,
    )
    realised = realised_probability(keep)
    return 1.0 / realised if realised > 0 else 0.0


def _random_words(count: int, generator: torch.Generator | None, device) -> Tensor:
    """``count`` int64 words of 64 uniform bits, the numbers ``empty(count).random_(-2**63, None)`` draws.

    Eager code draws them so, in place. Under torch.compile (dynamo refuses the in-place ``random_``) they are
    drawn out of place: ``randint`` over [-2**63, 2**63 - 1) consumes the same 64-bit draws and returns each plus
    2**63, i.e. with the top bit flipped, which the xor flips back (a pass over the words that eager code saves).
    So a compiled model draws the same masks as eager code when inductor is told to use torch's generator
    (``torch._inductor.config.fallback_random``)."""
    if not torch.compiler.is_compiling():  # one pass fewer (benchmarks/RESULTS.md, "Weight dropout, session 6")
        return torch.empty(count, dtype=torch.int64, device=device).random_(-(2**63), None, generator=generator)
    # generator passed only when given: randint's overload with a generator argument needs concrete sizes under
    # torch.compile, and a packed batch's size is symbolic there (lstmkit::packed_zero_state)
    chosen = {} if generator is None else {"generator": generator}
    words = torch.randint(-(2**63), 2**63 - 1, (count,), dtype=torch.int64, device=device, **chosen)
    return torch.bitwise_xor(words, -(2**63))


_ONE_PASS_DTYPES = (torch.float32, torch.float64, torch.bfloat16)


def _one_pass(shape, threshold: int, below: float, at_or_above: float, dtype, generator, device) -> Tensor | None:
    """The mask ``where(lanes < threshold, below, at_or_above)`` drawn by the C++ extension in one pass from the very
    words :func:`_random_words` would draw (same generator, same state after), or None where it does not serve:
    extension not built or the Python kernels forced (:func:`lstmkit.ops.fused_backend`), not a CPU float mask, or
    under torch.compile."""
    fill = getattr(_cpp, "fill_lanes", None)
    if (fill is None or dtype not in _ONE_PASS_DTYPES or torch.compiler.is_compiling()
            or torch.device(device if device is not None else "cpu").type != "cpu" or fused_backend() != "cpp"):
        return None
    # a large mask (zoneout's are (T, B, H)) from the kernels' workspace pool: a buffer no tensor refers to any more,
    # not fresh pages on every call (csrc/lstm_layer.cpp, "workspace pool"); an older build without it: torch.empty
    pooled = getattr(_cpp, "pooled_empty", None)
    out = pooled(list(shape), dtype) if pooled is not None else torch.empty(tuple(shape), dtype=dtype)
    fill(out, threshold, below, at_or_above, generator)
    return out


def _uniform_int16(count: int, generator: torch.Generator | None, device) -> Tensor:
    """``count`` independent integers, uniform in [-32768, 32767]: 16-bit slices of 64-bit random words."""
    return _random_words((count + 3) // 4, generator, device).view(torch.int16)[:count]


def bernoulli_mask(
    shape: tuple[int, ...] | torch.Size,
    p: float,
    *,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.bool,
) -> Tensor:
    """A tensor of ``shape`` whose entries are independently ``True`` (1 in another ``dtype``) with probability
    :func:`realised_probability` ``(p)``, e.g. zoneout's keep-previous mask. Follows ``generator`` (or torch's
    default one) like any torch draw."""
    level = _level(p)
    if level in (0, _LEVELS):  # certain outcomes need no draws (and 32768 would not fit in int16)
        return torch.full(tuple(shape), level == _LEVELS, dtype=dtype, device=device)
    threshold = level - (_LEVELS // 2)
    if (fast := _one_pass(shape, threshold, 1.0, 0.0, dtype, generator, device)) is not None:
        return fast
    hit = (_uniform_int16(math.prod(shape), generator, device) < threshold).view(shape)
    return hit if dtype == torch.bool else hit.to(dtype)


def dropout_mask(
    shape: tuple[int, ...] | torch.Size,
    p: float,
    *,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    r"""The scaled mask of dropout with drop probability ``p``: each entry independently 0 with probability ``p``
    (as realised, :func:`realised_probability`), else :func:`dropout_scale` ``(p)`` = :math:`1 / (1 - p)`, so
    ``x * mask`` has the expectation of ``x``. A tensor of ``shape`` in ``dtype``."""
    level = _level(p)
    if level == 0:
        return torch.ones(tuple(shape), dtype=dtype, device=device)
    if level == _LEVELS:
        return torch.zeros(tuple(shape), dtype=dtype, device=device)
    threshold = level - (_LEVELS // 2)
    if (fast := _one_pass(shape, threshold, 0.0, dropout_scale(p), dtype, generator, device)) is not None:
        return fast
    kept = _uniform_int16(math.prod(shape), generator, device) >= threshold  # dropped below the level
    # (torch.where in one pass is slower here: benchmarks/RESULTS.md, "Weight dropout, session 6")
    return kept.view(shape).to(dtype).mul_(dropout_scale(p))


def drop_weight(
    weight: Tensor,
    p: float = 0.5,
    training: bool = True,
    generator: torch.Generator | None = None,
) -> Tensor:
    r"""DropConnect (Wan et al. 2013): zero each entry of ``weight`` with probability ``p``.

    .. math::
        M_{ij} \sim \mathrm{Bernoulli}(1 - p), \qquad \tilde W = \frac{M}{1 - p} \odot W

    Args:
        weight: the raw weight, any shape; it is not modified.
        p: probability of dropping an entry. Default: 0.5
        training: drop only when ``True``; otherwise ``weight`` itself is returned.
        generator: optional random generator for the mask.

    Returns:
        A new tensor of ``weight``'s shape with a fresh mask (:func:`dropout_mask`) on every call. It is a
        differentiable function of ``weight``, so the gradient reaches the raw parameter, and is zero at the
        dropped entries.

    Example::

        >>> w_hh = torch.nn.Parameter(torch.randn(16, 4))
        >>> w = drop_weight(w_hh, p=0.5)  # pass w to the LSTM op for this forward pass
    """
    check_probability(p)
    if not training or p == 0.0:
        return weight
    return weight * dropout_mask(weight.shape, p, dtype=weight.dtype, device=weight.device, generator=generator)
