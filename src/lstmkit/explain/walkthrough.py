"""A terminal walkthrough of a tiny LSTM, and gate plots of a trained model over a text (``lstmkit explain``, whose
argument parsing lives in :mod:`lstmkit.commands.explain`).

The walkthrough builds a small :class:`lstmkit.LSTM` (input 4, hidden 3, 5 steps, batch 2 by default; float64, so
that "equal" can be checked to 1e-12), runs it, and explains what it computed: where each gate's weights sit,
one step by hand, the step-by-step cell loop against the all-at-once call (as PyTorch's "Sequence Models and LSTM
Networks" tutorial does), the shapes at every step, stacked layers and the dropout between them, the projection,
and which parts of ``output`` and ``h_n`` belong to which direction.

Every number printed is computed, never typed in. Each section is a :class:`Section` of printable lines plus the
:class:`Claim` s it makes ("the loop equals the call": the largest difference measured, and whether the check
passed), so tests assert the claims directly and the command exits with 1 if any fails.

With ``--model RUN_DIR --text "..." --out gates.png`` the command plots a trained model's gates over the words of a
text instead (:func:`explain_text`, :mod:`lstmkit.explain.plots`); the command layer loads the model, since this
package sits below ``train`` and cannot read run directories.

Letters: T steps, B batch, I input features, H hidden units, P = proj_size or H, L layers, D directions.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, NamedTuple, Sequence

import torch
from torch import Tensor, nn

from ..nn import LSTM, LSTMCell
from ..ops.reference import lstm_cell_ref
from .tracing import trace

__all__ = [
    "Claim",
    "ExplainError",
    "ExplainModel",
    "Section",
    "Setup",
    "build_setup",
    "explain_text",
    "render",
    "saturation_path",
    "walkthrough",
]

GATES = (("i", "input gate", "sigmoid"), ("f", "forget gate", "sigmoid"), ("g", "cell candidate", "tanh"),
         ("o", "output gate", "sigmoid"))
EXACT = 1e-12  # float64: the same arithmetic in another order differs by a few ulps at most


class ExplainError(ValueError):
    """A problem with what the user asked ``lstmkit explain`` for: printed as one line by the CLI."""


class Claim(NamedTuple):
    """One checked statement of the walkthrough."""

    name: str  # what is claimed, in words
    value: object  # what was measured: a largest difference, a shape
    passed: bool


class Section(NamedTuple):
    """One part of the walkthrough: a heading, what to print, and the claims it checked."""

    title: str
    lines: list[str]  # what to print, without the claims
    claims: list[Claim]


class Setup(NamedTuple):
    """The tiny model and the input every section works on."""

    model: LSTM  # float64, eval mode
    x: Tensor  # (T, B, I)
    steps: int  # T
    batch: int  # B
    input_size: int  # I
    hidden_size: int  # H
    size: int  # P: proj_size, or H without a projection
    layers: int  # L
    directions: int  # D
    dropout: float
    seed: int


# ------------------------------------------------------------------------------------------------ formatting


def _number(value: float, decimals: int = 3) -> str:
    return f"{value:{decimals + 4}.{decimals}f}"


def _vector(v: Tensor, decimals: int = 3) -> str:
    return "[" + " ".join(_number(float(a), decimals) for a in v.detach().reshape(-1)) + " ]"


def _matrix(m: Tensor, indent: str = "    ", decimals: int = 3) -> list[str]:
    return [indent + _vector(row, decimals) for row in m]


def _shape(t: Tensor | Sequence[int]) -> str:
    dims = tuple(t.shape) if isinstance(t, Tensor) else tuple(t)
    return str(dims)  # (12,) for one dimension, as Python writes it


def _close(name: str, ours: Tensor, theirs: Tensor, tol: float = EXACT) -> Claim:
    """A claim that two tensors hold the same numbers; the value is the largest difference."""
    if ours.shape != theirs.shape:
        return Claim(name, f"shapes differ: {_shape(ours)} vs {_shape(theirs)}", False)
    diff = float((ours.detach() - theirs.detach()).abs().max())
    return Claim(name, f"max |diff| {diff:.1e}", diff <= tol)


def _differs(name: str, ours: Tensor, theirs: Tensor) -> Claim:
    """A claim that two tensors do NOT hold the same numbers."""
    diff = float((ours.detach() - theirs.detach()).abs().max())
    return Claim(name, f"max |diff| {diff:.1e}", diff > 1e-6)


def _has_shape(name: str, t: Tensor, expected: tuple[int, ...]) -> Claim:
    return Claim(name, _shape(t), tuple(t.shape) == tuple(expected))


def _direction_name(direction: int) -> str:
    return "forward" if direction == 0 else "backward"


# ------------------------------------------------------------------------------------------------ the setup


def build_setup(
    input_size: int = 4,
    hidden_size: int = 3,
    steps: int = 5,
    batch: int = 2,
    layers: int = 1,
    bidirectional: bool = False,
    proj_size: int = 0,
    dropout: float = 0.5,
    seed: int = 0,
) -> Setup:
    """The model and input of the walkthrough, from ``seed``; the caller's random state is left as it was."""
    for name, value in (("input size", input_size), ("hidden size", hidden_size), ("steps", steps),
                        ("batch", batch), ("layers", layers)):
        if value < 1:
            raise ExplainError(f"{name} must be at least 1, got {value}")
    if not 0 <= proj_size < hidden_size:
        raise ExplainError(f"proj size must be 0 (none) or between 1 and hidden size - 1 = {hidden_size - 1}, got {proj_size}")
    if not 0 <= dropout < 1:
        raise ExplainError(f"dropout must be in [0, 1), got {dropout}")
    dropout = dropout if layers > 1 else 0.0  # dropout acts between layers only
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LSTM(input_size, hidden_size, num_layers=layers, bidirectional=bidirectional, proj_size=proj_size,
                     dropout=dropout, dtype=torch.float64).eval()
        x = torch.randn(steps, batch, input_size, dtype=torch.float64)  # (T, B, I)
    return Setup(model, x, steps, batch, input_size, hidden_size, proj_size or hidden_size, layers,
                 2 if bidirectional else 1, dropout, seed)


