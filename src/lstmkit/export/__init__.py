"""Exporting lstmkit models: ONNX graphs that onnxruntime runs, and torch.export programs."""

from .onnx_graph import ExportError, language_model_model, lstm_model, tagger_model

__all__ = ["ExportError", "language_model_model", "lstm_model", "tagger_model"]
