"""Shared test helpers: the one place that compares lstmkit with torch (DESIGN.md habit 1)."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence

REPO = Path(__file__).resolve().parents[1]


def _fused_kernels() -> list[str]:
    from lstmkit.ops import cpp_extension_error

    return ["cpp", "python"] if cpp_extension_error() is None else ["python"]


FUSED_KERNELS = _fused_kernels()  # the kernels of lstmkit::lstm_layer this checkout can run


def data_root() -> Path:
    """The real datasets: $LSTMKIT_DATA, else ../shared/data beside the repository."""
    configured = os.environ.get("LSTMKIT_DATA")  # unset or empty: the default
    return Path(configured) if configured else REPO.parent / "shared" / "data"




def assert_close(actual, expected, rtol: float = 1e-5, name: str = "") -> None:
    """Elementwise |a - e| <= rtol * (|e| + scale), scale = the tensor's mean magnitude.

    Pure relative error is meaningless for elements that cancel to ~0 (gradients especially), so the absolute
    floor is tied to the tensor's own magnitude: still a 1e-5 relative bound, of the tensor as a whole."""
    assert actual.shape == expected.shape, f"{name}: shape {tuple(actual.shape)} != {tuple(expected.shape)}"
    actual, expected = actual.detach().double(), expected.detach().double()
    scale = expected.abs().mean().item() if expected.numel() else 0.0
    bound = rtol * (expected.abs() + scale + 1e-30)
    excess = (actual - expected).abs() - bound
    if excess.numel() and excess.max().item() > 0:
        worst = ((actual - expected).abs() / (expected.abs() + scale)).max().item()
        raise AssertionError(f"{name}: max error {worst:.3e} relative (allowed {rtol:.0e})")


def assert_same_as_torch(theirs, ours, rtol: float = 1e-5):
    """Call ``theirs()`` (torch) and ``ours()`` (lstmkit) on the same inputs: either both raise, with the same
    exception type and the same message, or both return the same structure (tuples, lists, PackedSequences,
    tensors of the same shape and dtype with values within ``rtol``, other values equal). Returns ours."""
    try:
        expected = theirs()
    except Exception as error:  # torch refused: so must we, in its words
        try:
            ours()
        except Exception as mine:
            assert (type(mine), str(mine)) == (type(error), str(error)), f"raised {mine!r}, torch raised {error!r}"
            return None
        raise AssertionError(f"torch raised {error!r}, lstmkit returned") from None
    actual = ours()
    _assert_same_structure(actual, expected, rtol, "result")
    return actual


def _assert_same_structure(actual, expected, rtol: float, name: str) -> None:
    if isinstance(expected, torch.Tensor):
        assert isinstance(actual, torch.Tensor), f"{name}: {type(actual).__name__}, torch gave a tensor"
        assert actual.dtype == expected.dtype, f"{name}: dtype {actual.dtype}, torch {expected.dtype}"
        assert_close(actual, expected, rtol=rtol, name=name)
    elif isinstance(expected, (tuple, list)):  # PackedSequence is a tuple too
        assert type(actual) is type(expected) and len(actual) == len(expected), f"{name}: {actual!r} vs {expected!r}"
        for k, (a, e) in enumerate(zip(actual, expected)):
            _assert_same_structure(a, e, rtol, f"{name}[{k}]")
    else:
        assert actual == expected, f"{name}: {actual!r}, torch {expected!r}"


def make_input(kind: str, T: int, B: int, I: int, batch_first: bool, dtype=torch.float32, seed: int = 0):
    """kind: 'batched', 'unbatched', 'packed' (sorted lengths) or 'unsorted' (enforce_sorted=False)."""
    g = torch.Generator().manual_seed(seed)
    if kind == "unbatched":
        return torch.randn(T, I, generator=g, dtype=dtype), None
    x = torch.randn((B, T, I) if batch_first else (T, B, I), generator=g, dtype=dtype)
    if kind == "batched":
        return x, None
    lengths = torch.randint(1, T + 1, (B,), generator=g)
    lengths[0] = T
    if kind == "packed":
        lengths = lengths.sort(descending=True).values
    return x, lengths


def run(module, x, lengths, hx, batch_first, packed_sorted):
    """Forward + backward of a loss over all outputs; returns the tensors to compare, by name."""
    x = x.clone().requires_grad_()
    state = None
    if hx is not None:
        state = tuple(t.clone().requires_grad_() for t in hx)
    inp = x
    if lengths is not None:
        inp = pack_padded_sequence(x, lengths, batch_first=batch_first, enforce_sorted=packed_sorted)
    out, (h, c) = module(inp, state)
    data = out.data if isinstance(out, PackedSequence) else out
    weights = torch.linspace(-1, 1, data.numel(), dtype=data.dtype, device=data.device).view_as(data)
    loss = (data * weights).sum() + (h * h).sum() + c.sin().sum()
    loss.backward()
    result = {"output": data, "h_n": h, "c_n": c, "grad input": x.grad}
    if state is not None:
        result["grad h0"], result["grad c0"] = state[0].grad, state[1].grad
    for name, p in module.named_parameters():
        result[f"grad {name}"] = p.grad
    return result


def compare_modules(reference, candidate, x, lengths=None, hx=None, batch_first=False, packed_sorted=True, rtol=1e-5):
    expected = run(reference, x, lengths, hx, batch_first, packed_sorted)
    actual = run(candidate, x, lengths, hx, batch_first, packed_sorted)
    assert expected.keys() == actual.keys()
    for key in expected:
        assert_close(actual[key], expected[key], rtol=rtol, name=key)
