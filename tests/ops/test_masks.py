"""lstmkit.ops.masks: Bernoulli masks from 16-bit slices of 64-bit random words; one range check, one meaning of p."""

from __future__ import annotations

import importlib

import pytest
import torch

from lstmkit.ops import masks
from lstmkit.ops.masks import (
    bernoulli_mask,
    check_probability,
    drop_weight,
    dropout_mask,
    dropout_scale,
    realised_probability,
    survivor_scale,
)


@pytest.mark.parametrize("p", [0.05, 0.3, 0.5, 0.85])
def test_each_of_the_four_lanes_of_a_word_is_bernoulli(p):
    mask = bernoulli_mask((1_000_000,), p, generator=torch.Generator().manual_seed(int(p * 100)))
    lanes = mask.view(-1, 4).double()  # entry k of every word: the k-th 16-bit slice
    n = lanes.shape[0]
    tolerance = 5 * (p * (1 - p) / n) ** 0.5
    for k in range(4):
        assert abs(lanes[:, k].mean().item() - p) < tolerance, f"lane {k}"
    # lanes are independent: two lanes of the same word are both True with probability p^2
    assert abs((lanes[:, 0] * lanes[:, 3]).mean().item() - p * p) < 5 * (p * p * (1 - p * p) / n) ** 0.5


def test_probability_is_p_rounded_to_two_to_the_minus_16():
    assert realised_probability(0.5) == 0.5 and realised_probability(0.25) == 0.25
    assert realised_probability(0.3) == round(0.3 * 65536) / 65536
    assert abs(realised_probability(0.3) - 0.3) <= 2**-17
    for p in (0.0, 0.3, 0.7, 0.15):
        assert (1 - realised_probability(p)) * dropout_scale(p) == pytest.approx(1.0, abs=1e-15)
    assert dropout_scale(1.0) == 0.0


def test_survivor_scale_is_deprecated_but_still_answers():
    with pytest.warns(DeprecationWarning, match=r"use dropout_scale\(p\) with the drop probability"):
        assert survivor_scale(0.7) == dropout_scale(0.3)


