"""A translation of ``lstmkit::lstm_layer`` for ``torch.onnx.export(..., dynamo=True)``, so that a model of your
own that contains lstmkit.LSTM layers exports with torch's ONNX exporter::

    from lstmkit.export import onnx_translation_table

    torch.onnx.export(model, (x,), "model.onnx", dynamo=True, dynamic_shapes=...,
                      custom_translation_table=onnx_translation_table())

Each operator node becomes ONNX's ``LSTM`` operator, with the gate blocks reordered in the graph (torch's i, f, g,
o to ONNX's i, o, f, c) and the biases concatenated to [Wb, Rb]. That covers torch's plain LSTM, peepholes, any
number of layers and directions, in eval mode. Layer norm, projection, cell clip and zoneout need a Scan over
time, which torch.onnx cannot build from a translation (its tracer gives Scan one output); for those, and for the
language model and the tagger, :func:`lstmkit.export.lstm_model` and its siblings build the whole graph.
"""

from __future__ import annotations

from .onnx_graph import ExportError

__all__ = ["onnx_translation_table"]


def _lstm_layer(x, h0, c0, w_ih, w_hh, b_ih=None, b_hh=None, w_hr=None, batch_sizes=None, reverse=False,
                peephole=None, ln_ih_w=None, ln_ih_b=None, ln_hh_w=None, ln_hh_b=None, ln_c_w=None, ln_c_b=None,
                recurrent_mask=None, zoneout_h_mask=None, zoneout_c_mask=None, zoneout_h=0.0, zoneout_c=0.0,
                cell_clip=None, need_workspace=False):
    from onnxscript import opset18 as op

    unsupported = [name for name, value in (
        ("proj_size", w_hr), ("layer_norm", ln_ih_w), ("cell_clip", cell_clip),
        ("zoneout", zoneout_h_mask if zoneout_h_mask is not None else (zoneout_h or zoneout_c or None)),
        ("recurrent_dropout (training)", recurrent_mask), ("packed input", batch_sizes),
    ) if value is not None]
    if unsupported:
        raise ExportError(
            f"torch.onnx cannot express lstmkit.LSTM's {', '.join(unsupported)} (it needs a Scan); export the "
            "module with lstmkit.export.lstm_model instead, which builds the Scan itself"
        )
    hidden = w_hh.shape[0] // 4

    def onnx_gates(t):  # (4H, ...) i, f, g, o -> i, o, f, c
        i, f, g, o = op.Split(t, num_outputs=4, axis=0)
        return op.Concat(i, o, f, g, axis=0)

    inputs = [x, op.Unsqueeze(onnx_gates(w_ih), [0]), op.Unsqueeze(onnx_gates(w_hh), [0])]
    if b_ih is not None or b_hh is not None:
        zeros = op.Expand(op.Constant(value_float=0.0), op.Constant(value_ints=[4 * hidden]))
        biases = [onnx_gates(b) if b is not None else zeros for b in (b_ih, b_hh)]
        inputs.append(op.Unsqueeze(op.Concat(*biases, axis=0), [0]))  # (1, 8H): [Wb, Rb]
    else:
        inputs.append(None)
    inputs += [None, op.Unsqueeze(h0, [0]), op.Unsqueeze(c0, [0])]
    if peephole is not None:  # (3, H) rows c->i, c->f, c'->o; ONNX's P is i, o, f
        p_i, p_f, p_o = op.Split(peephole, num_outputs=3, axis=0)
        inputs.append(op.Reshape(op.Concat(p_i, p_o, p_f, axis=0), op.Constant(value_ints=[1, 3 * hidden])))
    y, h_n, c_n = op.LSTM(*inputs, hidden_size=hidden, direction="reverse" if reverse else "forward")
    empty = op.ConstantOfShape(op.Constant(value_ints=[0]))  # (0,): the workspace outputs, kept by training only
    return (op.Squeeze(y, [1]), op.Squeeze(h_n, [0]), op.Squeeze(c_n, [0]), *(empty for _ in range(10)))


def onnx_translation_table() -> dict:
    """``{torch.ops.lstmkit.lstm_layer.default: translation}`` for ``torch.onnx.export``'s
    ``custom_translation_table``."""
    import torch

    from ..ops import layer_op  # noqa: F401  (registers the operator)

    return {torch.ops.lstmkit.lstm_layer.default: _lstm_layer}
