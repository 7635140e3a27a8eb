"""The LSTM written as its equations. Autograd does the backward; this is the oracle the tests trust.

Letters used in shape comments:
    T  time steps            B  batch size (the largest one for packed input)
    I  input features        H  hidden units (cell size)
    P  size of h: the projection size when ``w_hr`` is given, else H
    N  rows of packed data: the sum of all sequence lengths (T * B for padded input)

Gate order is torch's: input (i), forget (f), cell candidate (g), output (o), stacked in that order along the
4H rows of ``w_ih`` and ``w_hh``::

    i = sigmoid(W_i x + R_i h + b_i)      f = sigmoid(W_f x + R_f h + b_f)
    g = tanh(W_g x + R_g h + b_g)         o = sigmoid(W_o x + R_o h + b_o)
    c' = f * c + i * g                    h' = o * tanh(c')     (then h' = w_hr h' with a projection)

One (B, I) x (I, 4H) matmul computes all four pre-activations at once; ``chunk(4)`` splits them. That is the same
arithmetic as four separate (I, H) matmuls, done as one bigger, faster one.

Variants (all optional, see :class:`Variant`; with none given the cell is exactly the one above)::

    recurrent dropout   h fed back = h * m, one mask m per sequence               (Gal and Ghahramani 2016)
    layer norm          gates = LN_ih(W x) + LN_hh(R h) + b ; h' = o * tanh(LN_c(c'))  (Ba et al. 2016, eqs. 20-22)
    peepholes           i, f see c (the previous cell), o sees c' (the new one)   (Gers et al. 2002)
    cell clip           c' = clamp(c', -clip, clip)
    zoneout             h' = d_h h + (1 - d_h) h',  c' = d_c c + (1 - d_c) c'       (Krueger et al. 2017)
                        d ~ Bernoulli(p) per unit and step in training; d = p (the expectation) in eval
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor
from torch._higher_order_ops.scan import scan

__all__ = [
    "LAYER_NORM_EPS",
    "NO_VARIANT",
    "CellGates",
    "Variant",
    "lstm_cell_gates_ref",
    "lstm_cell_ref",
    "lstm_layer_gates_ref",
    "lstm_layer_ref",
    "lstm_layer_scan",
]

LAYER_NORM_EPS = 1e-5


class Variant(NamedTuple):
    """Optional extras of one layer in one direction. Weights come from the module; masks are drawn by the caller
    so that every implementation sees the same randomness.

    For :func:`lstm_cell_ref` the zoneout masks are one step's (B, P) / (B, H); for the layer functions they
    follow the input's layout: (T, B, .) padded or (N, .) packed."""

    peephole: Tensor | None = None  # (3, H): diagonal weights c -> i, c -> f, c' -> o
    ln_ih: tuple[Tensor, Tensor] | None = None  # gain, bias (4H,) of the LN over W x
    ln_hh: tuple[Tensor, Tensor] | None = None  # gain, bias (4H,) of the LN over R h
    ln_c: tuple[Tensor, Tensor] | None = None  # gain, bias (H,) of the LN over c' before tanh
    recurrent_mask: Tensor | None = None  # (B, P): multiplies the h fed back, survivors already scaled 1/(1-p)
    zoneout_h: Tensor | float = 0.0  # keep-previous masks of h in training, or the probability p (eval)
    zoneout_c: Tensor | float = 0.0  # the same for c
    cell_clip: float | None = None


NO_VARIANT = Variant()


def _zoneout_on(z) -> bool:
    return isinstance(z, Tensor) or z > 0


class CellGates(NamedTuple):
    """Everything one LSTM step computes, for one batch of rows (see :func:`lstm_cell_gates_ref`)."""

    i: Tensor  # (B, H) input gate, in (0, 1)
    f: Tensor  # (B, H) forget gate, in (0, 1)
    g: Tensor  # (B, H) cell candidate, in (-1, 1)
    o: Tensor  # (B, H) output gate, in (0, 1)
    c: Tensor  # (B, H) the new cell state
    h: Tensor  # (B, P) the new output (projected when w_hr is given)


