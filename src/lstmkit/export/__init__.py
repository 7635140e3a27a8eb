"""Exporting lstmkit models for inference: ONNX graphs that onnxruntime runs, and torch.export programs.

- :func:`lstm_model`, :func:`language_model_model`, :func:`tagger_model`: ONNX models (``onnx.ModelProto``)
  built from the weights, dynamic length and batch (:mod:`lstmkit.export.onnx_graph`).
- :func:`export_lstm`, :func:`export_language_model`, :func:`export_tagger`: ``torch.export`` programs with a
  symbolic length and batch (:mod:`lstmkit.export.pt2`), on the export forms of :mod:`lstmkit.export.programs`.
- :func:`export_run`: a trained run to a file, as ``lstmkit export`` does.
- :func:`onnx_translation_table`: for ``torch.onnx.export(..., dynamo=True)`` of your own model with lstmkit.LSTM
  layers (plain and peephole layers; :mod:`lstmkit.export.torch_onnx`).

ONNX export needs the optional packages of ``pip install 'lstmkit[onnx]'``.
"""

from .onnx_graph import ExportError, language_model_model, lstm_model, tagger_model
from .programs import LanguageModelProgram, LSTMWithLengths, TaggerProgram, lstm_with_lengths
from .pt2 import METADATA_FILE, export_language_model, export_lstm, export_tagger, program_bytes
from .runs import FORMATS, ExportedRun, export_run
from .torch_onnx import onnx_translation_table

__all__ = [
    "ExportError",
    "ExportedRun",
    "FORMATS",
    "LSTMWithLengths",
    "LanguageModelProgram",
    "METADATA_FILE",
    "TaggerProgram",
    "export_language_model",
    "export_lstm",
    "export_run",
    "export_tagger",
    "language_model_model",
    "lstm_model",
    "lstm_with_lengths",
    "onnx_translation_table",
    "program_bytes",
    "tagger_model",
]
