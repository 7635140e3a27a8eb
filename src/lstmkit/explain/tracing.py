"""Trace an LSTM: the gates, cell and output of every layer, direction and time step.

:func:`trace` reruns a module's forward pass through the reference layer loop
(:func:`lstmkit.ops.reference.lstm_layer_gates_ref`, the loop of ``lstm_layer_ref`` that keeps every step's
gates; the equations are written once, in :func:`~lstmkit.ops.reference.lstm_cell_gates_ref`) with the module's
own weights, and checks that the result is what the module itself returns.

Letters used in shape comments:
    T  time steps            B  batch size (the largest one for packed input)
    I  input features        H  hidden units (cell size)
    P  size of h: proj_size when the LSTM has a projection, else H
    L  layers                D  directions (2 when bidirectional, else 1)
"""

from __future__ import annotations

import contextlib
from typing import Iterator, NamedTuple, Sequence

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence

from ..nn import LSTM, LSTMCell
from ..ops.functional import LayerWeights
from ..ops.reference import NO_VARIANT, CellGates, Variant, lstm_cell_gates_ref, lstm_layer_gates_ref

__all__ = ["GateTrace", "TraceMismatchError", "trace"]

_LSTM_TYPES = (LSTM, nn.LSTM)
_CELL_TYPES = (LSTMCell, nn.LSTMCell)
_GATE_FIELDS = CellGates._fields  # ("i", "f", "g", "o", "c", "h")


class GateTrace(NamedTuple):
    """What one layer in one direction computed at every time step.

    Every tensor is time-major: index ``t`` is the step that produced ``output[t]`` (``output[:, t]`` for
    ``batch_first``), in both directions. Shapes are (T, B, .), or (T, .) for unbatched input; T = 1 for a cell.
    For packed input the batch is in the caller's order (as ``pad_packed_sequence`` returns it) and the steps past
    a sequence's end are zeros.
    """

    i: Tensor  # (T, B, H) input gate, sigmoid
    f: Tensor  # (T, B, H) forget gate, sigmoid
    g: Tensor  # (T, B, H) cell candidate, tanh
    o: Tensor  # (T, B, H) output gate, sigmoid
    c: Tensor  # (T, B, H) cell state after the step
    h: Tensor  # (T, B, P) output after the step (projected when the LSTM has proj_size)

    @property
    def cell_output(self) -> Tensor:
        """``o * tanh(c)``, (T, B, H): the output before the projection. Equal to ``h`` without ``proj_size``."""
        return self.o * torch.tanh(self.c)


class TraceMismatchError(RuntimeError):
    """The reference path did not reproduce the module's own output: the module computes something else."""


# ------------------------------------------------------------------------------------------------ helpers


@contextlib.contextmanager
def _eval_mode(module: nn.Module) -> Iterator[None]:
    """Run the block with ``module`` and all its children in eval mode; give every one its own mode back."""
    modes = [(m, m.training) for m in module.modules()]
    module.eval()
    try:
        yield
    finally:
        for m, training in modes:
            m.training = training


def _lstm_weights(module: nn.Module) -> list[LayerWeights]:
    """One :class:`LayerWeights` per layer and direction, in torch's order (layer-major)."""
    if isinstance(module, LSTM):
        return module.layer_weights()  # a subclass (a regulariser) may hand over modified copies here
    directions = 2 if module.bidirectional else 1
    out = []
    for layer in range(module.num_layers):
        for direction in range(directions):
            suffix = f"_l{layer}" + ("_reverse" if direction == 1 else "")
            get = lambda kind: getattr(module, kind + suffix, None)  # noqa: E731 - absent without bias / proj
            out.append(LayerWeights(get("weight_ih"), get("weight_hh"), get("bias_ih"), get("bias_hh"), get("weight_hr")))
    return out


def _lstm_variants(module: nn.Module, count: int) -> list[Variant]:
    """The options of an lstmkit.LSTM (layer norm, peepholes, cell clip, zoneout's eval-time expectation), one per
    layer and direction; plain for torch's modules. Traces run in eval mode, so no masks are drawn."""
    if isinstance(module, LSTM):
        return module.variants()
    return [NO_VARIANT] * count


def _default_tolerance(dtype: torch.dtype) -> tuple[float, float]:
    """(atol, rtol) for comparing the reference path with the module's kernel, which sums in another order."""
    if dtype == torch.float64:
        return 1e-9, 1e-7
    if dtype == torch.float32:
        return 1e-4, 1e-3
    return 5e-2, 5e-2  # float16 / bfloat16


def _check_close(what: str, ours: Tensor, theirs: Tensor, atol: float, rtol: float, module: nn.Module) -> None:
    ours, theirs = ours.detach(), theirs.detach()
    if ours.shape != theirs.shape:
        raise TraceMismatchError(
            f"trace: {type(module).__name__}'s {what} has shape {tuple(theirs.shape)} but the reference path gives "
            f"{tuple(ours.shape)}"
        )
    if not torch.allclose(ours, theirs, atol=atol, rtol=rtol):
        worst = (ours - theirs).abs().max().item()
        raise TraceMismatchError(
            f"trace: the reference LSTM equations do not reproduce {type(module).__name__}'s {what} "
            f"(largest difference {worst:.3g}, atol={atol:g}, rtol={rtol:g}); the module computes something other "
            "than a standard LSTM with its weights"
        )


