"""lstmkit.convert: one LSTM layer's weights between torch's layout and those of Keras, haste and the fast.ai
course cell, and between ``torch.nn.LSTM`` and ``torch.nn.LSTMCell`` keys (see :mod:`lstmkit.convert.layouts` for
the conventions and how each was checked).

Example::

    >>> import torch
    >>> kernel, recurrent_kernel, bias = to_keras(torch.nn.LSTM(3, 5).state_dict())  # (3, 20), (5, 20), (20,)
"""

from lstmkit.convert.layouts import (
    TransposedWeights,
    cell_to_layer,
    from_course_cell,
    from_haste,
    from_keras,
    layer_to_cell,
    to_course_cell,
    to_haste,
    to_keras,
)

__all__ = [
    "TransposedWeights",
    "to_keras",
    "from_keras",
    "to_haste",
    "from_haste",
    "to_course_cell",
    "from_course_cell",
    "cell_to_layer",
    "layer_to_cell",
]
