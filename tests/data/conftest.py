"""Shared fixtures for the data tests: where the real datasets are, and a skip when they are not."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DATA_ROOT = REPO_ROOT.parent / "shared" / "data"


def real_data_root() -> Path:
    """The folder of real datasets: $LSTMKIT_DATA, or ../shared/data next to the repository."""
    configured = os.environ.get("LSTMKIT_DATA")
    return Path(configured) if configured else DEFAULT_DATA_ROOT


@pytest.fixture(scope="session")
def real_dataset() -> Callable[[str], Path]:
    """Return a function that maps a dataset folder name to its path, skipping the test when it is absent."""

    def locate(name: str) -> Path:
        path = real_data_root() / name
        if not path.is_dir():
            pytest.skip(f"real dataset {name!r} not found at {path} (set LSTMKIT_DATA to the shared data folder)")
        return path

    return locate
