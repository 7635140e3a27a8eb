"""The fused LSTM layer: one input GEMM, a tight loop over time, and a hand-written backward through time.

Letters as in :mod:`lstmkit.ops.reference` (T, B, I, H, P, N).

Layout. Everything runs on *packed time-major rows*: step t owns the rows ``offsets[t] : offsets[t] + sizes[t]``
of an (N, .) matrix, and its running sequences are always the first ``sizes[t]`` of the batch (PackedSequence's
convention). Padded (T, B, I) input is the special case where every step has B rows, so one code path serves both,
and packed input costs only the rows that exist.

Forward::

    gates = x @ w_ih.T + b                       # (N, 4H)  ONE GEMM for all steps
    for t in time order (reversed for reverse):
        gates[t] += h_prev @ w_hh.T              # (B_t, 4H) the only per-step GEMM
        i, f, g, o = activations, in place       # (B_t, H)
        c[t] = f * c_prev + i * g ; h[t] = o * tanh(c[t]) (then @ w_hr.T with a projection)

The outputs h and the cells c are written into buffers that also hold the initial state, placed so that for padded
input "the previous h of every row" is a plain slice of the same buffer (no copy for the weight gradient).

Backward::

    per-row factors, vectorised over all N rows: d(c)/d(tanh c), d(gates)/d(pre-activation), ...
    for t in reverse processing order:           # 5 pointwise ops and one GEMM per step
        dh = grad_out[t] + dh_rec ; dc += dh * o * (1 - tanh(c)^2)
        dz[t] = [dc * A_i, dc * A_f, dc * A_g, dh * A_o] ; dc *= f ; dh_rec = dz[t] @ w_hh
    then ONE GEMM each: d_w_ih = dz.T @ x, d_w_hh = dz.T @ h_prev, d_x = dz @ w_ih (and d_w_hr = dh.T @ h_raw)

Matmuls. On this kind of CPU, torch.mm goes to MKL, which runs AVX2 code on AMD processors, while oneDNN runs
AVX-512 and is 1.3-2x faster on LSTM-shaped GEMMs (../shared/PERF_NOTES.md, benchmarks/RESULTS.md). oneDNN is
reachable only through the private op ``torch.ops.mkldnn._linear_pointwise`` with weights prepacked by
``_reorder_linear_weight``, so :class:`_RightMatmul` uses it for float32 on CPU when it exists and falls back to
public ``torch.mm``/``addmm`` everywhere else (float64, CUDA, a torch without the op). Both paths are tested;
:func:`set_matmul_backend` forces one.
"""

from __future__ import annotations

import os
from functools import lru_cache
from typing import NamedTuple

import torch
from torch import Tensor

__all__ = ["LSTMLayerFunction", "lstm_layer_fused", "matmul_backend", "set_matmul_backend"]

_BACKENDS = ("auto", "onednn", "public")
_backend = os.environ.get("LSTMKIT_MATMUL", "auto")
_ONEDNN_MIN_HIDDEN = 256  # below this MKL's small GEMMs are as fast and oneDNN's call overhead dominates


def set_matmul_backend(name: str) -> None:
    """``"auto"`` (oneDNN for float32 CPU layers with H >= 256 when available), ``"onednn"`` (whenever available)
    or ``"public"`` (torch.mm / addmm only). Also settable with the environment variable LSTMKIT_MATMUL."""
    global _backend
    if name not in _BACKENDS:
        raise ValueError(f"matmul backend must be one of {_BACKENDS}, got {name!r}")
    _backend = name


def matmul_backend() -> str:
    return _backend


def _onednn_available() -> bool:
    return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")


def _use_onednn(x: Tensor, hidden: int) -> bool:
    if _backend == "public" or x.device.type != "cpu" or x.dtype != torch.float32 or not _onednn_available():
        return False
    return _backend == "onednn" or hidden >= _ONEDNN_MIN_HIDDEN


class _RightMatmul:
    """``a @ w.T`` (optionally ``+ add``) for one fixed ``w`` used many times: oneDNN with ``w`` prepacked once,
    or public torch ops."""

    def __init__(self, w: Tensor, rows: int, onednn: bool):
        self.w = w
        self.packed = torch.ops.mkldnn._reorder_linear_weight(w.contiguous(), rows) if onednn else None

    def __call__(self, a: Tensor, add: Tensor | None = None, out: Tensor | None = None) -> Tensor:
        if self.packed is None:
            if add is not None:
                return add.addmm_(a, self.w.t()) if out is None else torch.addmm(add, a, self.w.t(), out=out)
            return torch.mm(a, self.w.t(), out=out) if out is not None else torch.mm(a, self.w.t())
        if add is not None:
            result = torch.ops.mkldnn._linear_pointwise.binary(a, add, self.packed, None, "add")
        else:
            result = torch.ops.mkldnn._linear_pointwise(a, self.packed, None, "none", [], "")
        return out.copy_(result) if out is not None else result


