"""Fixtures shared by the whole suite; helper functions live in helpers.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import data_root


@pytest.fixture
def real_data() -> Path:
    root = data_root()
    if not root.is_dir():
        pytest.skip(f"real datasets not found at {root} (set LSTMKIT_DATA to their folder)")
    return root
