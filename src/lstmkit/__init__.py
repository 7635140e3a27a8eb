"""lstmkit: readable, fast LSTMs for PyTorch.

``lstmkit.LSTM`` and ``lstmkit.LSTMCell`` are drop-ins for torch's modules; ``lstmkit.ops`` holds the math.

The names are imported on first use (PEP 562), so that ``import lstmkit.cli`` does not load torch: the ``lstmkit``
commands set the OpenMP environment before torch loads (see :mod:`lstmkit.runtime`).
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"
__all__ = ["LSTM", "LSTMCell", "ops", "__version__"]

_LAZY = {"LSTM": ("lstmkit.nn", "LSTM"), "LSTMCell": ("lstmkit.nn", "LSTMCell"), "ops": ("lstmkit.ops", None)}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'lstmkit' has no attribute {name!r}")
    module_name, attribute = _LAZY[name]
    module = importlib.import_module(module_name)
    value = module if attribute is None else getattr(module, attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
