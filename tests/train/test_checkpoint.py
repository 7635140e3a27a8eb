import json
import os
import random
import shutil
from dataclasses import dataclass, field

import numpy as np
import pytest
import torch
from torch import nn

import lstmkit.train.checkpoint as checkpoint_module
from lstmkit.train import (
    NTASGD,
    CheckpointError,
    checkpoint_exists,
    config_from_dict,
    load_checkpoint,
    save_checkpoint,
    seed_everything,
    set_rng_state,
)


@dataclass
class TinyConfig:
    lr: float = 0.1  # learning rate
    sizes: tuple[int, ...] = (4, 8)  # layer sizes


@dataclass
class RunConfig:
    seed: int = 0  # seed
    model: TinyConfig = field(default_factory=TinyConfig)  # model settings


OPTIMIZERS = {
    "sgd_momentum": lambda params: torch.optim.SGD(params, lr=0.1, momentum=0.9, weight_decay=1e-4),
    "adam": lambda params: torch.optim.Adam(params, lr=0.01, betas=(0.8, 0.99)),
    "asgd": lambda params: torch.optim.ASGD(params, lr=0.1, t0=0, lambd=0.0),
    "ntasgd": lambda params: NTASGD(params, lr=0.1, momentum=0.5, nonmono=0),
}


def make_model():
    return nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Dropout(0.3), nn.Linear(8, 1))


def train_steps(model, optimizer, generator, steps):
    """Draws from every RNG each step, so a badly restored generator changes the result."""
    model.train()
    for _ in range(steps):
        batch = 3 + random.randrange(3)  # python
        noise = float(np.random.rand())  # numpy global
        x = torch.randn(batch, 4, generator=generator)  # explicit generator
        y = x.sum(dim=1, keepdim=True) + noise
        loss = (model(x) - y).pow(2).mean()  # dropout: torch global
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if isinstance(optimizer, NTASGD):
            optimizer.step_validation(loss.item())


@pytest.mark.parametrize("optimizer_name", list(OPTIMIZERS))
def test_resume_is_bit_for_bit(tmp_path, optimizer_name):
    seed_everything(0)
    model = make_model()
    optimizer = OPTIMIZERS[optimizer_name](model.parameters())
    generator = torch.Generator().manual_seed(7)
    train_steps(model, optimizer, generator, 3)
    save_checkpoint(tmp_path, model.state_dict(), optimizer, {"step": 3}, generators={"data": generator})
    train_steps(model, optimizer, generator, 3)
    uninterrupted = {k: v.clone() for k, v in model.state_dict().items()}

    seed_everything(99)  # a different process state that loading must overwrite
    resumed_model = make_model()
    resumed_optimizer = OPTIMIZERS[optimizer_name](resumed_model.parameters())
    resumed_generator = torch.Generator().manual_seed(12345)
    checkpoint = load_checkpoint(tmp_path)
    resumed_model.load_state_dict(checkpoint.model_state)
    resumed_optimizer.load_state_dict(checkpoint.optimizer_state)
    set_rng_state(checkpoint.rng_state, generators={"data": resumed_generator})
    assert checkpoint.extra == {"step": 3}
    train_steps(resumed_model, resumed_optimizer, resumed_generator, 3)

    for key, value in resumed_model.state_dict().items():
        assert torch.equal(value, uninterrupted[key]), key
    if isinstance(optimizer, NTASGD):
        assert resumed_optimizer.averaging and resumed_optimizer.num_averaged == optimizer.num_averaged
        for p, q in zip(model.parameters(), resumed_model.parameters()):
            assert torch.equal(optimizer.state[p]["average"], resumed_optimizer.state[q]["average"])


def test_optimizer_state_round_trip_is_exact(tmp_path):
    model = make_model()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01, betas=(0.8, 0.99))
    train_steps(model, optimizer, torch.Generator().manual_seed(0), 2)
    save_checkpoint(tmp_path, model.state_dict(), optimizer)
    restored = load_checkpoint(tmp_path).optimizer_state
    original = optimizer.state_dict()
    assert restored["param_groups"] == original["param_groups"]  # betas come back as a tuple
    assert restored["state"].keys() == original["state"].keys()
    for index, state in original["state"].items():
        for key, value in state.items():
            assert torch.equal(restored["state"][index][key], value)
            assert restored["state"][index][key].dtype == value.dtype


