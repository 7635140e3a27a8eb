"""Type checks shared by the model configs: an ``int`` field holds an int (not ``True``), a ``float`` field a finite
number, a ``bool`` field ``True`` or ``False`` (not ``"yes"``)."""

from __future__ import annotations

import dataclasses
import math
from typing import Any


def check_field_types(config: Any) -> None:
    """Raise TypeError / ValueError naming the first field of the dataclass ``config`` whose value does not have
    its annotated type (``int``, ``float`` or ``bool``; other annotations are left to the config's own checks)."""
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        kind = field.type if isinstance(field.type, str) else getattr(field.type, "__name__", "")
        if kind == "bool" and not isinstance(value, bool):
            raise TypeError(f"{field.name} should be of type bool, got: {type(value).__name__} ({value!r})")
        if kind == "int" and (isinstance(value, bool) or not isinstance(value, int)):
            raise TypeError(f"{field.name} should be of type int, got: {type(value).__name__} ({value!r})")
        if kind == "float":
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TypeError(f"{field.name} should be a number, got: {type(value).__name__} ({value!r})")
            if not math.isfinite(value):
                raise ValueError(f"{field.name} must be a finite number, got {value}")
