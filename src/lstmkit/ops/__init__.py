"""Pure tensor functions: the reference LSTM, the fused autograd Function and the dispatching entry points."""

from .functional import IMPLS, LayerWeights, lstm, lstm_cell, lstm_layer, resolve_impl
from .fused import LSTMLayerFunction, lstm_layer_fused
from .reference import lstm_cell_ref, lstm_layer_ref

__all__ = [
    "IMPLS",
    "LayerWeights",
    "LSTMLayerFunction",
    "lstm",
    "lstm_cell",
    "lstm_cell_ref",
    "lstm_layer",
    "lstm_layer_fused",
    "lstm_layer_ref",
    "resolve_impl",
]
