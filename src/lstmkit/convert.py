"""Short path to :mod:`lstmkit.explain.convert`: ``lstmkit.convert.to_keras`` and friends."""

from lstmkit.explain.convert import (
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