class _Schedule(NamedTuple):
    """Where each step's rows live and which rows hold each row's previous and final state."""

    sizes: tuple[int, ...]  # rows of each step, in time order
    offsets: tuple[int, ...]  # first row of each step, in time order
    order: tuple[int, ...]  # time steps in processing order
    uniform: bool  # every step has the full batch (padded input)
    prev_index: Tensor | None  # (N,) row in the state buffer of each row's previous state; None when uniform
    last_index: Tensor | None  # (B,) row in the state buffer of each sequence's final state; None when uniform


@lru_cache(maxsize=256)
def _schedule(sizes: tuple[int, ...], reverse: bool) -> _Schedule:
    """Row bookkeeping for one (batch_sizes, direction). State buffers hold N output rows and B initial rows:
    forward ``[initial (B); outputs (N)]``, reverse ``[outputs (N); initial (B)]``."""
    steps = len(sizes)
    batch = sizes[0]
    total = sum(sizes)
    offsets = [0] * steps
    for t in range(1, steps):
        offsets[t] = offsets[t - 1] + sizes[t - 1]
    order = tuple(range(steps - 1, -1, -1)) if reverse else tuple(range(steps))
    uniform = all(s == batch for s in sizes)
    if uniform:
        return _Schedule(sizes, tuple(offsets), order, True, None, None)
    out0, init0 = (0, total) if reverse else (batch, 0)
    prev = []
    for t in range(steps):
        for b in range(sizes[t]):
            neighbour = t + 1 if reverse else t - 1
            if 0 <= neighbour < steps and b < sizes[neighbour]:
                prev.append(out0 + offsets[neighbour] + b)
            else:
                prev.append(init0 + b)
    if reverse:
        last = [out0 + offsets[0] + b for b in range(batch)]
    else:
        last_step = [0] * batch
        for t in range(steps):
            for b in range(sizes[t]):
                last_step[b] = t
        last = [out0 + offsets[last_step[b]] + b for b in range(batch)]
    return _Schedule(
        tuple(sizes), tuple(offsets), order, False, torch.tensor(prev), torch.tensor(last)
    )


def _rows_before(buf: Tensor, sched: _Schedule, t: int, n: int, reverse: bool, init_at: int, out_at: int) -> Tensor:
    """The previous state of the first ``n`` rows of step ``t``, as a view of ``buf`` whenever it is contiguous."""
    neighbour = t + 1 if reverse else t - 1
    if not 0 <= neighbour < len(sched.sizes):
        return buf[init_at : init_at + n]
    start = out_at + sched.offsets[neighbour]
    have = min(n, sched.sizes[neighbour])
    if have == n:
        return buf[start : start + n]
    # reverse direction, packed input: sequences starting at this step take their initial state
    return torch.cat([buf[start : start + have], buf[init_at + have : init_at + n]])