def _single_layer(s: Setup, layer: int, bidirectional: bool, impl_cls=LSTM) -> nn.Module:
    """A one-layer LSTM holding the weights of ``layer`` of the setup's model (both directions if asked)."""
    in_features = s.input_size if layer == 0 else s.directions * s.size
    single = impl_cls(in_features, s.hidden_size, bidirectional=bidirectional,
                      proj_size=s.size if s.size != s.hidden_size else 0, dtype=torch.float64)
    state = {}
    for name, value in s.model.state_dict().items():
        if name.endswith(f"_l{layer}") or (bidirectional and name.endswith(f"_l{layer}_reverse")):
            state[name.replace(f"_l{layer}", "_l0")] = value
    single.load_state_dict(state)
    return single.eval()


# ------------------------------------------------------------------------------------------------ sections


def section_model(s: Setup) -> Section:
    m = s.model
    lines = [f"lstm = lstmkit.LSTM({m.extra_repr()})   # float64, eval mode", "",
             f"input x: (T, B, I) = {_shape(s.x)}: {s.steps} time steps, a batch of {s.batch} sequences, "
             f"{s.input_size} features each", "", "parameters:"]
    claims = []
    for layer in range(s.layers):
        in_features = s.input_size if layer == 0 else s.directions * s.size
        for direction in range(s.directions):
            suffix = f"_l{layer}" + ("_reverse" if direction else "")
            expected = {"weight_ih": (4 * s.hidden_size, in_features), "weight_hh": (4 * s.hidden_size, s.size),
                        "bias_ih": (4 * s.hidden_size,), "bias_hh": (4 * s.hidden_size,)}
            if s.size != s.hidden_size:
                expected["weight_hr"] = (s.size, s.hidden_size)
            for kind, shape in expected.items():
                p = getattr(m, kind + suffix)
                lines.append(f"    {kind + suffix:<22} {_shape(p)}")
                claims.append(_has_shape(f"{kind + suffix} has shape {_shape(shape)}", p, shape))
    lines += ["", "4H rows everywhere: the four gates' weights are stacked into one matrix (next section).",
              f"weight_ih_l0 has I = {s.input_size} columns; weight_hh has P = {s.size} columns because it multiplies h."]
    if s.layers > 1:
        lines.append(f"weight_ih_l1 and above have D * P = {s.directions * s.size} columns: they read the layer below.")
    return Section("The model", lines, claims)


