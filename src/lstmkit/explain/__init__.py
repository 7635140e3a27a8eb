"""lstmkit.explain: tracing gates and states, plots, weight-layout converters."""

from lstmkit.explain import convert

__all__ = ["convert"]