def lstm_cell_gates_ref(
    x: Tensor,
    hx: tuple[Tensor, Tensor],
    w_ih: Tensor,
    w_hh: Tensor,
    b_ih: Tensor | None = None,
    b_hh: Tensor | None = None,
    w_hr: Tensor | None = None,
    variant: Variant = NO_VARIANT,
) -> CellGates:
    """One LSTM step that keeps its gates: ``x`` (B, I), ``hx = (h, c)`` with h (B, P) and c (B, H).

    Returns :class:`CellGates` ``(i, f, g, o, c, h)`` after the activations; ``c`` and ``h`` are the new state.
    This is where the equations live; :func:`lstm_cell_ref` is this step without the gates.
    """
    h, c = hx
    v = variant
    hidden = c.shape[-1]
    h_in = h * v.recurrent_mask if v.recurrent_mask is not None else h  # (B, P)
    from_x = x @ w_ih.t()  # (B, 4H)
    from_h = h_in @ w_hh.t()  # (B, 4H)
    if v.ln_ih is not None:
        from_x = F.layer_norm(from_x, (4 * hidden,), *v.ln_ih, eps=LAYER_NORM_EPS)
    if v.ln_hh is not None:
        from_h = F.layer_norm(from_h, (4 * hidden,), *v.ln_hh, eps=LAYER_NORM_EPS)
    gates = from_x + from_h  # (B, 4H)
    if b_ih is not None:
        gates = gates + b_ih
    if b_hh is not None:
        gates = gates + b_hh
    i, f, g, o = gates.chunk(4, dim=-1)  # (B, H) each
    if v.peephole is not None:
        i = i + v.peephole[0] * c
        f = f + v.peephole[1] * c
    i, f, g = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g)
    c_new = f * c + i * g  # (B, H)
    if v.cell_clip is not None:
        c_new = c_new.clamp(-v.cell_clip, v.cell_clip)
    if v.peephole is not None:
        o = o + v.peephole[2] * c_new
    o = torch.sigmoid(o)
    c_out = F.layer_norm(c_new, (hidden,), *v.ln_c, eps=LAYER_NORM_EPS) if v.ln_c is not None else c_new
    h_new = o * torch.tanh(c_out)  # (B, H)
    if w_hr is not None:
        h_new = h_new @ w_hr.t()  # (B, P)
    if _zoneout_on(v.zoneout_h):
        h_new = torch.lerp(h_new, h, v.zoneout_h)  # keep the previous h where d = 1
    if _zoneout_on(v.zoneout_c):
        c_new = torch.lerp(c_new, c, v.zoneout_c)
    return CellGates(i, f, g, o, c_new, h_new)


def lstm_cell_ref(
    x: Tensor,
    hx: tuple[Tensor, Tensor],
    w_ih: Tensor,
    w_hh: Tensor,
    b_ih: Tensor | None = None,
    b_hh: Tensor | None = None,
    w_hr: Tensor | None = None,
    variant: Variant = NO_VARIANT,
) -> tuple[Tensor, Tensor]:
    """One LSTM step. ``x`` (B, I), ``hx = (h, c)`` with h (B, P) and c (B, H); returns the new (h, c)."""
    step = lstm_cell_gates_ref(x, hx, w_ih, w_hh, b_ih, b_hh, w_hr, variant)
    return step.h, step.c


def lstm_layer_ref(
    x: Tensor,
    hx: tuple[Tensor, Tensor],
    w_ih: Tensor,
    w_hh: Tensor,
    b_ih: Tensor | None = None,
    b_hh: Tensor | None = None,
    w_hr: Tensor | None = None,
    *,
    reverse: bool = False,
    batch_sizes: Tensor | list[int] | None = None,
    variant: Variant = NO_VARIANT,
) -> tuple[Tensor, tuple[Tensor, Tensor]]:
    """One layer, one direction: the cell looped over time.

    Args:
        x: (T, B, I) time-major input, or (N, I) packed data when ``batch_sizes`` is given.
        hx: initial (h0 (B, P), c0 (B, H)).
        reverse: run from the last step to the first (the backward half of a bidirectional LSTM).
        batch_sizes: as in a PackedSequence: how many sequences are still running at each step, non-increasing.
            Sequence b takes part in the steps t with ``b < batch_sizes[t]``; a finished sequence keeps its state.
        variant: optional extras (:class:`Variant`); zoneout masks laid out like ``x``.

    Returns:
        ``output`` ((T, B, P), or (N, P) packed) and the final ``(h_n (B, P), c_n (B, H))``; for ``reverse`` the
        final state is the one after the first time step, as in torch.
    """
    steps, state = lstm_layer_gates_ref(
        x, hx, w_ih, w_hh, b_ih, b_hh, w_hr, reverse=reverse, batch_sizes=batch_sizes, variant=variant
    )
    outputs = [step.h for step in steps]  # T tensors of (B_t, P)
    output = torch.stack(outputs) if batch_sizes is None else torch.cat(outputs)
    return output, state


