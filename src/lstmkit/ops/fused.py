"""The fused LSTM layer in readable PyTorch: one input GEMM, a tight loop over time, and a hand-written backward
through time. These are the Python kernels of the operator ``lstmkit::lstm_layer`` (:mod:`lstmkit.ops.layer_op`)
and the specification of its C++ kernels (csrc/lstm_layer.cpp), which follow the same steps and read and write the
same workspace (:data:`WORKSPACE`).

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

Matmuls. The per-step (B, P) x (P, 4H) GEMM runs on oneDNN with ``w_hh`` prepacked once per call (through the
private op ``torch.ops.mkldnn._linear_pointwise``, weights reordered by ``_reorder_linear_weight``) for float32 CPU
layers with H >= 256, where it measured faster than MKL's ``torch.mm``; the big weight-gradient GEMMs stay on
``torch.mm``, as does everything else (float64, CUDA, a torch without the op). benchmarks/RESULTS.md ("Core",
"The GEMM floor") has the measurements. Both paths are tested; :func:`use_matmul` forces one for the calls made
inside it, and each call keeps its choice for its backward (the operator's autograd formula re-enters it). The C++
kernels run every GEMM on MKL through ATen instead (csrc/lstm_layer.cpp says why).
"""

from __future__ import annotations

import warnings
from contextlib import contextmanager
from contextvars import ContextVar
from functools import lru_cache
from typing import Iterator, NamedTuple

import torch
from torch import Tensor

from .reference import LAYER_NORM_EPS

__all__ = [
    "GRADIENTS", "WORKSPACE", "backward_python", "forward_python", "matmul_backend", "set_matmul_backend", "use_matmul",
]

MATMUL_BACKENDS = ("auto", "onednn", "public")
_ONEDNN_MIN_HIDDEN = 256  # below this MKL's small GEMMs are as fast and oneDNN's call overhead dominates
_matmul: ContextVar[str] = ContextVar("lstmkit_matmul", default="auto")  # set only by use_matmul, per context


def _check_matmul(name: str) -> str:
    if name not in MATMUL_BACKENDS:
        raise ValueError(f"matmul backend must be one of {MATMUL_BACKENDS}, got {name!r}")
    return name


@contextmanager
def use_matmul(name: str) -> Iterator[None]:
    """Run the fused layers called inside the ``with`` block on one matmul backend: ``"auto"`` (oneDNN for float32
    CPU layers with H >= 256 when available, the default), ``"onednn"`` (whenever available) or ``"public"``
    (torch.mm / addmm only). Each call keeps its backend for its backward, wherever that runs.

    Example::

        >>> with use_matmul("public"):
        ...     out, _ = lstmkit.LSTM(4, 8, impl="fused")(torch.randn(3, 2, 4))  # doctest: +SKIP
    """
    token = _matmul.set(_check_matmul(name))
    try:
        yield
    finally:
        _matmul.reset(token)


def matmul_backend() -> str:
    """The backend :func:`use_matmul` chose for the current context (``"auto"`` outside any)."""
    return _matmul.get()


def set_matmul_backend(name: str) -> None:
    """Deprecated: use the context manager :func:`use_matmul`. Sets the backend for the rest of this context."""
    warnings.warn("set_matmul_backend is deprecated; use `with lstmkit.ops.fused.use_matmul(name):`",
                  DeprecationWarning, stacklevel=2)
    _matmul.set(_check_matmul(name))


def _onednn_available() -> bool:
    return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")


def _use_onednn(x: Tensor, hidden: int, backend: str) -> bool:
    if backend == "public" or x.device.type != "cpu" or x.dtype != torch.float32 or not _onednn_available():
        return False
    return backend == "onednn" or hidden >= _ONEDNN_MIN_HIDDEN


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
    """Row bookkeeping for one (batch_sizes, direction). State buffers hold N output rows, then B initial rows
    (outputs first, so that the operator's output is the buffer's start)."""
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
    out0, init0 = 0, total
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