def test_tied_weights_config_and_vocabulary_are_stored(tmp_path):
    embedding = nn.Embedding(5, 3)
    decoder = nn.Linear(3, 5)
    decoder.weight = embedding.weight  # shared storage, as in a weight-tied language model
    model = nn.ModuleDict({"embedding": embedding, "decoder": decoder})
    vocabulary = {"<eos>": 0, "the": 1, "cat": 2}
    extra = {"step": 10, "epoch": 2, "best": float("inf"), "config": RunConfig(), "vocab": vocabulary}
    save_checkpoint(tmp_path, model.state_dict(), None, extra)
    checkpoint = load_checkpoint(tmp_path)
    assert checkpoint.optimizer_state is None
    assert torch.equal(checkpoint.model_state["decoder.weight"], embedding.weight)
    assert config_from_dict(RunConfig, checkpoint.extra["config"]) == RunConfig()
    assert checkpoint.extra["vocab"] == vocabulary and checkpoint.extra["best"] == float("inf")


def test_files_and_names(tmp_path):
    model = nn.Linear(2, 2)
    path = save_checkpoint(tmp_path, model.state_dict(), torch.optim.SGD(model.parameters(), lr=0.1), {})
    assert path == tmp_path / "checkpoint.000001" and (tmp_path / "checkpoint").resolve() == path
    assert sorted(os.listdir(path)) == [
        "manifest.json", "model.safetensors", "optimizer.json", "optimizer.safetensors",
        "rng.json", "rng.safetensors", "state.json",
    ]
    save_checkpoint(tmp_path, model.state_dict(), None, {"score": 1.0}, name="best")
    assert checkpoint_exists(tmp_path, "best") and checkpoint_exists(tmp_path)
    assert load_checkpoint(tmp_path, name="best").extra == {"score": 1.0}
    # no temporary leftovers: a pointer and one version each
    assert sorted(os.listdir(tmp_path)) == ["best", "best.000001", "checkpoint", "checkpoint.000001"]
    with pytest.raises(ValueError, match="plain directory name"):
        save_checkpoint(tmp_path, model.state_dict(), name="../x")


def test_no_checkpoint(tmp_path):
    assert not checkpoint_exists(tmp_path)
    with pytest.raises(CheckpointError, match=r"no checkpoint in .*: .*checkpoint does not exist"):
        load_checkpoint(tmp_path)


@pytest.fixture
def saved(tmp_path):
    model = nn.Linear(3, 2)
    save_checkpoint(tmp_path, model.state_dict(), torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9),
                    {"step": 1})
    return tmp_path / "checkpoint"


@pytest.mark.parametrize(
    "file",
    ["model.safetensors", "optimizer.safetensors", "optimizer.json", "rng.json", "rng.safetensors", "state.json"],
)
def test_missing_file(saved, file):
    (saved / file).unlink()
    with pytest.raises(CheckpointError, match=rf"is incomplete: {file} is missing"):
        load_checkpoint(saved.parent)


@pytest.mark.parametrize("file", ["model.safetensors", "optimizer.json", "state.json"])
def test_truncated_file(saved, file):
    data = (saved / file).read_bytes()
    (saved / file).write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=rf"{file} is truncated \({len(data) // 2} bytes, expected {len(data)}\)"):
        load_checkpoint(saved.parent)


@pytest.mark.parametrize("file", ["model.safetensors", "rng.json"])
def test_corrupt_file(saved, file):
    data = bytearray((saved / file).read_bytes())
    data[-2] ^= 0xFF
    (saved / file).write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=rf"{file} is damaged \(SHA-256 does not match the manifest\)"):
        load_checkpoint(saved.parent)


def test_missing_or_damaged_manifest(saved):
    manifest = (saved / "manifest.json").read_text()
    (saved / "manifest.json").write_text(manifest[:10])
    with pytest.raises(CheckpointError, match=r"manifest.json is damaged"):
        load_checkpoint(saved.parent)
    (saved / "manifest.json").unlink()
    with pytest.raises(CheckpointError, match=r"is incomplete: manifest.json is missing"):
        load_checkpoint(saved.parent)