def lstm_layer_gates_ref(
    x: Tensor,
    hx: tuple[Tensor, Tensor],
    w_ih: Tensor,
    w_hh: Tensor,
    b_ih: Tensor | None = None,
    b_hh: Tensor | None = None,
    w_hr: Tensor | None = None,
    *,
    reverse: bool = False,
    batch_sizes: Tensor | list[int] | None = None,
    variant: Variant = NO_VARIANT,
) -> tuple[list[CellGates], tuple[Tensor, Tensor]]:
    """The loop of :func:`lstm_layer_ref`, keeping what every step computed (arguments as there).

    Returns one :class:`CellGates` per time step, indexed by t whatever the direction (step t has the
    ``batch_sizes[t]`` rows of the sequences running then, B for padded input), and the final ``(h (B, P), c (B, H))``.
    """
    h, c = hx
    if batch_sizes is None:
        sizes = [x.shape[1]] * x.shape[0]
        split = lambda t: list(t.unbind(0))  # noqa: E731  T tensors of (B, .)
    else:
        sizes = [int(s) for s in batch_sizes]
        split = lambda t: list(t.split(sizes, dim=0))  # noqa: E731  T tensors of (B_t, .)
    inputs = split(x)
    zone_h = split(variant.zoneout_h) if isinstance(variant.zoneout_h, Tensor) else None
    zone_c = split(variant.zoneout_c) if isinstance(variant.zoneout_c, Tensor) else None
    steps: list[CellGates] = [None] * len(sizes)  # type: ignore[list-item]
    order = range(len(sizes) - 1, -1, -1) if reverse else range(len(sizes))
    for t in order:
        n = sizes[t]  # sequences running at step t: always the first n rows
        step_variant = variant._replace(
            recurrent_mask=variant.recurrent_mask[:n] if variant.recurrent_mask is not None else None,
            zoneout_h=zone_h[t] if zone_h is not None else variant.zoneout_h,
            zoneout_c=zone_c[t] if zone_c is not None else variant.zoneout_c,
        )
        steps[t] = step = lstm_cell_gates_ref(inputs[t], (h[:n], c[:n]), w_ih, w_hh, b_ih, b_hh, w_hr, step_variant)
        h = torch.cat([step.h, h[n:]])  # (B, P): finished rows keep their last state
        c = torch.cat([step.c, c[n:]])  # (B, H)
    return steps, (h, c)


def lstm_layer_scan(
    x: Tensor,
    hx: tuple[Tensor, Tensor],
    w_ih: Tensor,
    w_hh: Tensor,
    b_ih: Tensor | None = None,
    b_hh: Tensor | None = None,
    w_hr: Tensor | None = None,
    *,
    reverse: bool = False,
    batch_sizes: None = None,
    variant: Variant = NO_VARIANT,
) -> tuple[Tensor, tuple[Tensor, Tensor]]:
    """:func:`lstm_layer_ref` for padded input (T, B, I), its loop over time written as torch's ``scan``: the same
    step, :func:`lstm_cell_gates_ref`, traced once into one ``higher_order.scan`` node. torch.export unrolls
    the Python loop at the example's length (pytorch#91439); through scan T and B stay symbolic. Arguments and
    results as :func:`lstm_layer_ref`, ``batch_sizes`` None (packed input runs padded with frozen steps under
    export: :func:`lstmkit.ops.lstm`'s ``lengths``)."""
    if batch_sizes is not None:
        raise ValueError("lstm_layer_scan takes padded input (T, B, I); run packed input padded, with lengths")
    per_step = {"x": x}  # what changes with t, sliced along T: the input and zoneout's masks
    for name in ("zoneout_h", "zoneout_c"):
        if isinstance(getattr(variant, name), Tensor):
            per_step[name] = getattr(variant, name)  # (T, B, P) / (T, B, H)

    def step(state: tuple[Tensor, Tensor], now: dict[str, Tensor]) -> tuple[tuple[Tensor, Tensor], Tensor]:
        masks = {name: mask for name, mask in now.items() if name != "x"}  # (B, P) / (B, H) this step's
        gates = lstm_cell_gates_ref(now["x"], state, w_ih, w_hh, b_ih, b_hh, w_hr, variant._replace(**masks))
        return (gates.h, gates.c), gates.h.clone()  # scan's output may not alias its carry

    # the states as fresh tensors: a view's storage offset (k B P for layer k's h0) becomes a symbol when scan
    # traces its step, and when it equals another size there (4H) a guard ties them and fixes B (torch 2.13)
    init = (hx[0].clone(), hx[1].clone())
    (h, c), output = scan(step, init, per_step, reverse=reverse)  # output (T, B, P), indexed by t
    return output, (h, c)
