"""The module paths the README showed before each task got its own package still give the same objects."""

from __future__ import annotations

import importlib

import pytest

MOVED = [
    ("lstmkit.lm_api", "lstmkit.lm.api"),
    ("lstmkit.tagger_api", "lstmkit.tagger.api"),
    ("lstmkit.train.lm", "lstmkit.lm.task"),
]


@pytest.mark.parametrize(("old", "new"), MOVED)
def test_old_module_reexports_every_public_name(old: str, new: str) -> None:
    old_module, new_module = importlib.import_module(old), importlib.import_module(new)
    assert old_module.__all__ == new_module.__all__ and new_module.__all__
    for name in new_module.__all__:
        assert getattr(old_module, name) is getattr(new_module, name), name
    assert "Compatibility" in old_module.__doc__


def test_models_namespace_holds_the_task_models() -> None:
    import lstmkit.lm
    import lstmkit.models
    import lstmkit.tagger

    for name in lstmkit.models.__all__:
        home = lstmkit.lm if hasattr(lstmkit.lm, name) else lstmkit.tagger
        assert getattr(lstmkit.models, name) is getattr(home, name), name
