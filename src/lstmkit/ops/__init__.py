"""Pure tensor functions: the reference LSTM, the fused autograd Function, the dispatching entry points, the
fused decoder + cross entropy of a language model, and the masks of the dropout-like options (:mod:`.masks`)."""

from .cross_entropy import LinearCrossEntropyFunction, linear_cross_entropy, linear_cross_entropy_ref
from .functional import IMPLS, LayerWeights, lstm, lstm_cell, lstm_layer, resolve_impl
from .fused import LSTMLayerFunction, lstm_layer_fused
from .masks import drop_weight
from .reference import lstm_cell_ref, lstm_layer_ref

__all__ = [
    "IMPLS",
    "LayerWeights",
    "LSTMLayerFunction",
    "LinearCrossEntropyFunction",
    "drop_weight",
    "linear_cross_entropy",
    "linear_cross_entropy_ref",
    "lstm",
    "lstm_cell",
    "lstm_cell_ref",
    "lstm_layer",
    "lstm_layer_fused",
    "lstm_layer_ref",
    "resolve_impl",
]