WORKSPACE = ("gates", "cells", "c_new", "tanh_c", "h_raw", "x_proj", "rh", "stats_ih", "stats_hh", "stats_c")
"""What the forward keeps for the backward, in the operator's order (all rows in packed time order, N rows):
activated gates (N, 4H); the cells carried to the next step (N, H); the new cells before zoneout (N, H, zoneout
of c only); tanh of the (normalised) new cell (N, H); h before the projection (N, H, projection only); W x before
its norm (N, 4H) and R h before its norm (N, 4H) (layer norm only); and (2, N) mean / rstd rows of each norm.
A tensor that the configuration does not need, and every tensor in a call without grad, has shape (0,)."""


def _stats(pieces: dict[int, tuple[Tensor, Tensor]], dtype: torch.dtype) -> Tensor:
    """Per-step (mean, rstd) of one norm -> (2, N) in time order, in the workspace's ``dtype``."""
    order = sorted(pieces)
    return torch.stack([torch.cat([pieces[t][0] for t in order]).view(-1),
                        torch.cat([pieces[t][1] for t in order]).view(-1)]).to(dtype)


@lru_cache(maxsize=16)
def _layer_norm_stats_dtype(device_type: str, dtype: torch.dtype) -> torch.dtype:
    """The dtype of the mean and rstd that ``native_layer_norm`` returns (and its backward expects) for input
    of ``dtype`` on a device of ``device_type``: the input's on the CPU, float32 for half and bfloat16 on CUDA.
    Asked of torch once per pair, on a one-element tensor, rather than assumed."""
    probe = torch.zeros(1, 1, dtype=dtype, device=device_type)
    return torch.native_layer_norm(probe, [1], None, None, LAYER_NORM_EPS)[1].dtype


def _bias(b_ih: Tensor | None, b_hh: Tensor | None) -> Tensor | None:
    if b_ih is not None and b_hh is not None:
        return b_ih + b_hh
    return b_ih if b_ih is not None else b_hh


def _sizes(x: Tensor, batch_sizes: Tensor | None) -> tuple[int, ...]:
    if batch_sizes is None:
        return (x.shape[1],) * x.shape[0]
    return tuple(int(s) for s in batch_sizes.tolist())


def _as_rows(t: Tensor | None) -> Tensor | None:
    return t.reshape(-1, t.shape[-1]) if t is not None and t.dim() == 3 else t