def section_weight_layout(s: Setup) -> Section:
    H = s.hidden_size
    w_ih, w_hh, b_ih = s.model.weight_ih_l0, s.model.weight_hh_l0, s.model.bias_ih_l0
    lines = [f"weight_ih_l0 is (4H, I) = {_shape(w_ih)}; its rows, top to bottom, are four gates' matrices:"]
    for k, (letter, name, activation) in enumerate(GATES):
        lines.append(f"    rows {k * H:>2} to {(k + 1) * H - 1:>2}   W_{letter}   {name:<15} ({activation})")
    lines += [f"weight_hh_l0 {_shape(w_hh)}, bias_ih_l0 and bias_hh_l0 {_shape(b_ih)} are stacked the same way "
              "(i, f, g, o: torch's order).", "",
              "W_ih:"] + _matrix(w_ih) + [""]
    x0 = s.x[0]  # (B, I)
    together = x0 @ w_ih.t()  # (B, 4H)
    lines += [f"One matmul for all four gates, the first step of every sequence: x[0] @ W_ih^T -> {_shape(together)}"]
    lines += _matrix(together)
    lines += ["", "chunk(4, dim=1) cuts that into four (B, H) blocks. Each equals the gate's own, smaller matmul:"]
    claims = []
    for k, (block, (letter, name, _)) in enumerate(zip(together.chunk(4, dim=1), GATES)):
        alone = x0 @ w_ih[k * H:(k + 1) * H].t()  # (B, H)
        lines.append(f"  chunk {k} ({letter}):")
        lines += _matrix(block, indent="      ")
        lines.append(f"  x[0] @ W_{letter}^T, rows {k * H} to {(k + 1) * H - 1} alone:")
        lines += _matrix(alone, indent="      ")
        claims.append(_close(f"chunk {k} of x @ W_ih^T equals x @ W_{letter}^T ({name})", block, alone))
    lines += ["", "Why: entry (b, j) of x @ W^T is the dot product of sequence b's x with row j of W. Stacking rows",
              "into one matrix changes no dot product, so one (4H x I) matmul is four (H x I) matmuls side by side,",
              "done in one call that keeps the hardware busier. The same holds for W_hh and h."]
    return Section("Weight layout: four gates in one matrix", lines, claims)


