import json
import os

import pytest
import torch
from safetensors.torch import load_file

from lstmkit.train import (
    atomic_save_safetensors,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    atomic_writer,
)


def leftovers(directory):
    return sorted(path.name for path in directory.iterdir() if path.name.endswith(".tmp"))


def test_writes_replace_the_file(tmp_path):
    target = tmp_path / "a.bin"
    atomic_write_bytes(target, b"one")
    atomic_write_bytes(target, b"two")
    assert target.read_bytes() == b"two"
    atomic_write_text(tmp_path / "a.txt", "héllo\n")
    assert (tmp_path / "a.txt").read_text(encoding="utf-8") == "héllo\n"
    atomic_write_json(tmp_path / "a.json", {"x": [1, 2]})
    assert json.loads((tmp_path / "a.json").read_text()) == {"x": [1, 2]}
    weight = torch.randn(3, 2)
    atomic_save_safetensors(tmp_path / "w.safetensors", {"w": weight, "tied": weight})
    loaded = load_file(tmp_path / "w.safetensors")
    assert torch.equal(loaded["w"], weight) and torch.equal(loaded["tied"], weight)
    assert leftovers(tmp_path) == []


def test_failure_inside_the_block_keeps_the_old_file(tmp_path):
    target = tmp_path / "state.json"
    target.write_text("old")
    with pytest.raises(RuntimeError, match="disk on fire"):
        with atomic_writer(target) as file:
            file.write(b"half of the new")
            raise RuntimeError("disk on fire")
    assert target.read_text() == "old"
    assert leftovers(tmp_path) == []


def test_failing_rename_keeps_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "model.safetensors"
    target.write_bytes(b"old")

    def broken_replace(source, destination):
        raise OSError("rename failed")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="rename failed"):
        atomic_save_safetensors(target, {"w": torch.ones(2)})
    assert target.read_bytes() == b"old"
    assert leftovers(tmp_path) == []


def test_unserializable_json_writes_nothing(tmp_path):
    target = tmp_path / "state.json"
    with pytest.raises(TypeError, match="cannot write state.json: values of type object are not JSON-serializable"):
        atomic_write_json(target, {"x": object()})
    assert not target.exists() and leftovers(tmp_path) == []


def test_bad_mode():
    with pytest.raises(ValueError, match="mode must be 'wb' or 'w'"):
        with atomic_writer("x", "ab"):
            pass