class LSTMLayerFunction(torch.autograd.Function):
    """One LSTM layer in one direction, with a hand-written backward through time.

    ``apply(x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, batch_sizes, reverse, need_grad)``:
    x (N, I) packed rows (for padded input N = T * B with ``batch_sizes = (B,) * T``), h0 (B, P), c0 (B, H),
    biases and ``w_hr`` may be None, ``batch_sizes`` a tuple of ints, ``need_grad`` whether to keep what the
    backward needs (grad mode is off inside ``forward``, so the caller decides). Returns (output (N, P), h_n (B, P), c_n (B, H)).

    The backward only reads what the forward saved, so ``retain_graph=True`` and repeated backwards work.
    """

    @staticmethod
    def forward(ctx, x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, batch_sizes, reverse, need_grad):  # type: ignore[override]
        sched = _schedule(tuple(batch_sizes), bool(reverse))
        total, batch = x.shape[0], h0.shape[0]
        hidden = c0.shape[1]
        out_at, init_at = (0, total) if reverse else (batch, 0)

        onednn = _use_onednn(x, hidden)
        bias = None
        if b_ih is not None and b_hh is not None:
            bias = b_ih + b_hh
        elif b_ih is not None or b_hh is not None:
            bias = b_ih if b_ih is not None else b_hh
        if onednn:
            gates = torch.ops.mkldnn._linear_pointwise(x, w_ih, bias, "none", [], "")  # (N, 4H)
        else:
            gates = torch.addmm(bias, x, w_ih.t()) if bias is not None else torch.mm(x, w_ih.t())  # (N, 4H)
        recurrent = _RightMatmul(w_hh, batch, onednn)  # h_prev @ w_hh.T
        project = _RightMatmul(w_hr, batch, onednn) if w_hr is not None else None  # h_raw @ w_hr.T

        h_buf = x.new_empty(total + batch, h0.shape[1])  # (N + B, P): outputs and the initial h
        c_buf = x.new_empty(total + batch, hidden)  # (N + B, H): cells and the initial c
        h_buf[init_at : init_at + batch] = h0
        c_buf[init_at : init_at + batch] = c0
        tanh_c = x.new_empty(total if need_grad else batch, hidden)  # (N, H) kept for backward
        h_raw = x.new_empty(total if need_grad else batch, hidden) if w_hr is not None else None

        for t in sched.order:
            n, row = sched.sizes[t], sched.offsets[t]
            h_prev = _rows_before(h_buf, sched, t, n, reverse, init_at, out_at)  # (B_t, P)
            c_prev = _rows_before(c_buf, sched, t, n, reverse, init_at, out_at)  # (B_t, H)
            z = gates[row : row + n]  # (B_t, 4H): input part now, the activated gates below
            pre = recurrent(h_prev, add=z)  # (B_t, 4H) pre-activations (z itself with public ops)
            torch.sigmoid(pre[:, : 2 * hidden], out=z[:, : 2 * hidden])  # i, f
            torch.tanh(pre[:, 2 * hidden : 3 * hidden], out=z[:, 2 * hidden : 3 * hidden])  # g
            torch.sigmoid(pre[:, 3 * hidden :], out=z[:, 3 * hidden :])  # o
            i, f, g, o = z.chunk(4, dim=1)  # (B_t, H) each
            c = c_buf[out_at + row : out_at + row + n]  # (B_t, H)
            torch.mul(f, c_prev, out=c)
            c.addcmul_(i, g)
            tc = tanh_c[row : row + n] if need_grad else tanh_c[:n]
            torch.tanh(c, out=tc)
            h = h_buf[out_at + row : out_at + row + n]  # (B_t, P)
            if w_hr is None:
                torch.mul(o, tc, out=h)
            else:
                hr = h_raw[row : row + n] if need_grad else h_raw[:n]  # (B_t, H)
                torch.mul(o, tc, out=hr)
                project(hr, out=h)

        output = h_buf[out_at : out_at + total]  # (N, P)
        if sched.uniform:
            last = slice(out_at + sched.offsets[sched.order[-1]], out_at + sched.offsets[sched.order[-1]] + batch)
            h_n, c_n = h_buf[last].clone(), c_buf[last].clone()
        else:
            h_n, c_n = h_buf.index_select(0, sched.last_index), c_buf.index_select(0, sched.last_index)

        if need_grad:
            # intermediate buffers go through save_for_backward too: autograd frees them after the backward
            # (or keeps them for retain_graph=True) instead of keeping them alive as long as the output lives
            ctx.save_for_backward(x, w_ih, w_hh, w_hr, gates, h_buf, c_buf, tanh_c, h_raw)
            ctx.sched, ctx.reverse, ctx.layout = sched, bool(reverse), (out_at, init_at, batch)
            ctx.has_bias = (b_ih is not None, b_hh is not None)
        return output, h_n, c_n

    @staticmethod
    def backward(ctx, grad_output, grad_h_n, grad_c_n):  # type: ignore[override]
        x, w_ih, w_hh, w_hr, gates, h_buf, c_buf, tanh_c, h_raw = ctx.saved_tensors
        sched = ctx.sched
        out_at, init_at, batch = ctx.layout
        total = x.shape[0]
        hidden = tanh_c.shape[1]
        proj = h_buf.shape[1]

        # previous h and c of every row: a slice of the state buffers for padded input, a gather for packed
        if sched.uniform:
            prev = slice(init_at, init_at + total) if not ctx.reverse else slice(batch, batch + total)
            h_prev, c_prev = h_buf[prev], c_buf[prev]  # (N, P), (N, H)
        else:
            index = sched.prev_index.to(x.device)
            h_prev, c_prev = h_buf.index_select(0, index), c_buf.index_select(0, index)

        # per-row factors, all rows at once
        i, f, g, o = gates.chunk(4, dim=1)  # (N, H) each, post-activation
        d_c_from_h = o * (1 - tanh_c * tanh_c)  # (N, H)  d c / d h (through h = o tanh c)
        dz = torch.empty_like(gates)  # (N, 4H): factors now, gradients of the pre-activations after the loop
        torch.mul(g, i * (1 - i), out=dz[:, :hidden])  # d/dz_i = dc * g * i (1 - i)
        torch.mul(c_prev, f * (1 - f), out=dz[:, hidden : 2 * hidden])  # d/dz_f = dc * c_prev * f (1 - f)
        torch.mul(i, 1 - g * g, out=dz[:, 2 * hidden : 3 * hidden])  # d/dz_g = dc * i (1 - g^2)
        torch.mul(tanh_c, o * (1 - o), out=dz[:, 3 * hidden :])  # d/dz_o = dh * tanh c * o (1 - o)

        onednn = _use_onednn(x, hidden)
        recurrent = _RightMatmul(w_hh.t(), batch, onednn)  # dz_t @ w_hh
        unproject = _RightMatmul(w_hr.t(), batch, onednn) if w_hr is not None else None  # dh @ w_hr
        dh_all = grad_output.clone() if grad_output is not None else x.new_zeros(total, proj)  # (N, P)
        dh_state = grad_h_n.clone() if grad_h_n is not None else x.new_zeros(batch, proj)  # (B, P)
        dc_state = grad_c_n.clone() if grad_c_n is not None else x.new_zeros(batch, hidden)  # (B, H)
        for t in reversed(sched.order):
            n, row = sched.sizes[t], sched.offsets[t]
            dh = dh_all[row : row + n]  # (B_t, P)
            dh.add_(dh_state[:n])
            dh_cell = unproject(dh) if w_hr is not None else dh  # (B_t, H)
            dc = dc_state[:n]  # (B_t, H)
            dc.addcmul_(dh_cell, d_c_from_h[row : row + n])
            dz_t = dz[row : row + n]  # (B_t, 4H)
            dz_t[:, : 3 * hidden].view(n, 3, hidden).mul_(dc.unsqueeze(1))
            dz_t[:, 3 * hidden :].mul_(dh_cell)
            dc.mul_(f[row : row + n])
            recurrent(dz_t, out=dh_state[:n])  # (B_t, P) gradient of the previous h

        needs = ctx.needs_input_grad
        grad_x = _RightMatmul(w_ih.t(), total, onednn)(dz) if needs[0] else None  # (N, I)
        grad_w_ih = torch.mm(dz.t(), x) if needs[3] else None  # (4H, I)
        grad_w_hh = torch.mm(dz.t(), h_prev) if needs[4] else None  # (4H, P)
        grad_bias = dz.sum(0) if (needs[5] or needs[6]) else None  # (4H,)
        grad_w_hr = None
        if w_hr is not None and needs[7]:
            grad_w_hr = torch.mm(dh_all.t(), h_raw)  # (P, H)
        has_b_ih, has_b_hh = ctx.has_bias
        return (
            grad_x,
            dh_state if needs[1] else None,
            dc_state if needs[2] else None,
            grad_w_ih,
            grad_w_hh,
            grad_bias if (has_b_ih and needs[5]) else None,
            grad_bias if (has_b_hh and needs[6]) else None,
            grad_w_hr,
            None,
            None,
            None,
        )


def lstm_layer_fused(
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
    """Same contract as :func:`lstmkit.ops.reference.lstm_layer_ref`, computed by :class:`LSTMLayerFunction`."""
    h0, c0 = hx
    if batch_sizes is None:
        steps, batch = x.shape[0], x.shape[1]
        rows = x.reshape(steps * batch, x.shape[2])  # (N, I)
        sizes: tuple[int, ...] = (batch,) * steps
    else:
        rows = x
        sizes = tuple(int(s) for s in batch_sizes)
    tensors = (rows, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr)
    need_grad = torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)
    output, h_n, c_n = LSTMLayerFunction.apply(
        rows.contiguous(), h0.contiguous(), c0.contiguous(), w_ih, w_hh, b_ih, b_hh, w_hr, sizes, reverse, need_grad
    )
    if batch_sizes is None:
        output = output.view(x.shape[0], x.shape[1], -1)  # (T, B, P)
    return output, (h_n, c_n)