def section_one_step(s: Setup) -> Section:
    m = s.model
    H = s.hidden_size
    [first, *_] = trace(m, s.x)[0]  # layer 0, forward direction
    t = 1 if s.steps > 1 else 0
    x_t = s.x[t, 0]  # (I,)
    h_prev = first.h[t - 1, 0] if t else torch.zeros(s.size, dtype=torch.float64)  # (P,)
    c_prev = first.c[t - 1, 0] if t else torch.zeros(H, dtype=torch.float64)  # (H,)
    z = m.weight_ih_l0 @ x_t + m.bias_ih_l0 + m.weight_hh_l0 @ h_prev + m.bias_hh_l0  # (4H,)
    i = torch.sigmoid(z[0:H])
    f = torch.sigmoid(z[H:2 * H])
    g = torch.tanh(z[2 * H:3 * H])
    o = torch.sigmoid(z[3 * H:])
    c = f * c_prev + i * g  # (H,)
    h = o * torch.tanh(c)  # (H,)
    projected = s.size != H
    if projected:
        h = m.weight_hr_l0 @ h  # (P,)
    rule = "W_hr (o * tanh(c_t))" if projected else "o * tanh(c_t)"
    shown = [("x_t", x_t), ("h_(t-1)", h_prev), ("c_(t-1)", c_prev),
             ("z = W_ih x_t + b_ih + W_hh h_(t-1) + b_hh", z),
             (f"i = sigmoid(z[0:{H}])", i), (f"f = sigmoid(z[{H}:{2 * H}])", f), (f"g = tanh(z[{2 * H}:{3 * H}])", g),
             (f"o = sigmoid(z[{3 * H}:{4 * H}])", o), ("c_t = f * c_(t-1) + i * g", c), (f"h_t = {rule}", h)]
    width = max(len(label) for label, _ in shown)
    lines = [f"Layer 0, sequence 0, step t = {t}, from the state the step before left:"]
    lines += [f"  {label:<{width}}  {_shape(value):<6} {_vector(value)}" for label, value in shown]
    lines += ["",
             "The forget gate f decides how much of the old cell survives, the input gate i how much of the",
             "candidate g is written, the output gate o how much of tanh(c) is shown as h.",
             "lstmkit.explain.trace recorded the same numbers while checking itself against the module:"]
    claims = [_close(f"by hand, {name} at t = {t} equals the trace", ours, getattr(first, name)[t, 0])
              for name, ours in (("i", i), ("f", f), ("g", g), ("o", o), ("c", c), ("h", h))]
    return Section("One step by hand", lines, claims)