def _pad_rows(tensor: Tensor, rows: int) -> Tensor:
    """(n, F) -> (rows, F) with zeros below."""
    missing = rows - tensor.shape[0]
    return tensor if missing == 0 else torch.cat([tensor, tensor.new_zeros(missing, tensor.shape[1])])


def _stack(steps: Sequence[CellGates], batch: int) -> GateTrace:
    """Per-step gates (n_t rows each) -> one GateTrace of (T, B, .) tensors, zeros where a sequence has ended."""
    return GateTrace(*(torch.stack([_pad_rows(step[k], batch) for step in steps]) for k in range(len(_GATE_FIELDS))))


def _reorder_batch(trace: GateTrace, index: Tensor | None, batched: bool) -> GateTrace:
    """Put the batch back in the caller's order (packed input) and drop it for unbatched input."""
    if index is not None:
        trace = GateTrace(*(v.index_select(1, index) for v in trace))
    if not batched:
        trace = GateTrace(*(v.squeeze(1) for v in trace))
    return trace


# ------------------------------------------------------------------------------------------------ tracing


def _trace_lstm(module: nn.Module, input, hx, atol, rtol) -> list[list[GateTrace]]:
    output, (h_n, c_n) = module(input, hx)  # validates everything with the module's own messages
    directions = 2 if module.bidirectional else 1
    hidden = module.hidden_size
    size = module.proj_size if module.proj_size > 0 else hidden
    packed = isinstance(input, PackedSequence)
    batched = True
    sorted_indices = unsorted_indices = None
    if packed:
        layer_input, batch_sizes, sorted_indices, unsorted_indices = input  # (N, I)
        sizes = [int(s) for s in batch_sizes]
    else:
        batched = input.dim() == 3
        x = input if batched else input.unsqueeze(0 if module.batch_first else 1)
        layer_input = x.transpose(0, 1) if module.batch_first else x  # (T, B, I)
        sizes = [layer_input.shape[1]] * layer_input.shape[0]
    batch = sizes[0]
    count = module.num_layers * directions
    if hx is None:
        h0, c0 = layer_input.new_zeros(count, batch, size), layer_input.new_zeros(count, batch, hidden)
    else:
        h0, c0 = hx if batched else (hx[0].unsqueeze(1), hx[1].unsqueeze(1))  # (L * D, B, P), (L * D, B, H)
        if sorted_indices is not None:
            h0, c0 = h0.index_select(1, sorted_indices), c0.index_select(1, sorted_indices)

    weights = _lstm_weights(module)
    variants = _lstm_variants(module, len(weights))
    traces: list[list[GateTrace]] = []
    final_h: list[Tensor] = []
    final_c: list[Tensor] = []
    for layer in range(module.num_layers):
        row: list[GateTrace] = []
        outputs: list[Tensor] = []
        for direction in range(directions):
            k = layer * directions + direction
            gates, (h, c) = lstm_layer_gates_ref(  # the reference layer's own loop, keeping every step
                layer_input, (h0[k], c0[k]), *weights[k], reverse=direction == 1,
                batch_sizes=sizes if packed else None, variant=variants[k],
            )
            row.append(_stack(gates, batch))
            step_h = [step.h for step in gates]
            outputs.append(torch.cat(step_h) if packed else torch.stack(step_h))  # (N, P) or (T, B, P)
            final_h.append(h)
            final_c.append(c)
        traces.append(row)
        # the next layer's input: both directions side by side; no dropout (eval semantics)
        layer_input = outputs[0] if directions == 1 else torch.cat(outputs, dim=-1)

    if packed:
        _check_close("output", layer_input, output.data, atol, rtol, module)  # (N, D * P)
    else:
        theirs = output if batched else output.unsqueeze(0 if module.batch_first else 1)
        theirs = theirs.transpose(0, 1) if module.batch_first else theirs
        _check_close("output", layer_input, theirs, atol, rtol, module)  # (T, B, D * P)
    ours_h, ours_c = torch.stack(final_h), torch.stack(final_c)  # (L * D, B, P), (L * D, B, H)
    if unsorted_indices is not None:
        ours_h, ours_c = ours_h.index_select(1, unsorted_indices), ours_c.index_select(1, unsorted_indices)
    if not batched:
        ours_h, ours_c = ours_h.squeeze(1), ours_c.squeeze(1)
    _check_close("h_n", ours_h, h_n, atol, rtol, module)
    _check_close("c_n", ours_c, c_n, atol, rtol, module)
    return [[_reorder_batch(t, unsorted_indices, batched) for t in row] for row in traces]


