"""lstmkit.explain: tracing gates and states, plots, the ``lstmkit explain`` walkthrough (weight-layout converters
live in :mod:`lstmkit.convert`).

The plotting functions import matplotlib only when called.
"""

from lstmkit.explain.plots import GateSaturation, plot_gate_heatmaps, plot_saturation, saturation
from lstmkit.explain.tracing import GateTrace, TraceMismatchError, trace
from lstmkit.explain.walkthrough import ExplainError, walkthrough

__all__ = [
    "ExplainError",
    "GateSaturation",
    "GateTrace",
    "TraceMismatchError",
    "plot_gate_heatmaps",
    "plot_saturation",
    "saturation",
    "trace",
    "walkthrough",
]
