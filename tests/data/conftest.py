"""Shared fixtures for the data tests: where the real datasets are, and a skip when they are not."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from helpers import data_root


@pytest.fixture(scope="session")
def real_dataset() -> Callable[[str], Path]:
    """Return a function that maps a dataset folder name to its path, skipping the test when it is absent."""

    def locate(name: str) -> Path:
        path = data_root() / name
        if not path.is_dir():
            pytest.skip(f"real dataset {name!r} not found at {path} (set LSTMKIT_DATA to the shared data folder)")
        return path

    return locate