@pytest.mark.parametrize("content", ["[]", '{"format": "other", "files": {}}', '{"files": {"state.json": 3}}'])
def test_manifest_of_the_wrong_shape(saved, content):
    (saved / "manifest.json").write_text(content)
    with pytest.raises(CheckpointError, match=r"manifest.json is damaged: not an lstmkit-checkpoint manifest"):
        load_checkpoint(saved.parent)


def test_manifest_not_listing_a_file_or_of_another_version(saved):
    manifest = json.loads((saved / "manifest.json").read_text())
    del manifest["files"]["rng.json"]
    (saved / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(CheckpointError, match=r"manifest.json is damaged: it does not list rng.json"):
        load_checkpoint(saved.parent)
    manifest["version"] = 99
    (saved / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(CheckpointError, match=r"manifest.json has format version 99; this lstmkit reads version 1"):
        load_checkpoint(saved.parent)


def test_tensor_missing_behind_a_consistent_manifest(saved):
    rng_json = json.loads((saved / "rng.json").read_text())
    rng_json["torch"] = {"__tensor__": "nowhere"}
    data = json.dumps(rng_json).encode()
    (saved / "rng.json").write_bytes(data)
    manifest = json.loads((saved / "manifest.json").read_text())
    manifest["files"]["rng.json"] = {"bytes": len(data), "sha256": checkpoint_module._sha256(data)}
    (saved / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(CheckpointError, match=r"rng.safetensors lacks tensor 'nowhere'"):
        load_checkpoint(saved.parent)


def test_damaged_content_behind_a_consistent_manifest(saved):
    # Someone rewrote both a file and the manifest: the content itself must still be checked.
    garbage = b"not a safetensors file"
    (saved / "model.safetensors").write_bytes(garbage)
    manifest = json.loads((saved / "manifest.json").read_text())
    manifest["files"]["model.safetensors"] = {"bytes": len(garbage), "sha256": checkpoint_module._sha256(garbage)}
    (saved / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(CheckpointError, match=r"model.safetensors is damaged: "):
        load_checkpoint(saved.parent)


def test_error_message_is_one_line(saved):
    (saved / "state.json").unlink()
    with pytest.raises(CheckpointError) as error:
        load_checkpoint(saved.parent)
    assert "\n" not in str(error.value)


def test_crash_while_writing_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    model = nn.Linear(3, 2)
    save_checkpoint(tmp_path, model.state_dict(), None, {"step": 1})
    written = []
    real_write = checkpoint_module._write_synced

    def dies_on_third_file(path, data):
        if len(written) == 2:
            raise OSError("disk full")
        written.append(path.name)
        real_write(path, data)

    monkeypatch.setattr(checkpoint_module, "_write_synced", dies_on_third_file)
    with torch.no_grad():
        model.weight.add_(1.0)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(tmp_path, model.state_dict(), None, {"step": 2})
    assert load_checkpoint(tmp_path).extra == {"step": 1}
    assert sorted(os.listdir(tmp_path)) == ["checkpoint", "checkpoint.000001"]


def test_failed_pointer_switch_rolls_back(tmp_path, monkeypatch):
    save_checkpoint(tmp_path, {"w": torch.zeros(2)}, None, {"step": 1})
    real_replace = os.replace

    def refuses_new_pointer(source, destination):
        if ".link-" in str(source):
            raise OSError("rename failed")
        real_replace(source, destination)

    monkeypatch.setattr(os, "replace", refuses_new_pointer)
    with pytest.raises(OSError, match="rename failed"):
        save_checkpoint(tmp_path, {"w": torch.ones(2)}, None, {"step": 2})
    monkeypatch.undo()
    assert load_checkpoint(tmp_path).extra == {"step": 1}
    assert sorted(os.listdir(tmp_path)) == ["checkpoint", "checkpoint.000001"]


def test_hard_crash_between_the_renames_of_the_old_layout(tmp_path):
    """A run directory of the scheme before versions, whose writer was killed after moving the old checkpoint
    aside, before moving the new one in: it loads, and the next save adopts it as version 0."""
    save_checkpoint(tmp_path, {"w": torch.zeros(2)}, None, {"step": 1})
    shutil.rmtree(tmp_path / "checkpoint.000001", ignore_errors=True)
    os.unlink(tmp_path / "checkpoint")
    save_checkpoint(tmp_path / "scratch", {"w": torch.zeros(2)}, None, {"step": 1})
    shutil.move(tmp_path / "scratch" / "checkpoint.000001", tmp_path / ".checkpoint.old")
    shutil.rmtree(tmp_path / "scratch")
    (tmp_path / ".checkpoint.tmp-dead").mkdir()  # the half-finished new one
    (tmp_path / ".checkpoint.tmp-dead" / "model.safetensors").write_bytes(b"partial")
    assert checkpoint_exists(tmp_path)
    assert load_checkpoint(tmp_path).extra == {"step": 1}
    save_checkpoint(tmp_path, {"w": torch.ones(2)}, None, {"step": 2})
    assert load_checkpoint(tmp_path).extra == {"step": 2}
    assert sorted(os.listdir(tmp_path)) == ["checkpoint", "checkpoint.000000", "checkpoint.000001"]


def test_old_layout_folder_loads_and_is_adopted(tmp_path):
    save_checkpoint(tmp_path / "scratch", {"w": torch.zeros(2)}, None, {"step": 1})
    shutil.move(tmp_path / "scratch" / "checkpoint.000001", tmp_path / "checkpoint")  # a plain folder
    assert load_checkpoint(tmp_path).extra == {"step": 1}
    for step in (2, 3, 4):
        save_checkpoint(tmp_path, {"w": torch.ones(2)}, None, {"step": step})
    assert load_checkpoint(tmp_path).extra == {"step": 4}
    assert sorted(os.listdir(tmp_path)) == ["checkpoint", "checkpoint.000002", "checkpoint.000003", "scratch"]


def test_bad_inputs_change_nothing(tmp_path):
    save_checkpoint(tmp_path, {"w": torch.zeros(2)}, None, {"step": 1})
    with pytest.raises(TypeError, match=r"cannot write state.json: values of type object"):
        save_checkpoint(tmp_path, {"w": torch.zeros(2)}, None, {"step": object()})
    with pytest.raises(TypeError, match=r"cannot write model.safetensors: 'w' is a int, not a tensor"):
        save_checkpoint(tmp_path, {"w": 3})
    with pytest.raises(TypeError, match=r"cannot write optimizer.json: cannot store state.0.bad"):
        save_checkpoint(tmp_path, {"w": torch.zeros(2)}, {"state": {0: {"bad": object()}}, "param_groups": []})
    assert load_checkpoint(tmp_path).extra == {"step": 1}
    assert sorted(os.listdir(tmp_path)) == ["checkpoint", "checkpoint.000001"]


def test_loading_never_unpickles(saved, monkeypatch):
    import pickle

    def forbidden(*args, **kwargs):
        raise AssertionError("unpickling during load")

    monkeypatch.setattr(pickle, "load", forbidden)
    monkeypatch.setattr(pickle, "loads", forbidden)
    monkeypatch.setattr(torch, "load", forbidden)
    assert load_checkpoint(saved.parent).extra == {"step": 1}


def test_weights_and_optimizer_state_that_do_not_fit_are_one_line_errors():
    from lstmkit.train import load_model_weights, load_optimizer_state

    model = torch.nn.Linear(3, 2)
    with pytest.raises(CheckpointError, match=r"^run/best: model weights do not fit the model \(missing \['bias'\]\)$"):
        load_model_weights(model, {"weight": torch.zeros(2, 3)}, "run/best")
    with pytest.raises(CheckpointError, match=r"weight 'weight' has shape \(3, 3\), the model expects \(2, 3\)"):
        load_model_weights(model, {"weight": torch.zeros(3, 3), "bias": torch.zeros(2)}, "run/best")
    load_model_weights(model, {"weight": torch.ones(2, 3), "bias": torch.zeros(2)}, "run/best")
    assert torch.equal(model.weight, torch.ones(2, 3))

    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    with pytest.raises(CheckpointError, match="holds no optimizer state"):
        load_optimizer_state(optimizer, None)
    other = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1).state_dict()
    with pytest.raises(CheckpointError, match="optimizer state does not fit this run"):
        load_optimizer_state(optimizer, {"optimizer": other})
    saved = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9).state_dict()
    load_optimizer_state(optimizer, {"optimizer": saved})
    assert optimizer.param_groups[0]["lr"] == 0.5
