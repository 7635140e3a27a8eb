"""Seeding and exact save/restore of every random number generator a run uses.

A resumed run is bit-for-bit identical to an uninterrupted one only if *every* generator is restored: Python's
``random``, NumPy's global generator, torch's CPU generator, the CUDA generators when present, and any explicit
generator the run created (a ``torch.Generator`` for data shuffling, a ``numpy.random.Generator``, a
``random.Random``).

The state returned by :func:`get_rng_state` is a plain nested structure of ints, floats, strings, lists,
tuples, dicts and uint8 tensors, so the checkpoint code can store it without pickle.
"""

from __future__ import annotations

import random
from typing import Any, Mapping, Union

import numpy as np
import torch

ExplicitGenerator = Union[torch.Generator, np.random.Generator, random.Random]


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed Python's ``random``, NumPy's global generator and torch (CPU and every CUDA device).

    Args:
        seed: the seed; must fit NumPy's range ``0 <= seed < 2**32``.
        deterministic: also ask torch for deterministic kernels (``torch.use_deterministic_algorithms`` and
            cuDNN's deterministic mode). Off by default because some ops then raise or run slower.
    """
    if not 0 <= seed < 2**32:
        raise ValueError(f"seed must be in [0, 2**32), but got {seed}")
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # seeds CUDA too
    if deterministic:
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False


def _generator_state(generator: ExplicitGenerator) -> dict[str, Any]:
    if isinstance(generator, torch.Generator):
        return {"kind": "torch", "state": generator.get_state()}
    if isinstance(generator, np.random.Generator):
        return {"kind": "numpy", "state": _arrays_to_lists(generator.bit_generator.state)}
    if isinstance(generator, random.Random):
        return {"kind": "python", "state": generator.getstate()}
    raise TypeError(f"cannot save the state of a {type(generator).__name__}; expected a torch.Generator, "
                    "numpy.random.Generator or random.Random")


def _set_generator_state(name: str, generator: ExplicitGenerator, saved: Mapping[str, Any]) -> None:
    kinds = {"torch": torch.Generator, "numpy": np.random.Generator, "python": random.Random}
    expected = kinds.get(saved["kind"])
    if expected is None or not isinstance(generator, expected):
        raise TypeError(f"generator {name!r} was saved as a {saved['kind']} generator "
                        f"but a {type(generator).__name__} was given")
    if isinstance(generator, torch.Generator):
        generator.set_state(saved["state"])
    elif isinstance(generator, np.random.Generator):
        generator.bit_generator.state = _lists_to_arrays(saved["state"])
    else:
        generator.setstate(_python_state(saved["state"]))


def _python_state(state: Any) -> tuple:
    version, internal, gauss = state
    return (version, tuple(internal), gauss)


def _arrays_to_lists(value: Any) -> Any:
    """NumPy bit-generator states are dicts of ints, plus a uint32 key array for MT19937."""
    if isinstance(value, dict):
        return {key: _arrays_to_lists(item) for key, item in value.items()}
    if isinstance(value, np.ndarray):
        return {"array": value.tolist(), "dtype": str(value.dtype)}
    if isinstance(value, np.integer):
        return int(value)
    return value


def _lists_to_arrays(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"array", "dtype"}:
            return np.asarray(value["array"], dtype=value["dtype"])
        return {key: _lists_to_arrays(item) for key, item in value.items()}
    return value


def get_rng_state(generators: Mapping[str, ExplicitGenerator] | None = None) -> dict[str, Any]:
    """Capture the state of every generator a run uses.

    Args:
        generators: explicit generators by name (e.g. ``{"shuffle": g}``), saved alongside the global ones.

    Returns:
        ``{"python": ..., "numpy": ..., "torch": ByteTensor, "cuda": [ByteTensor, ...], "generators": {...}}``;
        ``cuda`` is empty when CUDA is unavailable.
    """
    name, keys, position, has_gauss, cached_gaussian = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": {
            "name": name,
            "keys": [int(key) for key in keys],
            "position": int(position),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached_gaussian),
        },
        "torch": torch.get_rng_state(),
        "cuda": list(torch.cuda.get_rng_state_all()) if torch.cuda.is_available() else [],
        "generators": {name: _generator_state(g) for name, g in (generators or {}).items()},
    }


def set_rng_state(state: Mapping[str, Any], generators: Mapping[str, ExplicitGenerator] | None = None) -> None:
    """Restore what :func:`get_rng_state` captured.

    CUDA states are restored when CUDA is available (skipped on a CPU-only machine, where they cannot matter).

    Args:
        state: the output of :func:`get_rng_state` (possibly after a trip through a checkpoint).
        generators: the run's explicit generators by name; they are set in place. Each name must have been
            saved, and every saved name must be given, so a generator cannot be silently left unrestored.

    Raises:
        KeyError: when the names of ``generators`` differ from the saved ones.
        TypeError: when a generator is of a different kind than the one saved under its name.
    """
    random.setstate(_python_state(state["python"]))
    numpy_state = state["numpy"]
    np.random.set_state(
        (
            numpy_state["name"],
            np.asarray(numpy_state["keys"], dtype=np.uint32),
            numpy_state["position"],
            numpy_state["has_gauss"],
            numpy_state["cached_gaussian"],
        )
    )
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    saved = state["generators"]
    given = dict(generators or {})
    if set(saved) != set(given):
        raise KeyError(f"saved generators {sorted(saved)} but given {sorted(given)}")
    for name, generator in given.items():
        _set_generator_state(name, generator, saved[name])
