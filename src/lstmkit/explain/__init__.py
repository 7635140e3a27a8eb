"""lstmkit.explain: tracing gates and states, plots, weight-layout converters."""

from lstmkit.explain import convert
from lstmkit.explain.tracing import GateTrace, TraceMismatchError, trace

__all__ = ["convert", "GateTrace", "TraceMismatchError", "trace"]