def section_loop(s: Setup) -> Section:
    """The cell looped over time against one call of a one-layer LSTM holding layer 0's forward weights."""
    m = s.model
    projected = s.size != s.hidden_size
    zeros_h = torch.zeros(s.batch, s.size, dtype=torch.float64)
    zeros_c = torch.zeros(s.batch, s.hidden_size, dtype=torch.float64)
    if projected:
        lines = ["torch.nn.LSTMCell has no projection, so the loop calls lstmkit.ops.lstm_cell_ref, the same step",
                 "with weight_hr:", ""]
        step = lambda x_t, hx: lstm_cell_ref(x_t, hx, m.weight_ih_l0, m.weight_hh_l0, m.bias_ih_l0,  # noqa: E731
                                             m.bias_hh_l0, m.weight_hr_l0)
        call = "lstm_cell_ref(x[t], (h, c), weights of layer 0)"
    else:
        cell = LSTMCell(s.input_size, s.hidden_size, dtype=torch.float64)
        cell.load_state_dict({"weight_ih": m.weight_ih_l0, "weight_hh": m.weight_hh_l0,
                              "bias_ih": m.bias_ih_l0, "bias_hh": m.bias_hh_l0})
        step = cell
        lines = ["cell = lstmkit.LSTMCell(I, H) with layer 0's forward weights; h, c start as zeros:", ""]
        call = "cell(x[t], (h, c))"
    lines += [f"  for t in range({s.steps}):  h, c = {call}", "",
              f"    {'t':>3}  {'x[t]':<9} {'h in':<9} {'c in':<9} {'gates':<9} {'i,f,g,o':<9} {'c out':<9} "
              f"{'h out':<9} h out of sequence 0"]
    h, c = zeros_h, zeros_c
    hs = []
    for t in range(s.steps):
        gates = s.x[t] @ m.weight_ih_l0.t() + h @ m.weight_hh_l0.t()  # (B, 4H), only to show its shape
        shapes_in = (_shape(s.x[t]), _shape(h), _shape(c), _shape(gates), _shape(gates.chunk(4, dim=1)[0]))
        h, c = step(s.x[t], (h, c))
        hs.append(h)
        shown = (*shapes_in, _shape(c), _shape(h))
        lines.append(f"    {t:>3}  " + " ".join(f"{text:<9}" for text in shown) + f" {_vector(h[0])}")
    loop_out = torch.stack(hs)  # (T, B, P)
    single = _single_layer(s, 0, bidirectional=False)
    out, (h_n, c_n) = single(s.x)
    theirs = _single_layer(s, 0, bidirectional=False, impl_cls=nn.LSTM)
    torch_out, (torch_h_n, torch_c_n) = theirs(s.x)
    lines += ["", "All at once: a one-layer lstmkit.LSTM with the same weights (and torch.nn.LSTM to compare), called on the "
              "whole sequence:",
              f"  output, (h_n, c_n) = lstm(x)     x {_shape(s.x)} -> output {_shape(out)}, h_n {_shape(h_n)}, "
              f"c_n {_shape(c_n)}",
              "  output[:, 0] (sequence 0, one row per step):"] + _matrix(out[:, 0], indent="      ")
    lines += ["  the loop's h for sequence 0, step by step:"] + _matrix(loop_out[:, 0], indent="      ")
    lines += ["", "output holds h of every step; h_n and c_n only the last step's state, shaped (L * D, B, .)."]
    claims = [
        _close("the loop's h at every step equals output of the one call (lstmkit.LSTM)", loop_out, out),
        _close("torch.nn.LSTM with the same weights gives the same output", torch_out, out),
        _close("torch.nn.LSTM gives the same h_n and c_n", torch.cat([torch_h_n, torch_c_n], -1),
               torch.cat([h_n, c_n], -1)),
        _close("the loop's last h equals h_n[0]", h, h_n[0]),
        _close("the loop's last c equals c_n[0]", c, c_n[0]),
        _close("output[-1] equals h_n[0] (one layer, one direction)", out[-1], h_n[0]),
        _has_shape("output is (T, B, P)", out, (s.steps, s.batch, s.size)),
        _has_shape("h_n is (1, B, P)", h_n, (1, s.batch, s.size)),
        _has_shape("c_n is (1, B, H)", c_n, (1, s.batch, s.hidden_size)),
    ]
    return Section("The loop and the one call", lines, claims)


def section_stacked(s: Setup) -> Section:
    if s.layers == 1:
        return Section("Stacked layers", ["One layer here; run with --layers 2 (or 3) to see how layers stack and "
                                          "where dropout goes."], [])
    m = s.model
    bidirectional = s.directions == 2
    side_by_side = " (both directions side by side)" if bidirectional else ""
    lines = [f"{s.layers} layers: layer k reads the output of layer k - 1{side_by_side}, so the whole stack is",
             "single-layer LSTMs called one after the other:"]
    claims = []
    layer_input = s.x
    h_parts, c_parts = [], []
    for layer in range(s.layers):
        single = _single_layer(s, layer, bidirectional)
        out, (h_n, c_n) = single(layer_input)
        lines.append(f"  layer {layer}: input {_shape(layer_input)} -> output {_shape(out)}, "
                     f"h_n {_shape(h_n)}, c_n {_shape(c_n)}")
        h_parts.append(h_n)
        c_parts.append(c_n)
        layer_input = out
    full_out, (full_h, full_c) = m(s.x)
    claims += [_close("the stacked module's output equals the layers called one by one", layer_input, full_out),
               _close("its h_n stacks every layer's final h (layer-major)", torch.cat(h_parts), full_h),
               _close("its c_n stacks every layer's final c", torch.cat(c_parts), full_c),
               _has_shape("h_n has one row per layer and direction: (L * D, B, P)", full_h,
                          (s.layers * s.directions, s.batch, s.size))]
    lines += ["", f"dropout={s.dropout:g} is applied to the output of every layer but the last, and only in training "
              "(model.train()),", "with a fresh random mask on every call. It is not inside the recurrence: h and c "
              "flow from step to step", "undropped, so layer 0's own states do not change."]
    if s.dropout > 0:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(s.seed + 1)
            m.train()
            try:
                train_out, (train_h, train_c) = m(s.x)
            finally:
                m.eval()
        first = slice(0, s.directions)  # layer 0's rows of h_n
        above = slice(s.directions, None)
        # dropout zeroes a unit or scales it by 1 / (1 - p): either way it changes, whatever the mask
        claims += [
            _differs("in training the output differs from eval (dropout before the layers above)", train_out, full_out),
            _close("layer 0's h_n and c_n are the same in training: dropout comes after it",
                   torch.cat([train_h[first], train_c[first]], -1), torch.cat([full_h[first], full_c[first]], -1)),
            _differs("the layers above see dropped inputs, so their h_n changes", train_h[above], full_h[above]),
        ]
        lines.append("Compare one training call with eval:")
        lines.append(f"  output[-1, 0] eval  {_vector(full_out[-1, 0])}")
        lines.append(f"  output[-1, 0] train {_vector(train_out[-1, 0])}")
    return Section("Stacked layers and dropout", lines, claims)