def forward_python(
    x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, batch_sizes, reverse, peephole, ln_ih_w, ln_ih_b, ln_hh_w, ln_hh_b,
    ln_c_w, ln_c_b, rec_mask, zone_h, zone_c, zoneout_h, zoneout_c, clip, need_workspace,
):
    """The forward of ``lstmkit::lstm_layer`` in readable PyTorch (arguments and results as the operator's,
    see :mod:`lstmkit.ops.layer_op`): returns ``(output, h_n, c_n, *workspace)``."""
    out_shape = (*x.shape[:-1], (w_hr.shape[0] if w_hr is not None else c0.shape[1]))
    sizes = _sizes(x, batch_sizes)
    x = _as_rows(x)
    zone_h, zone_c = _as_rows(zone_h), _as_rows(zone_c)
    sched = _schedule(sizes, reverse)
    need_grad = need_workspace
    total, batch = x.shape[0], h0.shape[0]
    hidden = c0.shape[1]
    out_at, init_at = 0, total  # state buffers: [outputs (N); initial (B)]
    zoning_h = zone_h is not None or zoneout_h > 0
    zoning_c = zone_c is not None or zoneout_c > 0

    onednn = _use_onednn(x, hidden, _matmul.get())
    bias = _bias(b_ih, b_hh)
    x_proj = None
    stats_ih = None
    if ln_ih_w is not None:  # gates = LN(W x) + b
        x_proj = torch.ops.mkldnn._linear_pointwise(x, w_ih, None, "none", [], "") if onednn else torch.mm(x, w_ih.t())
        gates, mean_ih, rstd_ih = torch.native_layer_norm(x_proj, [4 * hidden], ln_ih_w, ln_ih_b, LAYER_NORM_EPS)
        stats_ih = torch.stack([mean_ih.view(-1), rstd_ih.view(-1)]).to(x.dtype)  # (2, N), the workspace's dtype
        if bias is not None:
            gates.add_(bias)
    elif onednn:
        gates = torch.ops.mkldnn._linear_pointwise(x, w_ih, bias, "none", [], "")  # (N, 4H)
    else:
        gates = torch.addmm(bias, x, w_ih.t()) if bias is not None else torch.mm(x, w_ih.t())  # (N, 4H)
    recurrent = _RightMatmul(w_hh, batch, onednn)  # h_prev @ w_hh.T
    project = _RightMatmul(w_hr, batch, onednn) if w_hr is not None else None  # h_raw @ w_hr.T

    h_buf = x.new_empty(total + batch, h0.shape[1])  # (N + B, P): outputs and the initial h
    c_buf = x.new_empty(total + batch, hidden)  # (N + B, H): cells carried over time and the initial c
    h_buf[init_at : init_at + batch] = h0
    c_buf[init_at : init_at + batch] = c0
    rows = total if need_grad else batch  # per-step scratch rows, or everything kept for backward
    tanh_c = x.new_empty(rows, hidden)  # (N, H) tanh of the (normalised) new cell
    h_raw = x.new_empty(rows, hidden) if w_hr is not None else None  # (N, H) h before projection
    c_new_buf = x.new_empty(rows, hidden) if zoning_c else None  # (N, H) new cell before zoneout
    rh_buf = x.new_empty(rows, 4 * hidden) if ln_hh_w is not None else None  # (N, 4H) R h before its LN
    stats_hh: dict[int, tuple[Tensor, Tensor]] = {}
    stats_c: dict[int, tuple[Tensor, Tensor]] = {}

    for t in sched.order:
        n, row = sched.sizes[t], sched.offsets[t]
        keep = slice(row, row + n) if need_grad else slice(0, n)  # where this step's kept values go
        h_prev = _rows_before(h_buf, sched, t, n, reverse, init_at, out_at)  # (B_t, P)
        c_prev = _rows_before(c_buf, sched, t, n, reverse, init_at, out_at)  # (B_t, H)
        h_in = h_prev * rec_mask[:n] if rec_mask is not None else h_prev  # (B_t, P)
        z = gates[row : row + n]  # (B_t, 4H): input part now, the activated gates below
        if ln_hh_w is not None:
            rh = recurrent(h_in, out=rh_buf[keep])  # (B_t, 4H)
            normed, mean, rstd = torch.native_layer_norm(rh, [4 * hidden], ln_hh_w, ln_hh_b, LAYER_NORM_EPS)
            stats_hh[t] = (mean, rstd)
            pre = z.add_(normed)
        else:
            pre = recurrent(h_in, add=z)  # (B_t, 4H) pre-activations (z itself with public ops)
        if peephole is not None:  # i and f see the previous cell
            pre[:, : 2 * hidden].view(n, 2, hidden).addcmul_(c_prev.unsqueeze(1), peephole[:2])
        torch.sigmoid(pre[:, : 2 * hidden], out=z[:, : 2 * hidden])  # i, f
        torch.tanh(pre[:, 2 * hidden : 3 * hidden], out=z[:, 2 * hidden : 3 * hidden])  # g
        i, f, g, o = z.chunk(4, dim=1)  # (B_t, H) each
        c_carried = c_buf[out_at + row : out_at + row + n]  # (B_t, H)
        c = c_new_buf[keep] if zoning_c else c_carried  # (B_t, H) the new cell
        torch.mul(f, c_prev, out=c)
        c.addcmul_(i, g)
        if clip is not None:
            c.clamp_(-clip, clip)
        if peephole is not None:  # o sees the new cell
            pre[:, 3 * hidden :].addcmul_(c, peephole[2])
        torch.sigmoid(pre[:, 3 * hidden :], out=z[:, 3 * hidden :])  # o
        tc = tanh_c[keep]
        if ln_c_w is not None:
            normed_c, mean, rstd = torch.native_layer_norm(c, [hidden], ln_c_w, ln_c_b, LAYER_NORM_EPS)
            stats_c[t] = (mean, rstd)
            torch.tanh(normed_c, out=tc)
        else:
            torch.tanh(c, out=tc)
        h = h_buf[out_at + row : out_at + row + n]  # (B_t, P)
        if w_hr is None:
            torch.mul(o, tc, out=h)
        else:
            hr = h_raw[keep]  # (B_t, H)
            torch.mul(o, tc, out=hr)
            project(hr, out=h)
        if zoning_h:  # keep the previous h where the mask is 1
            h.lerp_(h_prev, zone_h[row : row + n] if zone_h is not None else zoneout_h)
        if zoning_c:
            torch.lerp(c, c_prev, zone_c[row : row + n] if zone_c is not None else zoneout_c, out=c_carried)

    output = h_buf[out_at : out_at + total].view(out_shape)  # (T, B, P) or (N, P)
    if sched.uniform:
        first = out_at + sched.offsets[sched.order[-1]]
        h_n, c_n = h_buf[first : first + batch].clone(), c_buf[first : first + batch].clone()
    else:
        last = sched.last_index.to(h_buf.device)  # the schedule is cached on the CPU
        h_n, c_n = h_buf.index_select(0, last), c_buf.index_select(0, last)
    if not need_grad:
        return (output, h_n, c_n, *(x.new_empty(0) for _ in WORKSPACE))
    kept = dict(
        gates=gates, cells=c_buf[out_at : out_at + total], c_new=c_new_buf, tanh_c=tanh_c, h_raw=h_raw,
        x_proj=x_proj, rh=rh_buf, stats_ih=stats_ih,
        stats_hh=_stats(stats_hh, x.dtype) if stats_hh else None, stats_c=_stats(stats_c, x.dtype) if stats_c else None,
    )
    return (output, h_n, c_n, *(kept[k] if kept[k] is not None else x.new_empty(0) for k in WORKSPACE))