@pytest.mark.parametrize("p", [0.0, 0.2, 0.7, 1.0])
def test_dropout_mask_zeros_with_probability_p_and_scales_survivors(p):
    mask = dropout_mask((400, 250), p, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    assert mask.dtype == torch.float64 and mask.shape == (400, 250)
    n = mask.numel()
    dropped = (mask == 0).double().mean().item()
    assert abs(dropped - p) <= 5 * (p * (1 - p) / n) ** 0.5
    survivors = mask[mask != 0]
    assert torch.all(survivors == 1 / (1 - realised_probability(p))) if p < 1 else survivors.numel() == 0
    if 0 < p < 1:  # 1/(1-p), not 1/p: the two differ at every p but 0.5
        assert survivors[0].item() == pytest.approx(1 / (1 - p), rel=1e-4)


def test_one_range_check_with_one_message():
    assert check_probability(0) == 0.0 and check_probability(1) == 1.0 and check_probability(0.25, "x") == 0.25
    for bad in (-0.1, 1.5, True, "0.3", None, float("nan")):
        with pytest.raises(ValueError, match=r"^p must be a probability in \[0, 1\], got "):
            check_probability(bad)
    with pytest.raises(ValueError, match=r"^zoneout must be a probability in \[0, 1\), got 1$"):
        check_probability(1, "zoneout", allow_one=False)
    for call in (lambda: bernoulli_mask((2,), 1.5), lambda: dropout_mask((2,), -0.5), lambda: drop_weight(torch.ones(2), 2)):
        with pytest.raises(ValueError, match=r"^p must be a probability in \[0, 1\], got "):
            call()


def test_every_dropout_like_option_draws_its_mask_here(monkeypatch):
    """Recurrent, weight, locked and embedding dropout all call dropout_mask; zoneout calls bernoulli_mask."""
    import lstmkit
    from lstmkit.ops import functional
    from lstmkit.regularize import embedding_dropout, locked_dropout

    calls = []
    real_dropout, real_bernoulli = masks.dropout_mask, masks.bernoulli_mask
    spy_dropout = lambda shape, p, **k: calls.append(("dropout", p)) or real_dropout(shape, p, **k)  # noqa: E731
    spy_bernoulli = lambda shape, p, **k: calls.append(("zoneout", p)) or real_bernoulli(shape, p, **k)  # noqa: E731
    nn_lstm = importlib.import_module("lstmkit.nn.lstm")
    emb = importlib.import_module("lstmkit.regularize.embedding_dropout")  # the package attribute is the function
    locked = importlib.import_module("lstmkit.regularize.locked_dropout")

    for module in (masks, functional, locked, emb):
        if hasattr(module, "dropout_mask"):
            monkeypatch.setattr(module, "dropout_mask", spy_dropout)
    for module in (functional, nn_lstm):
        monkeypatch.setattr(module, "bernoulli_mask", spy_bernoulli)
    lstmkit.LSTM(2, 3, weight_dropout=0.2, recurrent_dropout=0.3, zoneout=(0.4, 0.1))(torch.randn(2, 1, 2))
    lstmkit.LSTMCell(2, 3, zoneout=0.35)(torch.randn(1, 2))
    locked_dropout(torch.ones(2, 1, 3), 0.6)
    embedding_dropout(torch.ones(5, 2), torch.tensor([1, 2]), 0.7)
    assert sorted(calls) == sorted([("dropout", 0.2), ("dropout", 0.3), ("zoneout", 0.4), ("zoneout", 0.1),
                                    ("zoneout", 0.35), ("zoneout", 0.35), ("dropout", 0.6), ("dropout", 0.7)])


def test_extremes_shape_and_generator():
    assert bernoulli_mask((3, 5), 1.0).all() and not bernoulli_mask((3, 5), 0.0).any()
    odd = bernoulli_mask((7, 3), 0.5)  # 21 entries: not a multiple of four
    assert odd.shape == (7, 3) and odd.dtype == torch.bool
    a = bernoulli_mask((64,), 0.5, generator=torch.Generator().manual_seed(1))
    b = bernoulli_mask((64,), 0.5, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b)
    assert bernoulli_mask((3, 5), 0.5, dtype=torch.float32).dtype == torch.float32


def test_survivors_are_scaled_by_the_realised_keep_probability():
    weight = torch.ones(300, 300, dtype=torch.float64)
    dropped = drop_weight(weight, 0.3, generator=torch.Generator().manual_seed(0))
    kept = dropped[dropped != 0]
    assert torch.all(kept == dropout_scale(0.3))
    assert torch.all(drop_weight(weight, 1.0) == 0), "p = 1 drops everything (no division by zero)"


def test_nn_and_ops_import_nothing_above_them():
    """DESIGN.md's layers: nn imports ops only, ops imports nothing of lstmkit's; weight drop lives in ops."""
    import ast
    from pathlib import Path

    import lstmkit

    root = Path(lstmkit.__file__).parent
    for layer, allowed in (("ops", set()), ("nn", {"ops"})):
        for path in sorted((root / layer).glob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.ImportFrom) and node.level >= 2:
                    target = (node.module or "").split(".")[0]
                    assert target in allowed, f"{path.name} imports lstmkit.{node.module}"
                if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("lstmkit"):
                    target = node.module.split(".")[1] if "." in node.module else ""
                    assert target in allowed, f"{path.name} imports {node.module}"


def _needs_extension():
    from lstmkit.ops import cpp_extension_error

    if cpp_extension_error() is not None:
        pytest.skip(f"the C++ extension is not built: {cpp_extension_error()}")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
@pytest.mark.parametrize("use_default", [False, True])
def test_one_pass_draw_equals_the_tensor_draw(monkeypatch, dtype, use_default):
    """With the C++ extension a float mask is drawn in one pass (lstmkit.ops._C.fill_lanes, its own bulk copy of
    torch's mt19937): the same values as the three-tensor draw, and the generator left in the same state, over
    draws that start and end inside and across the engine's 624-output blocks and sizes that are not a multiple
    of four lanes."""
    from lstmkit.ops import use_fused_backend

    _needs_extension()
    sizes = [(1,), (7,), (1250,), (3, 5), (2051,), (35, 4, 13), (2,)]
    probabilities = [0.25, 0.3, 0.05, 0.9, 0.5, 0.15, 0.7]

    def draws(backend):
        generator = None if use_default else torch.Generator().manual_seed(11)
        if use_default:
            torch.manual_seed(11)
        out = []
        with use_fused_backend(backend):
            for shape, p in zip(sizes, probabilities):
                out.append(bernoulli_mask(shape, p, dtype=dtype, generator=generator))
                out.append(dropout_mask(shape, p, dtype=dtype, generator=generator))
        state = (generator if generator is not None else torch.default_generator).get_state()
        return out, state

    python, python_state = draws("python")
    # the one-pass path must serve every draw above: the tensor draw is refused while it runs
    monkeypatch.setattr(masks, "_uniform_int16", lambda *a: pytest.fail("the tensor draw ran"))
    fast, fast_state = draws("cpp")
    for got, want in zip(fast, python):
        assert got.dtype == dtype and got.shape == want.shape
        assert torch.equal(got, want)
    assert torch.equal(fast_state, python_state)
    assert any(bool((m == 0).any()) and bool((m != 0).any()) for m in fast)  # masks with both values


@pytest.mark.parametrize("threads", [1, 2])
def test_large_one_pass_draw_pipelined_over_two_threads_equals_the_tensor_draw(monkeypatch, threads):
    """A mask of 16 chunks of 2048 lanes or more is drawn by two threads (one runs the engine into a ring of 8
    chunks, the other stores the lanes): the same values and generator state as the tensor draw, for sizes at the
    threshold, not a multiple of the chunk or of four lanes, and long enough to wrap the ring several times;
    with one thread, the serial loop (lstmkit.ops._C.last_fill_threads says which ran)."""
    _needs_extension()  # before importing _C, which does not exist without the build
    from lstmkit.ops import _C, use_fused_backend

    sizes = [(16 * 2048,), (35, 64, 37), (3, 2049 * 11 + 3)]

    def draws(backend):
        generator = torch.Generator().manual_seed(5)
        with use_fused_backend(backend):
            out = [m for shape in sizes for m in (bernoulli_mask(shape, 0.25, dtype=torch.float32, generator=generator),
                                                  dropout_mask(shape, 0.3, dtype=torch.float32, generator=generator))]
        return out, generator.get_state()

    python, python_state = draws("python")
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(threads)
        fast, fast_state = draws("cpp")
        assert _C.last_fill_threads() == threads
    finally:
        torch.set_num_threads(before)
    for got, want in zip(fast, python):
        assert torch.equal(got, want)
    assert torch.equal(fast_state, python_state)


def test_one_pass_draw_is_not_taken_for_bool_masks_or_under_the_python_kernels(monkeypatch):
    """Boolean masks, and everything while the Python kernels are forced, keep the tensor draw (the spec)."""
    from lstmkit.ops import use_fused_backend

    _needs_extension()
    calls = []
    original = masks._uniform_int16
    monkeypatch.setattr(masks, "_uniform_int16", lambda *a: calls.append(a) or original(*a))
    bernoulli_mask((5,), 0.3)
    with use_fused_backend("python"):
        dropout_mask((5,), 0.3)
    assert len(calls) == 2
