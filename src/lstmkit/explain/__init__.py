"""lstmkit.explain: tracing gates and states, plots, weight-layout converters.

The plotting functions import matplotlib only when called.
"""

from lstmkit.explain import convert
from lstmkit.explain.plots import GateSaturation, plot_gate_heatmaps, plot_saturation, saturation
from lstmkit.explain.tracing import GateTrace, TraceMismatchError, trace

__all__ = [
    "convert",
    "GateSaturation",
    "GateTrace",
    "TraceMismatchError",
    "plot_gate_heatmaps",
    "plot_saturation",
    "saturation",
    "trace",
]
