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
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

__all__ = ["CellGates", "lstm_cell_gates_ref", "lstm_cell_ref", "lstm_layer_ref"]


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
) -> CellGates:
    """One LSTM step that keeps its gates: ``x`` (B, I), ``hx = (h, c)`` with h (B, P) and c (B, H).

    Returns :class:`CellGates` ``(i, f, g, o, c, h)`` after the activations; ``c`` and ``h`` are the new state.
    This is where the equations live; :func:`lstm_cell_ref` is this step without the gates.
    """
    h, c = hx
    gates = x @ w_ih.t() + h @ w_hh.t()  # (B, 4H)
    if b_ih is not None:
        gates = gates + b_ih
    if b_hh is not None:
        gates = gates + b_hh
    i, f, g, o = gates.chunk(4, dim=-1)  # (B, H) each
    i, f, g, o = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g), torch.sigmoid(o)
    c = f * c + i * g  # (B, H)
    h = o * torch.tanh(c)  # (B, H)
    if w_hr is not None:
        h = h @ w_hr.t()  # (B, P)
    return CellGates(i, f, g, o, c, h)


def lstm_cell_ref(
    x: Tensor,
    hx: tuple[Tensor, Tensor],
    w_ih: Tensor,
    w_hh: Tensor,
    b_ih: Tensor | None = None,
    b_hh: Tensor | None = None,
    w_hr: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """One LSTM step. ``x`` (B, I), ``hx = (h, c)`` with h (B, P) and c (B, H); returns the new (h, c)."""
    step = lstm_cell_gates_ref(x, hx, w_ih, w_hh, b_ih, b_hh, w_hr)
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
) -> tuple[Tensor, tuple[Tensor, Tensor]]:
    """One layer, one direction: the cell looped over time.

    Args:
        x: (T, B, I) time-major input, or (N, I) packed data when ``batch_sizes`` is given.
        hx: initial (h0 (B, P), c0 (B, H)).
        reverse: run from the last step to the first (the backward half of a bidirectional LSTM).
        batch_sizes: as in a PackedSequence: how many sequences are still running at each step, non-increasing.
            Sequence b takes part in the steps t with ``b < batch_sizes[t]``; a finished sequence keeps its state.

    Returns:
        ``output`` ((T, B, P), or (N, P) packed) and the final ``(h_n (B, P), c_n (B, H))``; for ``reverse`` the
        final state is the one after the first time step, as in torch.
    """
    h, c = hx
    if batch_sizes is None:
        sizes = [x.shape[1]] * x.shape[0]
        steps = list(x.unbind(0))  # T tensors of (B, I)
    else:
        sizes = [int(s) for s in batch_sizes]
        steps = list(x.split(sizes, dim=0))  # T tensors of (B_t, I)
    outputs: list[Tensor] = [x.new_empty(0)] * len(sizes)
    order = range(len(sizes) - 1, -1, -1) if reverse else range(len(sizes))
    for t in order:
        n = sizes[t]  # sequences running at step t: always the first n rows
        h_new, c_new = lstm_cell_ref(steps[t], (h[:n], c[:n]), w_ih, w_hh, b_ih, b_hh, w_hr)
        outputs[t] = h_new
        h = torch.cat([h_new, h[n:]])  # (B, P): finished rows keep their last state
        c = torch.cat([c_new, c[n:]])  # (B, H)
    output = torch.stack(outputs) if batch_sizes is None else torch.cat(outputs)
    return output, (h, c)
