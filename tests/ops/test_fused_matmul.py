"""The fused layer's matmul backends (oneDNN's prepacked per-step GEMM or public torch.mm) and its argument naming."""

from __future__ import annotations

import contextvars
import inspect

import pytest
import torch
from torch.profiler import profile

import lstmkit
from lstmkit.ops import fused
from lstmkit.ops import layer_op, use_fused_backend
from lstmkit.ops.fused import matmul_backend, set_matmul_backend, use_matmul
from helpers import compare_modules, make_input

ONEDNN = fused._onednn_available()


@pytest.fixture(autouse=True)
def python_kernel():
    """The matmul backends are the Python kernel's (the C++ kernel calls MKL through ATen)."""
    with use_fused_backend("python"):
        yield


def _onednn_calls(fn) -> int:
    """How many oneDNN linear calls ``fn()`` makes (the per-step GEMM with a prepacked weight)."""
    with profile() as prof:
        fn()
    return sum(1 for e in prof.events() if e.name == "mkldnn::_linear_pointwise")


def test_backward_names_every_argument_of_forward():
    """The autograd formula reads ctx.needs_input_grad by these names, so they must be the operator's arguments,
    in order; the gradients the backward operator returns are named after those inputs."""
    schema = torch.ops.lstmkit.lstm_layer.default._schema
    assert list(layer_op._INPUTS) == [a.name for a in schema.arguments]
    assert list(inspect.signature(layer_op.lstm_layer_op._init_fn).parameters) == list(layer_op._INPUTS)
    assert set(fused.GRADIENTS) - {"bias"} <= set(layer_op._INPUTS)


def test_use_matmul_is_scoped_and_checked():
    assert matmul_backend() == "auto"
    with use_matmul("public"):
        assert matmul_backend() == "public"
        with use_matmul("onednn"):
            assert matmul_backend() == "onednn"
        assert matmul_backend() == "public"
    assert matmul_backend() == "auto"
    with pytest.raises(ValueError, match=r"matmul backend must be one of \('auto', 'onednn', 'public'\), got 'mkl'"):
        with use_matmul("mkl"):
            pass

    def deprecated():
        with pytest.warns(DeprecationWarning, match="use_matmul"):
            set_matmul_backend("public")
        return matmul_backend()

    assert contextvars.copy_context().run(deprecated) == "public"  # in a copied context: nothing leaks out
    assert matmul_backend() == "auto"


@pytest.mark.skipif(not ONEDNN, reason="this torch has no oneDNN linear op")
def test_each_call_keeps_its_backend_for_its_backward():
    """Small H would take torch.mm under "auto"; a call made under "onednn" runs its backward on oneDNN too, even
    when the backward runs outside the with block, and a "public" call never touches oneDNN."""
    lstm = lstmkit.LSTM(4, 8, impl="fused")
    x = torch.randn(3, 2, 4, requires_grad=True)
    with use_matmul("onednn"):
        out, _ = lstm(x)
    assert _onednn_calls(lambda: out.sum().backward()) > 0
    with use_matmul("public"):
        assert _onednn_calls(lambda: lstm(x)[0].sum()) == 0
        out, _ = lstm(x)
    with use_matmul("onednn"):
        assert _onednn_calls(lambda: out.sum().backward()) == 0


CASES = {  # the per-step GEMM on oneDNN (H >= 256, float32) with what it had not been tested with
    "projection": dict(kind="batched", options=dict(proj_size=48)),
    "packed": dict(kind="unsorted", options=dict()),
    "reverse": dict(kind="batched", options=dict(bidirectional=True)),
    "packed, reverse, projection": dict(kind="unsorted", options=dict(bidirectional=True, proj_size=32, num_layers=2)),
}


@pytest.mark.skipif(not ONEDNN, reason="this torch has no oneDNN linear op")
@pytest.mark.parametrize("case", CASES)
def test_onednn_per_step_gemm_matches_torch(case):
    """At H = 256 under the default backend the fused path takes oneDNN: outputs, states and every gradient
    still equal torch.nn.LSTM's to float32 precision."""
    kind, options = CASES[case]["kind"], CASES[case]["options"]
    torch.manual_seed(0)
    theirs = torch.nn.LSTM(16, 256, **options)
    ours = lstmkit.LSTM(16, 256, impl="fused", **options)
    ours.load_state_dict(theirs.state_dict())
    x, lengths = make_input(kind, T=5, B=3, I=16, batch_first=False, seed=1)
    assert matmul_backend() == "auto"
    calls = _onednn_calls(lambda: compare_modules(theirs, ours, x, lengths, packed_sorted=False, rtol=5e-5))
    assert calls > 0, "the fused path must have run its per-step GEMM on oneDNN"
