"""ONNX graphs of lstmkit.LSTM, the language model and the tagger, built node by node from their weights.

Letters as in :mod:`lstmkit.ops.reference` (T, B, I, H, P); D directions, L layers.

Why build the graph ourselves rather than trace the module: an LSTM's time loop is the part the tracing exporters
cannot carry with a dynamic length (torch's own nn.LSTM specialises T, pytorch#91439), while ONNX has the loop as
one node. So each layer and direction becomes

- ONNX's ``LSTM`` operator when it is torch's plain LSTM, with peepholes if any (ONNX has them natively). ONNX
  stacks the gates i, o, f, c where torch stacks i, f, g, o, so the rows are reordered; its bias is [Wb, Rb]
  (8H) and its peepholes are ordered i, o, f;
- a ``Scan`` over time whose body is the cell written out (:func:`_cell_body`) for layer norm, projection, cell
  clip and zoneout, which ``LSTM`` cannot express. The input GEMM (and its layer norm) runs once for all steps
  before the Scan, as in the fused path.

Variable lengths are ONNX's ``sequence_lens``: ``LSTM`` takes them directly (a finished sequence keeps its state,
its outputs are zeros, and the reverse direction starts at each sequence's own last step, which is what a
PackedSequence means); the Scan gets a (T, B, 1) mask and ``ReverseSequence`` for the reverse direction. Only
inference is exported: dropout of every kind is off, zoneout is its expectation (eval mode).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch import Tensor

from ..tagger.data import PAD_TAG
from ..nn import LSTM
from ..ops.reference import LAYER_NORM_EPS

__all__ = [
    "ONNX_OPSET", "ExportError", "GraphBuilder", "lstm_nodes", "lstm_model", "language_model_model", "tagger_model",
]

ONNX_OPSET = 17  # onnxruntime 1.18 and later run it; ReduceMean still takes its axes as an attribute here
_TORCH_TO_ONNX_GATES = (0, 3, 1, 2)  # ONNX's i, o, f, c are torch's blocks i, o, f, g


class ExportError(ValueError):
    """The model cannot be written in the requested format; the message says which option and why."""


def _onnx():
    try:
        import onnx
    except ImportError:
        raise ExportError("ONNX export needs the onnx package: pip install 'lstmkit[onnx]'") from None
    return onnx


class GraphBuilder:
    """Nodes, initializers, inputs and outputs of one ONNX graph, with unique names.

    A Scan body is another builder whose nodes may read this one's values (ONNX's outer-scope rule)."""

    def __init__(self, prefix: str = "") -> None:
        self.onnx = _onnx()
        self.prefix = prefix
        self.nodes: list = []
        self.initializers: list = []
        self.inputs: list = []
        self.outputs: list = []
        self._count = 0

    def name(self, hint: str) -> str:
        self._count += 1
        return f"{self.prefix}{hint}_{self._count}"

    def const(self, value, hint: str = "const", dtype=None) -> str:
        """An initializer from a tensor, array or number (float32 unless ``dtype`` says otherwise)."""
        if isinstance(value, Tensor):
            value = value.detach().cpu().numpy()
        if dtype is None and not isinstance(value, np.ndarray):
            dtype = np.float32
        array = np.asarray(value, dtype=dtype).copy(order="C")  # (np.ascontiguousarray would make 0-d arrays 1-d)
        name = self.name(hint)
        self.initializers.append(self.onnx.numpy_helper.from_array(array, name))
        return name

    def ints(self, values: Sequence[int], hint: str = "ints") -> str:
        return self.const(np.asarray(values, dtype=np.int64), hint)

    def op(self, op_type: str, inputs: Sequence[str], outputs: int | Sequence[str] = 1, hint: str | None = None,
           **attrs):
        """Add a node; returns its output name (or the list of names when ``outputs`` > 1 or is a list)."""
        if isinstance(outputs, int):
            names = [self.name(hint or op_type.lower()) for _ in range(outputs)]
        else:
            names = list(outputs)
        self.nodes.append(self.onnx.helper.make_node(op_type, list(inputs), names, name=self.name(op_type), **attrs))
        return names[0] if isinstance(outputs, int) and outputs == 1 else names

    def input(self, name: str, elem_type: int, shape: Sequence[int | str | None]) -> str:
        self.inputs.append(self.onnx.helper.make_tensor_value_info(name, elem_type, list(shape)))
        return name

    def output(self, value: str, name: str, elem_type: int, shape: Sequence[int | str | None]) -> None:
        """Expose ``value`` as the graph output ``name``."""
        self.op("Identity", [value], [name])
        self.outputs.append(self.onnx.helper.make_tensor_value_info(name, elem_type, list(shape)))

    def graph(self, name: str):
        return self.onnx.helper.make_graph(self.nodes, name, self.inputs, self.outputs, self.initializers)

    def model(self, name: str, metadata: dict[str, str] | None = None):
        onnx = self.onnx
        model = onnx.helper.make_model(
            self.graph(name), opset_imports=[onnx.helper.make_opsetid("", ONNX_OPSET)], producer_name="lstmkit"
        )
        for key, value in (metadata or {}).items():
            entry = model.metadata_props.add()
            entry.key, entry.value = key, value
        onnx.checker.check_model(model)
        return model

    # small compositions used everywhere
    def matmul_t(self, x: str, weight: Tensor, hint: str) -> str:
        """``x @ weight.T`` for a constant ``weight`` (stored transposed once)."""
        return self.op("MatMul", [x, self.const(weight.detach().t().contiguous(), hint)])

    def layer_norm(self, x: str, gain: Tensor, bias: Tensor, hint: str) -> str:
        """``F.layer_norm`` over the last axis, written out in two passes (mean, then the mean of squared
        deviations): onnxruntime's LayerNormalization kernel was 10x further from float64 than torch's here
        (4.8e-6 against 5.4e-7 on outputs of mean magnitude 0.19), enough to miss 1e-5 of eager."""
        centred = self.op("Sub", [x, self.op("ReduceMean", [x], axes=[-1])])
        variance = self.op("ReduceMean", [self.op("Mul", [centred, centred])], axes=[-1])
        spread = self.op("Sqrt", [self.op("Add", [variance, self.const(np.float32(LAYER_NORM_EPS))])])
        normed = self.op("Div", [centred, spread])
        scaled = self.op("Mul", [normed, self.const(gain, hint + "_gain")])
        return self.op("Add", [scaled, self.const(bias, hint + "_bias")])

    def dim(self, x: str, axis: int) -> str:
        """The size of ``x`` along ``axis`` as a 1-element int64 tensor."""
        shape = self.op("Shape", [x])
        return self.op("Gather", [shape, self.ints([axis])], axis=0)


# -------------------------------------------------------------------------------------------- one LSTM module


def _check_module(module: LSTM) -> None:
    if not isinstance(module, LSTM):
        raise ExportError(f"expected an lstmkit.LSTM, got {type(module).__name__}")
    dtype = module.weight_ih_l0.dtype
    if dtype != torch.float32:
        raise ExportError(f"ONNX export writes float32 models; this LSTM's weights are {dtype} (call .float() first)")


def _onnx_gates(tensor: Tensor) -> Tensor:
    """Torch's (4H, ...) gate blocks i, f, g, o reordered to ONNX's i, o, f, c."""
    blocks = tensor.detach().chunk(4, dim=0)
    return torch.cat([blocks[k] for k in _TORCH_TO_ONNX_GATES], dim=0)


def _needs_scan(module: LSTM) -> bool:
    """Whether a layer needs more than ONNX's LSTM operator (which has peepholes but no layer norm, projection,
    cell clip on c, or zoneout)."""
    return bool(module.layer_norm or module.proj_size or module.cell_clip is not None or any(module.zoneout))


def lstm_nodes(
    g: GraphBuilder,
    module: LSTM,
    x: str,
    *,
    lengths: str | None = None,
    state: tuple[str, str] | None = None,
) -> tuple[str, str, str]:
    """Nodes computing ``module`` in eval mode on the time-major ``x`` (T, B, I).

    Args:
        lengths: an int64 (B,) value: sequence b has ``lengths[b]`` real steps (packed semantics), or None.
        state: ``(h0 (L*D, B, P), c0 (L*D, B, H))`` values, or None for zeros.

    Returns:
        names of ``output`` (T, B, D*P) (zeros after each sequence's end), ``h_n`` (L*D, B, P), ``c_n`` (L*D, B, H).
    """
    _check_module(module)
    directions = 2 if module.bidirectional else 1
    weights = module.layer_weights()
    variants = module.variants()
    scan = _needs_scan(module)
    mask = _step_mask(g, x, lengths) if scan and lengths is not None else None
    lengths32 = g.op("Cast", [lengths], to=g.onnx.TensorProto.INT32) if lengths is not None and not scan else None
    h_n, c_n = [], []
    layer_input = x
    for layer in range(module.num_layers):
        ks = [layer * directions + d for d in range(directions)]
        if state is not None:
            bounds = (g.ints([ks[0]]), g.ints([ks[-1] + 1]), g.ints([0]))
            h0 = g.op("Slice", [state[0], *bounds])  # (D, B, P)
            c0 = g.op("Slice", [state[1], *bounds])  # (D, B, H)
        else:
            h0 = c0 = None
        if scan:
            outs = []
            for d, k in enumerate(ks):
                hk = g.op("Gather", [h0, g.ints(d)], axis=0) if h0 is not None else None  # (B, P)
                ck = g.op("Gather", [c0, g.ints(d)], axis=0) if c0 is not None else None  # (B, H)
                y, hn, cn = _scan_layer(
                    g, module, weights[k], variants[k], layer_input, lengths, mask, (hk, ck), reverse=d == 1
                )
                outs.append(y)
                h_n.append(g.op("Unsqueeze", [hn, g.ints([0])]))
                c_n.append(g.op("Unsqueeze", [cn, g.ints([0])]))
            layer_input = outs[0] if directions == 1 else g.op("Concat", outs, axis=-1)
        else:
            y, hn, cn = _onnx_lstm_layer(
                g, module, [weights[k] for k in ks], [variants[k] for k in ks], layer_input, lengths32, h0, c0
            )
            layer_input = y
            h_n.append(hn)
            c_n.append(cn)
    h_all = h_n[0] if len(h_n) == 1 else g.op("Concat", h_n, axis=0)
    c_all = c_n[0] if len(c_n) == 1 else g.op("Concat", c_n, axis=0)
    return layer_input, h_all, c_all


def _onnx_lstm_layer(g: GraphBuilder, module: LSTM, weights, variants, x: str, lengths, h0, c0) -> tuple[str, str, str]:
    """One layer (both directions) as ONNX's LSTM operator; returns y (T, B, D*H), h_n (D, B, H), c_n (D, B, H)."""
    hidden = module.hidden_size
    directions = len(weights)
    w = torch.stack([_onnx_gates(lw.w_ih) for lw in weights])  # (D, 4H, I)
    r = torch.stack([_onnx_gates(lw.w_hh) for lw in weights])  # (D, 4H, H)
    inputs = [x, g.const(w, "lstm_W"), g.const(r, "lstm_R")]
    if module.bias:
        b = torch.stack([torch.cat([_onnx_gates(lw.b_ih), _onnx_gates(lw.b_hh)]) for lw in weights])  # (D, 8H)
        inputs.append(g.const(b, "lstm_B"))
    else:
        inputs.append("")
    inputs += [lengths or "", h0 or "", c0 or ""]
    if module.peephole:
        p = torch.stack([torch.cat([v.peephole[0], v.peephole[2], v.peephole[1]]) for v in variants])  # (D, 3H) i, o, f
        inputs.append(g.const(p, "lstm_P"))
    while inputs and inputs[-1] == "":
        inputs.pop()
    direction = "bidirectional" if directions == 2 else "forward"
    y, h_n, c_n = g.op("LSTM", inputs, 3, hint="lstm", hidden_size=hidden, direction=direction)
    y = g.op("Transpose", [y], perm=[0, 2, 1, 3])  # (T, D, B, H) -> (T, B, D, H)
    y = g.op("Reshape", [y, g.ints([0, 0, directions * hidden])])  # (T, B, D*H)
    return y, h_n, c_n


def _step_mask(g: GraphBuilder, x: str, lengths: str) -> str:
    """(T, B, 1) float: 1 where step t is one of sequence b's real steps."""
    steps = g.op("Squeeze", [g.dim(x, 0), g.ints([0])])
    t = g.op("Range", [g.const(np.int64(0), dtype=np.int64), steps, g.const(np.int64(1), dtype=np.int64)])  # (T,)
    t = g.op("Unsqueeze", [t, g.ints([1])])  # (T, 1)
    lens = g.op("Unsqueeze", [lengths, g.ints([0])])  # (1, B)
    mask = g.op("Cast", [g.op("Less", [t, lens])], to=1)  # (T, B)
    return g.op("Unsqueeze", [mask, g.ints([2])])  # (T, B, 1)


def _zeros_state(g: GraphBuilder, x: str, size: int) -> str:
    """A (B, size) float32 zero state, B taken from x (T, B, .)."""
    shape = g.op("Concat", [g.dim(x, 1), g.ints([size])], axis=0)
    return g.op("ConstantOfShape", [shape], value=g.onnx.helper.make_tensor("zero", 1, [1], [0.0]))


def _scan_layer(
    g: GraphBuilder, module: LSTM, w, v, x: str, lengths, mask, state, reverse: bool
) -> tuple[str, str, str]:
    """One layer and direction as a Scan over time; returns y (T, B, P), h_n (B, P), c_n (B, H)."""
    hidden = module.hidden_size
    proj = module.proj_size or hidden
    h0 = state[0] if state[0] is not None else _zeros_state(g, x, proj)
    c0 = state[1] if state[1] is not None else _zeros_state(g, x, hidden)
    gates_x = g.matmul_t(x, w.w_ih, "w_ih_t")  # (T, B, 4H): one GEMM for all steps
    if v.ln_ih is not None:
        gates_x = g.layer_norm(gates_x, *v.ln_ih, "ln_ih")
    if w.b_ih is not None:
        gates_x = g.op("Add", [gates_x, g.const(w.b_ih + w.b_hh, "bias")])
    scan_inputs = [gates_x] + ([mask] if mask is not None else [])
    if reverse and lengths is not None:  # each sequence reversed within its own length; the mask is symmetric
        gates_x = g.op("ReverseSequence", [gates_x, lengths], batch_axis=1, time_axis=0)
        scan_inputs[0] = gates_x
    body = _cell_body(g, module, w, v, masked=mask is not None)
    directions = [1 if reverse and lengths is None else 0] * len(scan_inputs)
    h_n, c_n, y = g.op(
        "Scan", [h0, c0, *scan_inputs], 3, hint="scan", body=body, num_scan_inputs=len(scan_inputs),
        scan_input_directions=directions, scan_output_directions=directions[:1],
    )
    if reverse and lengths is not None:
        y = g.op("ReverseSequence", [y, lengths], batch_axis=1, time_axis=0)
    return y, h_n, c_n


def _cell_body(outer: GraphBuilder, module: LSTM, w, v, masked: bool):
    """The Scan body: one step of the cell, the equations of :func:`lstmkit.ops.reference.lstm_cell_gates_ref`
    in eval mode. State in: h (B, P), c (B, H); scan in: the step's x-gates (B, 4H) [and mask (B, 1)];
    state out: h', c'; scan out: the step's output (zero where masked)."""
    onnx = outer.onnx
    hidden = module.hidden_size
    proj = module.proj_size or hidden
    b = GraphBuilder(prefix=outer.name("body") + "/")
    float_t = onnx.TensorProto.FLOAT
    h = b.input(b.name("h"), float_t, ["B", proj])
    c = b.input(b.name("c"), float_t, ["B", hidden])
    gx = b.input(b.name("gates_x"), float_t, ["B", 4 * hidden])
    m = b.input(b.name("mask"), float_t, ["B", 1]) if masked else None
    gh = b.matmul_t(h, w.w_hh, "w_hh_t")  # (B, 4H)
    if v.ln_hh is not None:
        gh = b.layer_norm(gh, *v.ln_hh, "ln_hh")
    gates = b.op("Add", [gx, gh])
    i, f, gg, o = b.op("Split", [gates, b.ints([hidden] * 4)], 4, axis=-1)  # (B, H) each, torch's order
    if v.peephole is not None:
        i = b.op("Add", [i, b.op("Mul", [b.const(v.peephole[0], "p_ci"), c])])
        f = b.op("Add", [f, b.op("Mul", [b.const(v.peephole[1], "p_cf"), c])])
    i, f, gg = b.op("Sigmoid", [i]), b.op("Sigmoid", [f]), b.op("Tanh", [gg])
    c_new = b.op("Add", [b.op("Mul", [f, c]), b.op("Mul", [i, gg])])  # (B, H)
    if v.cell_clip is not None:
        c_new = b.op("Clip", [c_new, b.const(np.float32(-v.cell_clip)), b.const(np.float32(v.cell_clip))])
    if v.peephole is not None:
        o = b.op("Add", [o, b.op("Mul", [b.const(v.peephole[2], "p_co"), c_new])])
    o = b.op("Sigmoid", [o])
    c_out = b.layer_norm(c_new, *v.ln_c, "ln_c") if v.ln_c is not None else c_new
    h_new = b.op("Mul", [o, b.op("Tanh", [c_out])])  # (B, H)
    if w.w_hr is not None:
        h_new = b.matmul_t(h_new, w.w_hr, "w_hr_t")  # (B, P)
    if v.zoneout_h:  # eval: the expectation, lerp(new, prev, p) = new + p (prev - new)
        h_new = b.op("Add", [h_new, b.op("Mul", [b.const(np.float32(v.zoneout_h)), b.op("Sub", [h, h_new])])])
    if v.zoneout_c:
        c_new = b.op("Add", [c_new, b.op("Mul", [b.const(np.float32(v.zoneout_c)), b.op("Sub", [c, c_new])])])
    if masked:  # finished sequences keep their state and output zeros
        h_next = b.op("Add", [h, b.op("Mul", [m, b.op("Sub", [h_new, h])])])
        c_next = b.op("Add", [c, b.op("Mul", [m, b.op("Sub", [c_new, c])])])
        y = b.op("Mul", [m, h_new])
    else:
        h_next, c_next, y = h_new, c_new, h_new
    b.output(h_next, b.name("h_out"), float_t, ["B", proj])
    b.output(c_next, b.name("c_out"), float_t, ["B", hidden])
    b.output(y, b.name("y"), float_t, ["B", proj])
    if b.initializers:  # constants of the body live in the outer graph (ORT shares them, the checker wants them there)
        outer.initializers.extend(b.initializers)
        b.initializers = []
    return b.graph("lstm_cell")


# -------------------------------------------------------------------------------------------- whole models


def lstm_model(module: LSTM, *, lengths: bool = False, state: bool = False):
    """An ONNX model of ``module`` (eval mode) with dynamic length and batch.

    Inputs: ``input`` (T, B, I), or (B, T, I) with ``batch_first``; with ``lengths``: ``lengths`` (B,) int64, the
    real steps of each sequence (a PackedSequence's lengths; outputs past a sequence's end are zeros, as
    ``pad_packed_sequence`` gives); with ``state``: ``h0`` (L*D, B, P) and ``c0`` (L*D, B, H).
    Outputs: ``output`` (like the input, D*P features), ``h_n``, ``c_n``.
    """
    _check_module(module)
    onnx = _onnx()
    float_t = onnx.TensorProto.FLOAT
    g = GraphBuilder()
    directions = 2 if module.bidirectional else 1
    layers = module.num_layers * directions
    proj = module.proj_size or module.hidden_size
    seq_shape = ["B", "T", module.input_size] if module.batch_first else ["T", "B", module.input_size]
    x = g.input("input", float_t, seq_shape)
    lens = g.input("lengths", onnx.TensorProto.INT64, ["B"]) if lengths else None
    hx = None
    if state:
        hx = (g.input("h0", float_t, [layers, "B", proj]), g.input("c0", float_t, [layers, "B", module.hidden_size]))
    time_major = g.op("Transpose", [x], perm=[1, 0, 2]) if module.batch_first else x
    y, h_n, c_n = lstm_nodes(g, module, time_major, lengths=lens, state=hx)
    if module.batch_first:
        y = g.op("Transpose", [y], perm=[1, 0, 2])
    out_shape = seq_shape[:2] + [directions * proj]
    g.output(y, "output", float_t, out_shape)
    g.output(h_n, "h_n", float_t, [layers, "B", proj])
    g.output(c_n, "c_n", float_t, [layers, "B", module.hidden_size])
    return g.model("lstmkit_LSTM")


def _linear(g: GraphBuilder, x: str, linear: torch.nn.Linear, features: int) -> str:
    """``linear`` applied to the last axis of a 3-D ``x``: one Gemm over the flattened rows (the weight is stored
    once, untransposed, so a tied embedding matrix is not copied twice in memory)."""
    rows = g.op("Reshape", [x, g.ints([-1, features])])
    inputs = [rows, g.const(linear.weight, "linear_weight")]
    if linear.bias is not None:
        inputs.append(g.const(linear.bias, "linear_bias"))
    flat = g.op("Gemm", inputs, transB=1)  # (rows, out)
    lead = g.op("Slice", [g.op("Shape", [x]), g.ints([0]), g.ints([2])])  # the first two dims of x
    return g.op("Reshape", [flat, g.op("Concat", [lead, g.ints([linear.out_features])], axis=0)])


def language_model_model(model, metadata: dict[str, str] | None = None):
    """An ONNX model of a :class:`~lstmkit.lm.LanguageModel` (eval mode).

    Inputs: ``words`` (T, B) int64 token ids; ``h0_{k}``, ``c0_{k}`` (1, B, H_k) the state entering each layer k
    (zeros to start, the previous call's ``h_n_{k}``, ``c_n_{k}`` to continue a text).
    Outputs: ``logits`` (T, B, V) and ``h_n_{k}``, ``c_n_{k}``.
    """
    onnx = _onnx()
    float_t, int64_t = onnx.TensorProto.FLOAT, onnx.TensorProto.INT64
    if model.embedding.weight.dtype != torch.float32:
        raise ExportError(f"ONNX export writes float32 models; this one is {model.embedding.weight.dtype}")
    g = GraphBuilder()
    words = g.input("words", int64_t, ["T", "B"])
    x = g.op("Gather", [g.const(model.embedding.weight, "embedding"), words], axis=0)  # (T, B, E)
    states = []
    for k, layer in enumerate(model.layers):
        h0 = g.input(f"h0_{k}", float_t, [1, "B", layer.hidden_size])
        c0 = g.input(f"c0_{k}", float_t, [1, "B", layer.hidden_size])
        x, h_n, c_n = lstm_nodes(g, layer, x, state=(h0, c0))
        states.append((h_n, c_n, layer.hidden_size))
    logits = _linear(g, x, model.decoder, model.decoder.in_features)
    g.output(logits, "logits", float_t, ["T", "B", model.vocab_size])
    for k, (h_n, c_n, size) in enumerate(states):
        g.output(h_n, f"h_n_{k}", float_t, [1, "B", size])
        g.output(c_n, f"c_n_{k}", float_t, [1, "B", size])
    return g.model("lstmkit_LanguageModel", metadata)


def tagger_model(tagger, metadata: dict[str, str] | None = None):
    """An ONNX model of a :class:`~lstmkit.tagger.Tagger` (eval mode), taking a padded batch with lengths where
    the module takes packed sequences (ONNX's ``sequence_lens`` give the same results).

    Inputs (those of :class:`~lstmkit.data.TaggingBatch`, all int64): ``word_ids`` (B, T), ``lengths`` (B,),
    ``char_ids`` (U, C) the characters of U word forms, ``char_lengths`` (U,), ``word_index`` (B, T) the row of
    ``char_ids`` spelling each word (U may simply be every word of the batch, ``word_index`` counting them).
    Outputs: ``logits`` (B, T, K) and ``tags`` (B, T) the best tag id per word (never ``<unk>`` = 0), -100 at
    padding.
    """
    onnx = _onnx()
    float_t, int64_t = onnx.TensorProto.FLOAT, onnx.TensorProto.INT64
    if tagger.output.weight.dtype != torch.float32:
        raise ExportError(f"ONNX export writes float32 models; this one is {tagger.output.weight.dtype}")
    g = GraphBuilder()
    word_ids = g.input("word_ids", int64_t, ["B", "T"])
    lengths = g.input("lengths", int64_t, ["B"])
    char_ids = g.input("char_ids", int64_t, ["U", "C"])
    char_lengths = g.input("char_lengths", int64_t, ["U"])
    word_index = g.input("word_index", int64_t, ["B", "T"])
    # spelling vectors: the character BiLSTM's last state of each direction, (U, 2Hc)
    chars = g.op("Gather", [g.const(tagger.char_embedding.weight, "char_embedding"), char_ids], axis=0)  # (U, C, Ec)
    chars = g.op("Transpose", [chars], perm=[1, 0, 2])  # (C, U, Ec)
    _, h_n, _ = lstm_nodes(g, tagger.char_lstm, chars, lengths=char_lengths)  # (2, U, Hc)
    spellings = g.op("Reshape", [g.op("Transpose", [h_n], perm=[1, 0, 2]), g.ints([0, -1])])  # (U, 2Hc)
    words = g.op("Gather", [g.const(tagger.word_embedding.weight, "word_embedding"), word_ids], axis=0)  # (B, T, E)
    x = g.op("Concat", [words, g.op("Gather", [spellings, word_index], axis=0)], axis=-1)  # (B, T, E + 2Hc)
    x = g.op("Transpose", [x], perm=[1, 0, 2])  # (T, B, .)
    hidden, _, _ = lstm_nodes(g, tagger.sentence_lstm, x, lengths=lengths)  # (T, B, 2H)
    hidden = g.op("Transpose", [hidden], perm=[1, 0, 2])  # (B, T, 2H), zeros at padding
    logits = _linear(g, hidden, tagger.output, tagger.output.in_features)  # (B, T, K)
    # the best tag but <unk> (id 0), and the padding tag where there is no word
    scores = g.op("Slice", [logits, g.ints([1]), g.ints([tagger.num_tags]), g.ints([2])])  # (B, T, K-1): no <unk>
    best = g.op("ArgMax", [scores], axis=2, keepdims=0)
    best = g.op("Add", [best, g.const(np.int64(1), dtype=np.int64)])
    steps = g.op("Squeeze", [g.dim(word_ids, 1), g.ints([0])])
    positions = g.op("Range", [g.const(np.int64(0), dtype=np.int64), steps, g.const(np.int64(1), dtype=np.int64)])
    real = g.op("Less", [g.op("Unsqueeze", [positions, g.ints([0])]), g.op("Unsqueeze", [lengths, g.ints([1])])])
    tags = g.op("Where", [real, best, g.const(np.int64(PAD_TAG), dtype=np.int64)])
    g.output(logits, "logits", float_t, ["B", "T", tagger.num_tags])
    g.output(tags, "tags", int64_t, ["B", "T"])
    return g.model("lstmkit_Tagger", metadata)