def section_projection(s: Setup) -> Section:
    if s.size == s.hidden_size:
        return Section("Projection", ["No projection here; run with --proj-size 2 to see LSTMP's smaller h."], [])
    m = s.model
    traces = trace(m, s.x)
    out, (h_n, c_n) = m(s.x)
    lines = [f"proj_size={s.size}: after each step h = W_hr (o * tanh(c)), with W_hr of shape (P, H) = "
             f"{_shape(m.weight_hr_l0)}.",
             f"The cell keeps H = {s.hidden_size} units; only h (the output and what the next step reads) has "
             f"P = {s.size}.", "So weight_hh is (4H, P), and h_n is smaller than c_n:",
             f"  output {_shape(out)}   h_n {_shape(h_n)}   c_n {_shape(c_n)}",
             "  layer 0, step 0, sequence 0:",
             f"    o * tanh(c)  {_vector(traces[0][0].cell_output[0, 0])}   (H,)",
             f"    h            {_vector(traces[0][0].h[0, 0])}   (P,)"]
    claims = [_close(f"layer {layer} {_direction_name(d)}: h = (o * tanh(c)) @ W_hr^T at every step",
                     tr.h, tr.cell_output @ getattr(m, f"weight_hr_l{layer}" + ("_reverse" if d else "")).t())
              for layer, row in enumerate(traces) for d, tr in enumerate(row)]
    claims += [_has_shape(f"output has D * P = {s.directions * s.size} features", out,
                          (s.steps, s.batch, s.directions * s.size)),
               _has_shape(f"h_n has P = {s.size} features", h_n, (s.layers * s.directions, s.batch, s.size)),
               _has_shape(f"c_n keeps H = {s.hidden_size} features", c_n,
                          (s.layers * s.directions, s.batch, s.hidden_size))]
    return Section("Projection (LSTMP)", lines, claims)


