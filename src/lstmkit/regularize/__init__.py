"""lstmkit.regularize: AWD-LSTM regularizers, each a pure function plus a thin module."""

from .activation import (
    ActivationRegularization,
    TemporalActivationRegularization,
    activation_regularization,
    temporal_activation_regularization,
)
from .embedding_dropout import EmbeddingDropout, embedding_dropout
from .locked_dropout import LockedDropout, locked_dropout
from .weight_dropout import WeightDropout, drop_weight, keep_mask
from .word_dropout import WordDropout, word_dropout, word_dropout_probabilities

__all__ = [
    "locked_dropout",
    "LockedDropout",
    "embedding_dropout",
    "EmbeddingDropout",
    "drop_weight",
    "keep_mask",
    "WeightDropout",
    "activation_regularization",
    "ActivationRegularization",
    "temporal_activation_regularization",
    "TemporalActivationRegularization",
    "word_dropout_probabilities",
    "word_dropout",
    "WordDropout",
]