GRADIENTS = (
    "x", "h0", "c0", "w_ih", "w_hh", "bias", "w_hr", "peephole", "ln_ih_w", "ln_ih_b", "ln_hh_w", "ln_hh_b", "ln_c_w",
    "ln_c_b",
)
"""The gradients ``lstmkit::lstm_layer_backward`` returns, in order (``bias``: of b_ih + b_hh, one for both)."""


def backward_python(
    grad_output, grad_h_n, grad_c_n, x, h0, c0, w_ih, w_hh, w_hr, batch_sizes, reverse, peephole, ln_ih_w, ln_ih_b,
    ln_hh_w, ln_hh_b, ln_c_w, ln_c_b, rec_mask, zone_h, zone_c, zoneout_h, zoneout_c, clip, output,
    gates, cells, c_new, tanh_c, h_raw, x_proj, rh_buf, stats_ih, stats_hh, stats_c, output_mask,
):
    """The backward of ``lstmkit::lstm_layer`` in readable PyTorch: returns one tensor per name in
    :data:`GRADIENTS`, an empty (0,) tensor where ``output_mask`` (one bool per name) does not ask for it or the
    input does not exist."""
    want = dict(zip(GRADIENTS, output_mask))
    # read in x's dtype: the C++ kernel's float32 way for bfloat16 keeps a float32 workspace (layer_op.workspace_dtype)
    gates, cells, c_new, tanh_c, h_raw, x_proj, rh_buf = (
        t.to(x.dtype) for t in (gates, cells, c_new, tanh_c, h_raw, x_proj, rh_buf))
    # the layer norms' backward wants their statistics in native_layer_norm's dtype (float32 for bfloat16 on CUDA)
    stats = _layer_norm_stats_dtype(x.device.type, x.dtype)
    stats_ih, stats_hh, stats_c = (t.to(stats) for t in (stats_ih, stats_hh, stats_c))
    x_shape = x.shape
    sizes = _sizes(x, batch_sizes)
    x = _as_rows(x)
    zone_h, zone_c = _as_rows(zone_h), _as_rows(zone_c)
    grad_output = _as_rows(grad_output)
    output = _as_rows(output)
    sched = _schedule(sizes, reverse)
    total, batch = x.shape[0], h0.shape[0]
    hidden = c0.shape[1]
    zoning_h = zone_h is not None or zoneout_h > 0
    zoning_c = zone_c is not None or zoneout_c > 0
    mean_ih, rstd_ih = (stats_ih[0].unsqueeze(1), stats_ih[1].unsqueeze(1)) if ln_ih_w is not None else (None, None)
    mean_hh, rstd_hh = (stats_hh[0].unsqueeze(1), stats_hh[1].unsqueeze(1)) if ln_hh_w is not None else (None, None)
    mean_c, rstd_c = (stats_c[0].unsqueeze(1), stats_c[1].unsqueeze(1)) if ln_c_w is not None else (None, None)

    # previous h and c of every row: the state buffers of the forward rebuilt, then a slice or a gather
    if sched.uniform and reverse:
        h_prev = torch.cat([output[batch:], h0])  # (N, P)
        c_prev = torch.cat([cells[batch:], c0])  # (N, H)
    elif sched.uniform:
        h_prev = torch.cat([h0, output[: total - batch]])
        c_prev = torch.cat([c0, cells[: total - batch]])
    else:
        h_buf = torch.cat([output, h0])  # (N + B, P) the forward's state buffers
        c_buf = torch.cat([cells, c0])  # (N + B, H)
        index = sched.prev_index.to(x.device)
        h_prev, c_prev = h_buf.index_select(0, index), c_buf.index_select(0, index)
    if not zoning_c:
        c_new = cells  # (N, H) new cells before zoneout

    # per-row factors, all rows at once, written straight into dz (sigmoid' = s - s^2, tanh' = 1 - t^2)
    i, f, g, o = gates.chunk(4, dim=1)  # (N, H) each, post-activation
    dz = torch.empty_like(gates)  # (N, 4H): factors now, gradients of the pre-activations after the loop
    dz_i, dz_f, dz_g, dz_o = dz.chunk(4, dim=1)
    torch.addcmul(i, i, i, value=-1, out=dz_i).mul_(g)  # d/dz_i = dc * g * i (1 - i)
    torch.addcmul(f, f, f, value=-1, out=dz_f).mul_(c_prev)  # d/dz_f = dc * c_prev * f (1 - f)
    torch.addcmul(i, i, torch.mul(g, g, out=dz_g), value=-1, out=dz_g)  # d/dz_g = dc * i (1 - g^2)
    torch.addcmul(o, o, o, value=-1, out=dz_o).mul_(tanh_c)  # d/dz_o = dh * tanh(.) * o (1 - o)
    d_c_from_h = torch.mul(tanh_c, tanh_c)  # (N, H)  d h / d (tanh's input) = o (1 - tanh^2)
    torch.addcmul(o, o, d_c_from_h, value=-1, out=d_c_from_h)
    inside_clip = (c_new.abs() < clip).to(x.dtype) if clip is not None else None  # (N, H)
    d_normed_c = torch.empty_like(tanh_c) if ln_c_w is not None else None  # (N, H)
    d_rh = torch.empty_like(gates) if ln_hh_w is not None else None  # (N, 4H)

    onednn = _use_onednn(x, hidden, _matmul.get())
    recurrent = _RightMatmul(w_hh.t(), batch, onednn)  # (.) @ w_hh
    unproject = _RightMatmul(w_hr.t(), batch, onednn) if w_hr is not None else None  # dh @ w_hr
    dh_all = grad_output.clone()  # (N, P)
    dh_state = grad_h_n.clone()  # (B, P)
    dc_state = grad_c_n.clone()  # (B, H)
    for t in reversed(sched.order):
        n, row = sched.sizes[t], sched.offsets[t]
        rows = slice(row, row + n)
        dh = dh_all[rows]  # (B_t, P): gradient of this step's output h
        dh.add_(dh_state[:n])
        dc = dc_state[:n]  # (B_t, H): gradient of the cell carried out of this step
        if zoning_h:
            keep_h = zone_h[rows] if zone_h is not None else zoneout_h
            dh_to_prev = dh * keep_h
            dh.mul_(1 - keep_h)
        if zoning_c:
            keep_c = zone_c[rows] if zone_c is not None else zoneout_c
            dc_to_prev = dc * keep_c
            dc.mul_(1 - keep_c)
        dh_cell = unproject(dh) if w_hr is not None else dh  # (B_t, H)
        dz_t = dz[rows]  # (B_t, 4H)
        dz_t[:, 3 * hidden :].mul_(dh_cell)  # d/dz_o
        if ln_c_w is not None:
            d_tanh_in = torch.mul(dh_cell, d_c_from_h[rows], out=d_normed_c[rows])
            dc.add_(torch.ops.aten.native_layer_norm_backward(
                d_tanh_in, c_new[rows], [hidden], mean_c[rows], rstd_c[rows], ln_c_w, None, [True, False, False])[0])
        else:
            dc.addcmul_(dh_cell, d_c_from_h[rows])
        if peephole is not None:
            dc.addcmul_(dz_t[:, 3 * hidden :], peephole[2])
        if inside_clip is not None:
            dc.mul_(inside_clip[rows])
        dz_t[:, : 3 * hidden].view(n, 3, hidden).mul_(dc.unsqueeze(1))  # d/dz_i, d/dz_f, d/dz_g
        dc.mul_(f[rows])  # now the gradient of the previous cell
        if peephole is not None:
            dc.addcmul_(dz_t[:, :hidden], peephole[0])
            dc.addcmul_(dz_t[:, hidden : 2 * hidden], peephole[1])
        if zoning_c:
            dc.add_(dc_to_prev)
        if ln_hh_w is not None:
            d_rh[rows] = torch.ops.aten.native_layer_norm_backward(
                dz_t, rh_buf[rows], [4 * hidden], mean_hh[rows], rstd_hh[rows], ln_hh_w, None, [True, False, False])[0]
            recurrent(d_rh[rows], out=dh_state[:n])
        else:
            recurrent(dz_t, out=dh_state[:n])  # (B_t, P) gradient of the h fed back
        if rec_mask is not None:
            dh_state[:n].mul_(rec_mask[:n])
        if zoning_h:
            dh_state[:n].add_(dh_to_prev)

    grads: dict[str, Tensor] = {"h0": dh_state, "c0": dc_state}
    d_x_proj = dz
    if ln_ih_w is not None:
        d_x_proj, grads["ln_ih_w"], grads["ln_ih_b"] = torch.ops.aten.native_layer_norm_backward(
            dz, x_proj, [4 * hidden], mean_ih, rstd_ih, ln_ih_w, ln_ih_b, [True, want["ln_ih_w"], want["ln_ih_b"]])
    if want["x"]:
        grads["x"] = _RightMatmul(w_ih.t(), total, onednn)(d_x_proj).view(x_shape)  # (T, B, I) or (N, I)
    if want["w_ih"]:
        grads["w_ih"] = torch.mm(d_x_proj.t(), x)  # (4H, I)
    if want["w_hh"]:
        h_in = h_prev
        if rec_mask is not None:
            h_in = h_prev * rec_mask.index_select(0, _batch_index(sched.sizes, x.device))
        grads["w_hh"] = torch.mm((d_rh if d_rh is not None else dz).t(), h_in)  # (4H, P)
    if want["bias"]:
        grads["bias"] = dz.sum(0)  # (4H,)
    if w_hr is not None and want["w_hr"]:
        grads["w_hr"] = torch.mm(dh_all.t(), h_raw)  # (P, H)
    if peephole is not None and want["peephole"]:
        grads["peephole"] = torch.stack([
            (dz[:, :hidden] * c_prev).sum(0),
            (dz[:, hidden : 2 * hidden] * c_prev).sum(0),
            (dz[:, 3 * hidden :] * c_new).sum(0),
        ])  # (3, H)
    if ln_hh_w is not None:  # gains and biases of the per-step norms: one pass over all rows
        _, grads["ln_hh_w"], grads["ln_hh_b"] = torch.ops.aten.native_layer_norm_backward(
            dz, rh_buf, [4 * hidden], mean_hh, rstd_hh, ln_hh_w, ln_hh_b, [False, want["ln_hh_w"], want["ln_hh_b"]])
    if ln_c_w is not None:
        _, grads["ln_c_w"], grads["ln_c_b"] = torch.ops.aten.native_layer_norm_backward(
            d_normed_c, c_new, [hidden], mean_c, rstd_c, ln_c_w, ln_c_b, [False, want["ln_c_w"], want["ln_c_b"]])
    return tuple(grads[k] if want[k] and grads.get(k) is not None else x.new_empty(0) for k in GRADIENTS)


@lru_cache(maxsize=256)
def _batch_index_cpu(sizes: tuple[int, ...]) -> Tensor:
    return torch.cat([torch.arange(n) for n in sizes])


def _batch_index(sizes: tuple[int, ...], device: torch.device) -> Tensor:
    """(N,) the batch row b of every packed row."""
    return _batch_index_cpu(sizes).to(device)
