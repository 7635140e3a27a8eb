"""Split a nested state (an optimizer's ``state_dict``, RNG states) into JSON and a flat dict of tensors.

This is how the checkpoint stores structured state without pickle: every tensor goes to a safetensors file
under a key that names its place in the tree, and the rest becomes JSON in which each tensor is replaced by
``{"__tensor__": key}``. Types JSON cannot tell apart are tagged so they come back as they were:
``{"__tuple__": [...]}`` for tuples and ``{"__items__": [[key, value], ...]}`` for dicts whose keys are not
all strings (an optimizer's state is keyed by parameter index). ``float('nan')`` and infinities are written as
JSON's common ``NaN`` / ``Infinity`` extension, which Python's ``json`` reads back.
"""

from __future__ import annotations

from typing import Any

import torch

TENSOR, TUPLE, ITEMS = "__tensor__", "__tuple__", "__items__"
_TAGS = (TENSOR, TUPLE, ITEMS)
_SCALARS = (bool, int, float, str, type(None))


def split_tensors(tree: Any) -> tuple[Any, dict[str, torch.Tensor]]:
    """Return ``(skeleton, tensors)``: a JSON-ready skeleton and the tensors it refers to by key.

    Raises:
        TypeError: for a value that is neither a tensor, a JSON scalar, a list, a tuple nor a dict, naming
            its place in the tree.
    """
    tensors: dict[str, torch.Tensor] = {}

    def child(path: str, key: Any) -> str:
        return f"{path}.{key}" if path else str(key)

    def walk(value: Any, path: str) -> Any:
        if isinstance(value, torch.Tensor):
            if path in tensors:
                raise TypeError(f"cannot store {path!r}: two tensors would share that key")
            tensors[path] = value
            return {TENSOR: path}
        if isinstance(value, _SCALARS):
            return value
        if isinstance(value, tuple):
            return {TUPLE: [walk(item, child(path, i)) for i, item in enumerate(value)]}
        if isinstance(value, list):
            return [walk(item, child(path, i)) for i, item in enumerate(value)]
        if isinstance(value, dict):
            if all(isinstance(key, str) for key in value):
                clash = [key for key in value if key in _TAGS]
                if clash:
                    raise TypeError(f"cannot store {path or 'the root'}: key {clash[0]!r} is reserved")
                return {key: walk(item, child(path, key)) for key, item in value.items()}
            for key in value:
                if not isinstance(key, _SCALARS):
                    raise TypeError(f"cannot store {path or 'the root'}: dict key {key!r} is not a JSON scalar")
            return {ITEMS: [[key, walk(item, child(path, key))] for key, item in value.items()]}
        kind = type(value).__name__
        raise TypeError(f"cannot store {path or 'the root'}: values of type {kind} are not supported")

    skeleton = walk(tree, "")
    return skeleton, tensors


def join_tensors(skeleton: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """Inverse of :func:`split_tensors`.

    Raises:
        KeyError: (with the tensor's key) when the skeleton refers to a tensor that is not in ``tensors``.
    """

    def walk(value: Any) -> Any:
        if isinstance(value, list):
            return [walk(item) for item in value]
        if isinstance(value, dict):
            if set(value) == {TENSOR}:
                key = value[TENSOR]
                if key not in tensors:
                    raise KeyError(key)
                return tensors[key]
            if set(value) == {TUPLE}:
                return tuple(walk(item) for item in value[TUPLE])
            if set(value) == {ITEMS}:
                return {key: walk(item) for key, item in value[ITEMS]}
            return {key: walk(item) for key, item in value.items()}
        return value

    return walk(skeleton)