def section_bidirectional(s: Setup) -> Section:
    if s.directions == 1:
        return Section("Bidirectional", ["One direction here; run with --bidirectional to see which parts of output "
                                         "and h_n are forward and backward."], [])
    m = s.model
    P, T, L = s.size, s.steps, s.layers
    out, (h_n, c_n) = m(s.x)
    traces = trace(m, s.x)
    backward_only = _single_layer(s, L - 1, bidirectional=True)
    # the last layer's input at the last step alone: what the backward direction has seen after one step
    last_input = s.x if L == 1 else torch.cat([traces[L - 2][0].h, traces[L - 2][1].h], -1)
    one_step_out, _ = backward_only(last_input[T - 1:])
    lines = [f"A second LSTM reads every sequence from the last step to the first. output {_shape(out)} puts the two "
             "side by side:",
             f"  output[t, :, :{P}]  forward:  has read steps 0..t",
             f"  output[t, :, {P}:]  backward: has read steps t..{T - 1}",
             f"h_n {_shape(h_n)} is layer-major: h_n[2k] is layer k forward, h_n[2k + 1] layer k backward "
             f"(h_n.view(L, 2, B, P)[k, d]).",
             "So the final states of the last layer are", f"  forward:  output[-1, :, :{P}] = h_n[-2]",
             f"  backward: output[0, :, {P}:] = h_n[-1]   (not output[-1]: there it has read one step only)",
             "", "Sequence 0:",
             f"  h_n[-2]            {_vector(h_n[-2, 0])}",
             f"  output[-1, 0, :P]  {_vector(out[-1, 0, :P])}",
             f"  h_n[-1]            {_vector(h_n[-1, 0])}",
             f"  output[0, 0, P:]   {_vector(out[0, 0, P:])}",
             f"  output[-1, 0, P:]  {_vector(out[-1, 0, P:])}"]
    claims = [
        _close("the forward final state h_n[-2] is output[-1, :, :P]", out[-1, :, :P], h_n[-2]),
        _close("the backward final state h_n[-1] is output[0, :, P:]", out[0, :, P:], h_n[-1]),
        _close("output[-1, :, P:] is the backward direction after its first step only",
               out[-1, :, P:], one_step_out[0, :, P:]),
    ]
    if T > 1:  # with one step, the first step is the last one
        claims.append(_differs("output[-1, :, P:] is not the backward final state", out[-1, :, P:], h_n[-1]))
    for layer in range(L):
        claims += [
            _close(f"h_n[{2 * layer}] is layer {layer} forward after step {T - 1}", traces[layer][0].h[-1], h_n[2 * layer]),
            _close(f"h_n[{2 * layer + 1}] is layer {layer} backward after step 0", traces[layer][1].h[0], h_n[2 * layer + 1]),
        ]
    return Section("Bidirectional: which part is which", lines, claims)


def section_shapes(s: Setup) -> Section:
    m = s.model
    L, D, T, B, I, H, P = s.layers, s.directions, s.steps, s.batch, s.input_size, s.hidden_size, s.size
    out, (h_n, c_n) = m(s.x)
    traces = trace(m, s.x)
    tr = traces[-1][-1]
    gates = s.x[0] @ m.weight_ih_l0.t()  # (B, 4H): the input half of one step's gates, to measure its shape
    h_0 = torch.zeros(L * D, B, P, dtype=torch.float64)
    c_0 = torch.zeros(L * D, B, H, dtype=torch.float64)
    given, _ = m(s.x, (h_0, c_0))  # the module checks these shapes; zeros are also what it uses when hx is None
    rows = [("x", "(T, B, I)", (T, B, I), s.x, "input, time-major"),
            ("h_0", "(L * D, B, P)", (L * D, B, P), h_0, "initial h of every layer and direction (zeros if not given)"),
            ("c_0", "(L * D, B, H)", (L * D, B, H), c_0, "initial c"),
            ("gates at a step", "(B, 4H)", (B, 4 * H), gates, "x_t @ W_ih^T + h @ W_hh^T + biases"),
            ("i, f, g, o", "(T, B, H)", (T, B, H), tr.i, "each gate at every step (from trace)"),
            ("c", "(T, B, H)", (T, B, H), tr.c, "the cell at every step (from trace)"),
            ("h", "(T, B, P)", (T, B, P), tr.h, "one layer and direction's output at every step"),
            ("output", "(T, B, D * P)", (T, B, D * P), out, "the last layer's h, directions side by side"),
            ("h_n", "(L * D, B, P)", (L * D, B, P), h_n, "the last step's h of every layer and direction"),
            ("c_n", "(L * D, B, H)", (L * D, B, H), c_n, "the last step's c of every layer and direction")]
    lines = [f"T={T} steps, B={B} sequences, I={I} inputs, H={H} hidden, P={P}, L={L} layers, D={D} directions:"]
    claims = []
    for name, letters, shape, tensor, meaning in rows:
        lines.append(f"  {name:<16} {letters:<14} = {_shape(shape):<13} {meaning}")
        if tensor is not None:
            claims.append(_has_shape(f"{name} is {letters} = {_shape(shape)}", tensor, shape))
    claims.append(_close("lstm(x, (h_0, c_0)) with zeros equals lstm(x)", given, out))
    lines.append("With batch_first=True, x and output are (B, T, .) instead; h_n and c_n do not change.")
    return Section("Shapes", lines, claims)


