"""Tests for the lstmkit.data package surface: re-exports and the 'stands alone' rule of DESIGN.md."""

from __future__ import annotations

import ast
import doctest
from pathlib import Path

import pytest

import lstmkit.data
import lstmkit.data.batching
import lstmkit.data.vocab

DATA_SOURCES = sorted((Path(lstmkit.data.__file__).parent).glob("*.py"))


def test_every_public_name_is_exported() -> None:
    for name in lstmkit.data.__all__:
        assert hasattr(lstmkit.data, name), name
    assert len(set(lstmkit.data.__all__)) == len(lstmkit.data.__all__)


def test_the_quick_tour_in_the_package_docstring_runs() -> None:
    import torch

    corpus = lstmkit.data.load_corpus(None)
    lstmkit.data.check_length(corpus.train, batch_size=20, bptt=70, split_name="train")
    train = lstmkit.data.batchify(corpus.train, 20)
    generator = torch.Generator().manual_seed(0)
    windows = list(lstmkit.data.bptt_windows(train, 70, generator=generator))
    assert sum(window.seq_len for window in windows) == train.size(0) - 1


@pytest.mark.parametrize("module", [lstmkit.data.vocab, lstmkit.data.batching], ids=lambda module: module.__name__)
def test_docstring_examples_that_need_no_real_data(module: object) -> None:
    import torch

    result = doctest.testmod(module, extraglobs={"torch": torch}, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


def imported_modules(path: Path) -> set[str]:
    modules = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            modules.add(node.module)
    return modules


def test_data_imports_nothing_else_from_lstmkit_and_nothing_from_torch_nn() -> None:
    assert DATA_SOURCES
    for path in DATA_SOURCES:
        for module in imported_modules(path):
            assert not module.startswith("torch.nn"), f"{path.name} imports {module}"
            if module.startswith("lstmkit"):
                assert module.startswith("lstmkit.data"), f"{path.name} imports {module}"
