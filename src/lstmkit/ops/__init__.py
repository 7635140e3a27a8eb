"""Pure tensor functions: the reference LSTM, the fused layer operator (``lstmkit::lstm_layer``), the dispatching
entry points, the fused decoder + cross entropy of a language model, and the masks of the dropout-like options
(:mod:`.masks`)."""

from .cross_entropy import LinearCrossEntropyFunction, linear_cross_entropy, linear_cross_entropy_ref
from .functional import IMPLS, LayerWeights, lstm, lstm_cell, lstm_layer, resolve_impl
from .layer_op import cpp_extension_error, cpp_extension_stale, fused_backend, lstm_layer_fused, use_fused_backend
from .masks import drop_weight
from .reference import lstm_cell_ref, lstm_layer_ref, lstm_layer_scan

__all__ = [
    "IMPLS",
    "LayerWeights",
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
    "lstm_layer_scan",
    "resolve_impl",
    "cpp_extension_error",
    "cpp_extension_stale",
    "fused_backend",
    "use_fused_backend",
]