SECTIONS: tuple[Callable[[Setup], Section], ...] = (
    section_model, section_weight_layout, section_one_step, section_loop, section_stacked, section_projection,
    section_bidirectional, section_shapes,
)


def walkthrough(
    input_size: int = 4,
    hidden_size: int = 3,
    steps: int = 5,
    batch: int = 2,
    layers: int = 1,
    bidirectional: bool = False,
    proj_size: int = 0,
    dropout: float = 0.5,
    seed: int = 0,
) -> list[Section]:
    """Build the tiny LSTM and compute every section: printable lines and checked :class:`Claim` s.

    ``dropout`` is used only with ``layers > 1`` (it acts between layers). Raises :class:`ExplainError` for sizes
    that make no LSTM.
    """
    s = build_setup(input_size, hidden_size, steps, batch, layers, bidirectional, proj_size, dropout, seed)
    with torch.no_grad():
        return [section(s) for section in SECTIONS]


def render(sections: Sequence[Section]) -> str:
    """The walkthrough as text: each section's heading, lines and checks."""
    out = []
    for number, section in enumerate(sections, 1):
        heading = f"{number}. {section.title}"
        out += ["", heading, "=" * len(heading)] + list(section.lines)
        if section.claims:
            out.append("")
            out += [f"  [{'ok' if c.passed else 'FAILED'}] {c.name}: {c.value}" for c in section.claims]
    claims = [c for section in sections for c in section.claims]
    failed = sum(not c.passed for c in claims)
    out += ["", f"{len(claims) - failed} of {len(claims)} checks passed." + (" SOME FAILED." if failed else "")]
    return "\n".join(out)


# ------------------------------------------------------------------------------------------------ trained models


class ExplainModel(NamedTuple):
    """What :func:`explain_text` needs from a trained model."""

    lstm: nn.Module  # the recurrent part whose gates are traced: an LSTM module as trace() takes it
    tokenize: Callable[[str], list[str]]  # text -> tokens, as the model was trained
    embed: Callable[[list[str]], Tensor]  # tokens -> (T, I): the LSTM's input for those tokens


def saturation_path(out: str | os.PathLike) -> Path:
    """Where the saturation plot goes next to ``out``: ``gates.png`` -> ``gates-saturation.png``."""
    out = Path(out)
    return out.with_name(f"{out.stem}-saturation{out.suffix or '.png'}")


def explain_text(
    model: ExplainModel,
    text: str,
    out: str | os.PathLike,
    layer: int = 0,
    direction: int = 0,
    units: Sequence[int] | None = None,
) -> list[Path]:
    """Trace ``model`` over the words of ``text``; write gate heatmaps to ``out`` and a saturation plot beside it.

    Returns the two paths: ``out`` and :func:`saturation_path` of it.
    """
    from .plots import plot_gate_heatmaps, plot_saturation

    tokens = model.tokenize(text)
    if not tokens:
        raise ExplainError("the text has no tokens to explain")
    with torch.no_grad():
        x = model.embed(tokens)  # (T, I)
        traces = trace(model.lstm, x)
    heatmaps = plot_gate_heatmaps(traces, tokens, out, layer=layer, direction=direction, units=units)
    return [heatmaps, plot_saturation(traces, saturation_path(out))]
