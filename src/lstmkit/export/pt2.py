"""torch.export programs of lstmkit.LSTM, the language model and the tagger, with a symbolic length and batch.

Each layer is one ``lstmkit::lstm_layer`` node (:mod:`lstmkit.ops.layer_op`), whose fake kernel keeps T and B
symbolic; under export ``impl="auto"`` takes it (:func:`lstmkit.ops.resolve_impl`). With ``impl="reference"`` or
``"native"`` each layer is one ``higher_order.scan`` node over the reference step instead
(:func:`lstmkit.ops.reference.lstm_layer_scan`; torch's kernel would be unrolled at one length, pytorch#91439).
A saved program is loaded with ``torch.export.load`` after ``import lstmkit``, which registers the operator.
"""

from __future__ import annotations

import io
import json

import torch
from torch.export import Dim, ExportedProgram

from ..nn import LSTM
from .onnx_graph import ExportError
from .programs import LanguageModelProgram, LSTMWithLengths, TaggerProgram

__all__ = ["METADATA_FILE", "export_lstm", "export_language_model", "export_tagger", "program_bytes"]

METADATA_FILE = "lstmkit.json"  # the extra file of a saved program that holds what it needs beside its weights
_MAX = 1 << 20  # upper bound of the symbolic sizes (torch.export wants one)


def _export(module, args, dynamic_shapes) -> ExportedProgram:
    """``torch.export.export`` for inference: without grad, so that the operator keeps no workspace for a backward
    (recorded in the graph as ``need_workspace=False``; the program runs twice as fast)."""
    with torch.no_grad():
        return torch.export.export(module, args, dynamic_shapes=dynamic_shapes)


def _dim(name: str) -> Dim:
    return Dim(name, min=1, max=_MAX)


def _eval(model) -> None:
    if model.training:
        raise ExportError("export computes inference: call .eval() on the model first")


def export_lstm(module: LSTM, *, lengths: bool = False) -> ExportedProgram:
    """``module`` (eval mode) as a program with dynamic T and B.

    Without ``lengths`` the program is the module itself, called as ``(input, (h0, c0))``; with ``lengths`` it is
    :class:`~lstmkit.export.programs.LSTMWithLengths`, called as ``(input, lengths, h0, c0)`` (what packed
    input computes). Outputs ``(output, (h_n, c_n))`` or ``(output, h_n, c_n)``.
    """
    if not isinstance(module, LSTM):
        raise ExportError(f"expected an lstmkit.LSTM, got {type(module).__name__}")
    _eval(module)
    steps, batch = _dim("T"), _dim("B")
    directions = 2 if module.bidirectional else 1
    layers = module.num_layers * directions
    weight = module.weight_ih_l0
    x = weight.new_zeros((2, 3, module.input_size) if module.batch_first else (3, 2, module.input_size))
    h0 = weight.new_zeros(layers, 2, module.proj_size or module.hidden_size)
    c0 = weight.new_zeros(layers, 2, module.hidden_size)
    seq = {0: batch, 1: steps} if module.batch_first else {0: steps, 1: batch}
    if not lengths:  # the module's own forward: its impl decides
        return _export(module, (x, (h0, c0)), (seq, ({1: batch}, {1: batch})))
    example = (x, torch.tensor([3, 2]), h0, c0)
    return _export(LSTMWithLengths(module), example, (seq, {0: batch}, {1: batch}, {1: batch}))


def export_language_model(model) -> ExportedProgram:
    """A :class:`~lstmkit.lm.LanguageModel` (eval mode) as a
    :class:`~lstmkit.export.programs.LanguageModelProgram`: ``(words (T, B), h0_0, c0_0, ...) -> (logits, h_n_0,
    c_n_0, ...)`` with dynamic T and B."""
    _eval(model)
    steps, batch = _dim("T"), _dim("B")
    states = [t for h, c in model.init_hidden(2) for t in (h, c)]
    words = torch.zeros(3, 2, dtype=torch.long)
    shapes = ({0: steps, 1: batch}, tuple({1: batch} for _ in states))  # *states is one tuple to export
    return _export(LanguageModelProgram(model), (words, *states), shapes)


def export_tagger(tagger) -> ExportedProgram:
    """A :class:`~lstmkit.tagger.Tagger` (eval mode) as a :class:`~lstmkit.export.programs.TaggerProgram`:
    ``(word_ids, lengths, char_ids, char_lengths, word_index) -> (logits, tags)`` with dynamic B, T, U and C."""
    _eval(tagger)
    batch, steps, forms, chars = _dim("B"), _dim("T"), _dim("U"), _dim("C")
    example = (
        torch.zeros(2, 3, dtype=torch.long),  # word_ids (B, T)
        torch.tensor([3, 2]),  # lengths (B,)
        torch.zeros(4, 5, dtype=torch.long),  # char_ids (U, C)
        torch.tensor([5, 2, 3, 1]),  # char_lengths (U,)
        torch.tensor([[0, 1, 2], [3, 0, 0]]),  # word_index (B, T)
    )
    shapes = ({0: batch, 1: steps}, {0: batch}, {0: forms, 1: chars}, {0: forms}, {0: batch, 1: steps})
    return _export(TaggerProgram(tagger), example, shapes)


def program_bytes(program: ExportedProgram, metadata: dict | None = None) -> bytes:
    """The ``torch.export.save`` file of ``program``, with ``metadata`` as JSON in its extra file
    :data:`METADATA_FILE` (read it back with ``torch.export.load(f, extra_files={METADATA_FILE: ""})``)."""
    buffer = io.BytesIO()
    extra = {METADATA_FILE: json.dumps(metadata or {}, ensure_ascii=False)}
    torch.export.save(program, buffer, extra_files=extra)
    return buffer.getvalue()