def _trace_cell(module: nn.Module, input: Tensor, hx, atol, rtol) -> list[list[GateTrace]]:
    h1, c1 = module(input, hx)  # validates
    batched = input.dim() == 2
    x = input if batched else input.unsqueeze(0)  # (B, I)
    if hx is None:
        zeros = x.new_zeros(x.shape[0], module.hidden_size)
        hx = (zeros, zeros)
    elif not batched:
        hx = (hx[0].unsqueeze(0), hx[1].unsqueeze(0))
    variant = module.variant() if isinstance(module, LSTMCell) else NO_VARIANT
    step = lstm_cell_gates_ref(x, hx, module.weight_ih, module.weight_hh, module.bias_ih, module.bias_hh, variant=variant)
    squeeze = (lambda v: v) if batched else (lambda v: v.squeeze(0))
    _check_close("h", squeeze(step.h), h1, atol, rtol, module)
    _check_close("c", squeeze(step.c), c1, atol, rtol, module)
    return [[GateTrace(*(squeeze(v).unsqueeze(0) for v in step))]]  # T = 1


def trace(
    module: nn.Module,
    input: Tensor | PackedSequence,
    hx: tuple[Tensor, Tensor] | None = None,
    *,
    atol: float | None = None,
    rtol: float | None = None,
) -> list[list[GateTrace]]:
    r"""Every gate, cell state and output of an LSTM, per layer, direction and time step.

    The forward pass is recomputed step by step with the reference equations
    (:func:`lstmkit.ops.reference.lstm_cell_gates_ref`) from the module's current weights::

        i, f, g, o = sigmoid, sigmoid, tanh, sigmoid of chunk_4(W_ih x + b_ih + W_hh h + b_hh)   # (B, H) each
        c' = f * c + i * g                                                                      # (B, H)
        h' = o * tanh(c')             (times W_hr^T with proj_size)                              # (B, P)

    and then compared with what the module itself returns (``output``, ``h_n`` and ``c_n``; ``h`` and ``c`` for a
    cell). A disagreement raises :class:`TraceMismatchError`, so a trace is always a trace of what the module
    really computes.

    Eval semantics: the module and its children are put in eval mode for the call and given their own modes back
    afterwards. Dropout between layers (and anything else a module does only in training, such as a weight-dropout
    regulariser) is therefore off: the trace is the deterministic forward pass with the module's current weights.

    Args:
        module: an :class:`lstmkit.LSTM`, ``torch.nn.LSTM``, :class:`lstmkit.LSTMCell` or ``torch.nn.LSTMCell``
            (subclasses too, when they compute the same function).
        input: what the module's forward takes: (T, B, I), (B, T, I) with ``batch_first``, (T, I) unbatched, or a
            ``PackedSequence`` (sorted or not); (B, I) or (I,) for a cell.
        hx: the initial ``(h_0, c_0)`` as the module takes it, or None for zeros.
        atol, rtol: tolerance of the comparison with the module's output; by default set from the dtype (the
            module's kernel may sum in another order than the reference).

    Returns:
        ``traces[layer][direction]``, a :class:`GateTrace` ``(i, f, g, o, c, h)`` of time-major tensors:

        - i, f, g, o, c: (T, B, H); h: (T, B, P), P = proj_size or H. ``h`` is what the layer outputs, after the
          projection; ``GateTrace.cell_output`` gives ``o * tanh(c)`` before it.
        - Index ``t`` is the step that produced ``output[t]`` (``output[:, t]`` with ``batch_first``) in both
          directions: the reverse direction's ``h[t]`` is ``output[t, :, P:]``.
        - Unbatched input gives (T, H) / (T, P). A cell gives one layer, one direction and T = 1.
        - Packed input gives padded (T, B, .) tensors with the batch in the caller's order (that of
          ``pad_packed_sequence(output)``) and zeros at the steps past each sequence's length.

    Raises:
        TypeError: ``module`` is not one of the four supported kinds.
        TraceMismatchError: the reference path does not reproduce the module's output.
        The module's own errors for invalid ``input`` or ``hx``.

    Example::

        >>> lstm = lstmkit.LSTM(4, 3, num_layers=2, bidirectional=True)
        >>> traces = trace(lstm, torch.randn(5, 2, 4))     # (T=5, B=2, I=4)
        >>> len(traces), len(traces[0]), traces[1][1].f.shape
        (2, 2, torch.Size([5, 2, 3]))
    """
    if isinstance(module, _LSTM_TYPES):
        trace_fn = _trace_lstm
    elif isinstance(module, _CELL_TYPES):
        trace_fn = _trace_cell
    else:
        raise TypeError(
            "trace expects an lstmkit.LSTM, torch.nn.LSTM, lstmkit.LSTMCell or torch.nn.LSTMCell, "
            f"got {type(module).__name__}"
        )
    if isinstance(input, PackedSequence):
        dtype = input.data.dtype
    elif isinstance(input, Tensor):
        dtype = input.dtype
    else:
        raise TypeError(f"trace expects a Tensor or PackedSequence input, got {type(input).__name__}")
    default_atol, default_rtol = _default_tolerance(dtype)
    atol = default_atol if atol is None else atol
    rtol = default_rtol if rtol is None else rtol
    with _eval_mode(module):
        return trace_fn(module, input, hx, atol, rtol)
