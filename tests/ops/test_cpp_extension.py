"""The C++ kernels (csrc/, lstmkit.ops._C): built from this checkout's sources, in use, and equal to the Python kernels
(the specification) for every option, in float64 (gradcheck), float32 and bfloat16."""

from __future__ import annotations

import importlib.util
import os
import shutil

import pytest
import torch

from helpers import REPO
from lstmkit.ops import cpp_extension_error, fused_backend, use_fused_backend
from test_layer_op import OPTIONS, make_args

BUILT = cpp_extension_error() is None
CI_WITH_COMPILER = os.environ.get("CI", "").lower() in ("1", "true", "yes") and shutil.which("g++") is not None
if not BUILT and not CI_WITH_COMPILER:
    pytest.skip(f"the C++ extension is not built ({cpp_extension_error()}); the Python path is used",
                allow_module_level=True)


def _build_module():
    spec = importlib.util.spec_from_file_location("lstmkit_build", REPO / "csrc" / "build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_extension_is_built_from_these_sources_and_in_use():
    assert BUILT, f"CI with a compiler must build the extension: {cpp_extension_error()}"
    from lstmkit.ops import _C

    assert _C.source_hash == _build_module().source_hash(), "lstmkit.ops._C is stale: run `make setup` to rebuild it"
    if os.environ.get("LSTMKIT_FUSED") != "python":  # the user's way to force the Python kernel
        assert fused_backend() == "cpp"
    assert os.path.commonpath([_C.__file__, str(REPO)]) == str(REPO)


def test_a_stale_extension_is_named(monkeypatch):
    """The benchmarks warn when the compiled kernel is not built from csrc/ as it is now (they once timed an old
    one after a merge): cpp_extension_stale() is None for this build and names the rebuild when the hash differs."""
    from lstmkit.ops import _C, cpp_extension_stale

    assert cpp_extension_stale() is None
    monkeypatch.setattr(_C, "source_hash", "0" * 16)
    reason = cpp_extension_stale()
    assert reason is not None and "csrc" in reason and "make setup" in reason


def _op(args, backend):
    with use_fused_backend(backend):
        return torch.ops.lstmkit.lstm_layer(*args.values())


def _grads(args, backend, weights):
    inputs = [v for v in args.values() if isinstance(v, torch.Tensor) and v.requires_grad]
    out = _op(args, backend)[:3]
    with use_fused_backend(backend):
        return out, torch.autograd.grad(out, inputs, weights, allow_unused=True)


@pytest.mark.parametrize("option", OPTIONS)
def test_cpp_equals_python_float64_with_gradcheck(option):
    args = make_args(option)
    inputs = {k: v for k, v in args.items() if isinstance(v, torch.Tensor) and v.requires_grad}

    def fn(*tensors):
        return torch.ops.lstmkit.lstm_layer(*{**args, **dict(zip(inputs, tensors))}.values())[:3]

    with use_fused_backend("cpp"):
        assert torch.autograd.gradcheck(fn, tuple(inputs.values()), fast_mode=True)
    weights = [torch.randn_like(t) for t in _op(args, "python")[:3]]
    (out_c, g_c), (out_p, g_p) = _grads(args, "cpp", weights), _grads(args, "python", weights)
    for got, want in zip((*out_c, *g_c), (*out_p, *g_p)):
        torch.testing.assert_close(got, want)
    ws_c, ws_p = _op(args, "cpp")[3:], _op(args, "python")[3:]
    for got, want in zip(ws_c, ws_p):  # one workspace layout: forward and backward kernels can be mixed
        torch.testing.assert_close(got, want)


@pytest.mark.parametrize("option", ["plain", "packed_reverse", "all"])
def test_cpp_float32_equals_python(option):
    args = make_args(option, dtype=torch.float32)
    weights = [torch.randn_like(t) for t in _op(args, "python")[:3]]
    (out_c, g_c), (out_p, g_p) = _grads(args, "cpp", weights), _grads(args, "python", weights)
    for got, want in zip((*out_c, *g_c), (*out_p, *g_p)):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("way", ["native", "float32"])
@pytest.mark.parametrize("option", ["plain", "packed_reverse", "proj", "all"])
def test_bfloat16_within_tolerance_of_float32(monkeypatch, option, way):
    """bf16 GEMMs with the cell state carried in float32, both ways (LSTMKIT_CPP_BF16: bf16 GEMMs, or the float32
    kernel with bf16-rounded operands): outputs and gradients within 5e-2 of float32's, relative to each tensor's
    largest entry (bf16 keeps 8 significant bits; native measured over 20 seeds: up to 2.7e-2 plain or projected,
    2.9e-2 with every option but layer norm). Layer norm is left out of "all" here: over H = 5 units bf16 rounding
    moves a row's mean and variance enough that both kernels deviate by up to 100 %; it is checked under autocast
    at H = 8 in test_layer_op.py and against a rounding reference in test_cpp_bfloat16.py."""
    monkeypatch.setenv("LSTMKIT_CPP_BF16", way)
    ref = make_args(option, dtype=torch.float32)
    if option == "all":
        ref.update(ln_ih_w=None, ln_ih_b=None, ln_hh_w=None, ln_hh_b=None, ln_c_w=None, ln_c_b=None)
        ref["cell_clip"] = 10.0  # the clip still runs, but no cell sits at its edge, where bf16 rounding could
        # move a cell across it and switch its gradient off: not a precision question
    low = {k: (v.detach().bfloat16().requires_grad_(v.requires_grad) if isinstance(v, torch.Tensor)
               and v.is_floating_point() else v) for k, v in ref.items()}
    g = torch.Generator().manual_seed(7)
    weights = [torch.randn(t.shape, generator=g) for t in _op(ref, "python")[:3]]
    out_r, g_r = _grads(ref, "cpp", weights)
    out_l, g_l = _grads(low, "cpp", [w.bfloat16() for w in weights])
    for got, want in zip((*out_l, *g_l), (*out_r, *g_r)):
        assert got.dtype == torch.bfloat16
        scale = want.abs().max().item() + 1e-6
        assert (got.float() - want).abs().max().item() <= 5e-2 * scale


def _wide_args(option: str, hidden: int, proj: int | None = None, dtype=torch.float64):
    """make_args's option at a chosen hidden size (and projection), layer norm left out: the C++ kernel's
    partitioned loop (hidden units split over threads in 16-unit blocks) serves every option but layer norm."""
    import test_layer_op as shapes

    saved = shapes.H, shapes.P
    shapes.H, shapes.P = hidden, proj if proj is not None else shapes.P
    try:
        args = make_args(option, dtype=dtype)
    finally:
        shapes.H, shapes.P = saved
    args.update(ln_ih_w=None, ln_ih_b=None, ln_hh_w=None, ln_hh_b=None, ln_c_w=None, ln_c_b=None)
    return args


@pytest.mark.parametrize("option,hidden,proj", [
    ("plain", 40, None),            # 3 blocks over 2 threads: 16 and 24 units (H not a multiple of 16 * threads)
    ("all", 37, 21),                # every option but layer norm; odd H, projection split 16 + 5
    ("packed_reverse", 8, None),    # one block: the loop takes no more threads than blocks (1 here)
    ("zoneout_masks", 33, None),
])
def test_cpp_partitioned_loop_same_at_one_and_two_threads(option, hidden, proj):
    """The partitioned time loop gives the same outputs and gradients at 1 and 2 threads (each thread runs its own
    BLAS calls on its column blocks, so sums can differ only in rounding), and equals the Python kernel."""
    args = _wide_args(option, hidden, proj)
    weights = [torch.randn_like(t) for t in _op(args, "python")[:3]]
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = _grads(args, "cpp", weights)
        torch.set_num_threads(2)
        two = _grads(args, "cpp", weights)
    finally:
        torch.set_num_threads(before)
    python = _grads(args, "python", weights)
    for got, alone, want in zip((*two[0], *two[1]), (*one[0], *one[1]), (*python[0], *python[1])):
        torch.testing.assert_close(got, alone, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(got, want)


@pytest.mark.parametrize("option", ["plain", "reverse", "no_bias", "peephole", "zoneout_masks", "zoneout_eval",
                                    "cell_clip", "proj", "packed_reverse", "all", "layer_norm", "layer_norm_all"])
@pytest.mark.parametrize("hidden", [5, 40])
@pytest.mark.parametrize("steps", [3, 4])
def test_cpp_without_workspace_equals_with_it(option, hidden, steps):
    """A call without a workspace (inference) keeps only two steps' cells, used in turn, and adds the bias in the
    row sweep as a training call does: its output, h_n and c_n equal the training call's, for an odd and an even
    number of steps in both directions (the cell rows alternate), at H = 5 and H = 40 (rows and units loops).
    With layer norm (all three; "layer_norm_all" adds every other option) the rows loop normalises x W_ih^T in
    place without a workspace, into a separate gates buffer with one."""
    import test_layer_op as shapes

    saved = shapes.T
    shapes.T = steps
    try:
        if option.startswith("layer_norm"):
            args = _layer_norm_args("all" if option == "layer_norm_all" else "plain", hidden, torch.float64)
        else:
            args = make_args(option) if hidden == 5 else _wide_args(option, hidden)
    finally:
        shapes.T = saved
    with torch.no_grad():
        kept = _op(args, "cpp")
        bare = _op({**args, "need_workspace": False}, "cpp")
        python = _op({**args, "need_workspace": False}, "python")
    assert all(t.numel() == 0 for t in bare[3:])
    for got, want, spec in zip(bare[:3], kept[:3], python[:3]):
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(got, spec)


@pytest.mark.parametrize("hidden", [16, 40])
def test_cpp_float32_saturated_gates_finite_and_exact(hidden):
    """The float32 sweep computes two activations per division with their exp arguments clamped to +-40: with
    pre-activations far beyond that (|z| up to ~300) and near 0, outputs and gradients stay finite and equal the
    float64 kernel's within float32 rounding."""
    g = torch.Generator().manual_seed(3)
    T, B = 3, 4
    scales = torch.tensor([0.01, 1.0, 30.0, 100.0]).repeat_interleave(hidden).repeat(4)[: 4 * hidden]
    w_ih = torch.randn(4 * hidden, hidden, generator=g, dtype=torch.float64) * scales[:, None] / hidden ** 0.5
    args64 = dict(make_args("plain"))
    args64.update(x=torch.randn(T, B, hidden, generator=g, dtype=torch.float64), h0=torch.zeros(B, hidden),
                  c0=torch.randn(B, hidden, generator=g, dtype=torch.float64), w_ih=w_ih,
                  w_hh=torch.randn(4 * hidden, hidden, generator=g, dtype=torch.float64) * 0.1,
                  b_ih=torch.zeros(4 * hidden, dtype=torch.float64), b_hh=torch.zeros(4 * hidden, dtype=torch.float64))
    args64["h0"] = args64["h0"].double()
    args64 = {k: (v.detach().requires_grad_(True) if isinstance(v, torch.Tensor) and v.is_floating_point() else v)
              for k, v in args64.items()}
    args32 = {k: (v.detach().float().requires_grad_(True) if isinstance(v, torch.Tensor) and v.is_floating_point()
                  else v) for k, v in args64.items()}
    weights = [torch.randn(t.shape, generator=g, dtype=torch.float64) for t in _op(args64, "python")[:3]]
    out32, g32 = _grads(args32, "cpp", [w.float() for w in weights])
    out64, g64 = _grads(args64, "python", weights)
    for got, want in zip((*out32, *g32), (*out64, *g64)):
        assert torch.isfinite(got).all()
        scale = want.abs().max().item() + 1.0
        torch.testing.assert_close(got.double(), want, rtol=1e-4, atol=1e-4 * scale)


def _layer_norm_args(option: str, hidden: int, dtype):
    """make_args's option at a chosen hidden size with all three layer norms (of W_ih x, of R h and of c) added."""
    args = _wide_args(option, hidden, dtype=dtype)
    g = torch.Generator().manual_seed(11)
    rand = lambda n: (torch.randn(n, generator=g, dtype=dtype) * 0.5).requires_grad_(True)  # noqa: E731
    ones = lambda n: (torch.randn(n, generator=g, dtype=dtype) * 0.5 + 1).requires_grad_(True)  # noqa: E731
    args.update(ln_ih_w=ones(4 * hidden), ln_ih_b=rand(4 * hidden), ln_hh_w=ones(4 * hidden),
                ln_hh_b=rand(4 * hidden), ln_c_w=ones(hidden), ln_c_b=rand(hidden))
    return args


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("option,hidden", [
    ("plain", 5), ("plain", 40), ("proj", 40), ("reverse", 5), ("packed", 40), ("packed_reverse", 5),
    ("all", 5), ("all", 40),  # all: packed, reverse, projection, peepholes, both masks, zoneout, cell clip
    ("no_bias", 40),
    ("plain", 260),  # W_hh over the rows loop's L2 bound (4H x P floats > 1 MiB): rows anyway with layer norm
])
def test_cpp_rows_loop_with_layer_norm_equals_python(monkeypatch, option, hidden, dtype):
    """Layer norm (of W_ih x, R h and c) in the rows loop (each thread owns whole batch rows, so a row's mean and
    variance need no barrier; x W_ih^T is normalised there too, step by step): forward and backward take that loop
    (_C.last_loops) at 2 threads unforced and at 1 thread, and equal the Python kernel in outputs and gradients;
    forcing the units loop falls back to the per-step loop (a units split cannot normalise whole rows) with the
    same results."""
    from lstmkit.ops import _C

    args = _layer_norm_args(option, hidden, dtype)
    gen = torch.Generator().manual_seed(5)
    weights = [torch.randn(t.shape, generator=gen, dtype=t.dtype) for t in _op(args, "python")[:3]]
    want = _grads(args, "python", weights)
    # float32: the two kernels sum layer norm's row gradients in other orders; over 40 draws of `weights` they
    # differed by up to 1.3e-5 of a gradient's largest entry (all, H=40), so the bound scales with that entry
    scaled = lambda w: {} if dtype == torch.float64 else dict(rtol=2e-5, atol=5e-5 * max(1.0, w.abs().max().item()))  # noqa: E731
    for loop, threads, taken in [("rows", 1, "rows"), (None, 2, "rows"), ("units", 2, "steps")]:
        if loop is None:
            monkeypatch.delenv("LSTMKIT_CPP_LOOP", raising=False)
        else:
            monkeypatch.setenv("LSTMKIT_CPP_LOOP", loop)
        torch.set_num_threads(threads)
        got = _grads(args, "cpp", weights)
        assert _C.last_loops() == (taken, taken), (loop, threads)
        for g, w in zip((*got[0], *got[1]), (*want[0], *want[1])):
            torch.testing.assert_close(g, w, **({} if w is None else scaled(w)))


def test_cpp_rows_loop_with_layer_norm_gradcheck(monkeypatch):
    """float64 gradcheck of the rows loop with every option and all three layer norms, at 2 threads."""
    from lstmkit.ops import _C

    args = _layer_norm_args("all", 6, torch.float64)
    inputs = {k: v for k, v in args.items() if isinstance(v, torch.Tensor) and v.requires_grad}

    def fn(*tensors):
        return torch.ops.lstmkit.lstm_layer(*{**args, **dict(zip(inputs, tensors))}.values())[:3]

    monkeypatch.setenv("LSTMKIT_CPP_LOOP", "rows")
    torch.set_num_threads(2)
    with use_fused_backend("cpp"):
        assert torch.autograd.gradcheck(fn, tuple(inputs.values()), fast_mode=True)
        assert _C.last_loops() == ("rows", "rows")


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("option,hidden,proj", [
    ("plain", 40, None), ("reverse", 72, None), ("packed", 40, None), ("all", 37, 21), ("zoneout_masks", 33, None),
])
def test_cpp_units_loop_joined_gate_product_equals_four(monkeypatch, option, hidden, proj, dtype):
    """The units loop's forward gathers a thread's four gate blocks of w_hh into one operand and makes its part of
    h_{t-1} W_hh^T in one product per step, added to the gate columns row by row before the sweep; LSTMKIT_UNITS_GEMM=4
    keeps one product per gate block (the way above kJoinedGateBytes). Both are taken as asked (_C.last_gate_products),
    and both give the Python kernel's outputs and gradients, training and inference (packed input: steps with fewer
    rows than the batch; all: a projection, peepholes, masks, zoneout, cell clip)."""
    from lstmkit.ops import _C

    args = _wide_args(option, hidden, proj, dtype=dtype)
    weights = [torch.randn_like(t) for t in _op(args, "python")[:3]]
    python = _grads(args, "python", weights)
    infer = {k: (v.detach() if isinstance(v, torch.Tensor) else v) for k, v in args.items()}
    infer["need_workspace"] = False
    python_infer = _op(infer, "python")[:3]
    tol = dict(rtol=2e-5, atol=2e-5) if dtype == torch.float32 else {}
    monkeypatch.setenv("LSTMKIT_CPP_LOOP", "units")
    torch.set_num_threads(2)
    for setting, products in [(None, 1), ("4", 4)]:
        if setting is None:
            monkeypatch.delenv("LSTMKIT_UNITS_GEMM", raising=False)
        else:
            monkeypatch.setenv("LSTMKIT_UNITS_GEMM", setting)
        got = _grads(args, "cpp", weights)
        assert _C.last_loops() == ("units", "units") and _C.last_gate_products() == products, setting
        for g, w in zip((*got[0], *got[1]), (*python[0], *python[1])):
            assert (g is None) == (w is None)
            if g is not None:
                torch.testing.assert_close(g, w, **tol)
        got_infer = _op(infer, "cpp")[:3]
        assert _C.last_gate_products() == products
        for g, w in zip(got_infer, python_infer):
            torch.testing.assert_close(g, w, **tol)


def _asking_grads(args: dict, names: set[str]) -> dict:
    """args with only the floating tensors named in ``names`` requiring grad (the others detached)."""
    return {k: (v.detach().requires_grad_(k in names) if isinstance(v, torch.Tensor) and v.is_floating_point() else v)
            for k, v in args.items()}


def _python_gradients(args: dict):
    """Fixed random weights for the loss over (output, h_n, c_n), and the Python kernel's gradients of it."""
    gen = torch.Generator().manual_seed(3)
    weights = [torch.randn(t.shape, generator=gen, dtype=t.dtype) for t in _op(args, "python")[:3]]
    return weights, _grads(args, "python", weights)


@pytest.mark.parametrize("norms,grads", [
    ("ih", "all"), ("hh", "all"), ("c", "all"), ("ih,c", "all"), ("", "all"),
    ("ih,hh,c", "x"),        # d_x_proj made without the layer-norm sums
    ("ih,hh,c", "ln"),       # the sums without d_x_proj (no gradient of x or w_ih)
    ("ih,hh,c", "weights"),  # w_ih, w_hh, the biases and the peepholes, not the layer norms' parameters
])
def test_cpp_rows_loop_folded_sums_with_some_layer_norms_and_gradients(monkeypatch, norms, grads):
    """The rows loop's backward makes the variants' parameter gradients (column sums over all rows) and dz through
    layer norm of x W_ih^T step by step, each thread over its own rows (fold_rows): with any subset of the three
    layer norms, peepholes, zoneout and cell clipping (packed, reversed, projected input: every row's previous cell
    found by the schedule), and any subset of the gradients asked for, at 1 and 2 threads it equals the Python
    kernel in float64."""
    from lstmkit.ops import _C

    args = _layer_norm_args("all", 6, torch.float64)
    for name in ("ih", "hh", "c"):
        if name not in norms.split(","):
            args.update({f"ln_{name}_w": None, f"ln_{name}_b": None})
    wanted = {"all": None, "x": {"x"}, "ln": {"ln_ih_w", "ln_ih_b", "ln_hh_w", "ln_hh_b", "ln_c_w", "ln_c_b"},
              "weights": {"w_ih", "w_hh", "b_ih", "b_hh", "peephole"}}[grads]
    if wanted is not None:
        args = _asking_grads(args, wanted)
    weights, want = _python_gradients(args)
    monkeypatch.setenv("LSTMKIT_CPP_LOOP", "rows")
    for threads in (1, 2):
        torch.set_num_threads(threads)
        got = _grads(args, "cpp", weights)
        assert _C.last_loops() == ("rows", "rows")
        for g, w in zip((*got[0], *got[1]), (*want[0], *want[1])):
            assert (g is None) == (w is None)
            if g is not None:
                torch.testing.assert_close(g, w)


@pytest.mark.parametrize("option", ["reverse", "everything"])
@pytest.mark.parametrize("grads", ["all", "x", "w_ih", "w_hh"])
@pytest.mark.parametrize("chunk_rows", [3, 6, 9])
def test_cpp_rows_loop_weight_gradients_in_chunks_equal_after_the_loop(monkeypatch, option, grads, chunk_rows):
    """With both 4H layer norms on padded input the rows loop's backward keeps d(x W_ih^T) and d(R h) for a chunk of
    steps and adds dW_ih, dW_hh and dx chunk by chunk, each thread its half of the gate rows (LSTMKIT_LN_DW_CHUNK
    forces the chunk at test sizes: T=4, B=3, so chunks of 1, 2 and 3 steps, the last one shorter): it does
    (_C.last_dw_chunk_rows), and at 1 and 2 threads, in both directions, with peepholes, zoneout, the recurrent mask
    (the previous h it multiplies is gathered per chunk) and cell clipping, and with any one gradient asked for, its
    outputs and gradients equal those made after the loop and the Python kernel's, in float64."""
    from lstmkit.ops import _C

    args = _layer_norm_args("reverse" if option == "reverse" else "zoneout_masks", 6, torch.float64)
    if option == "everything":
        g = torch.Generator().manual_seed(5)
        args.update(peephole=(torch.randn(3, 6, generator=g, dtype=torch.float64) * 0.5).requires_grad_(True),
                    recurrent_mask=(torch.rand(3, 6, generator=g) > 0.3).double() / 0.7, cell_clip=0.5)
    if grads != "all":
        args = _asking_grads(args, {grads})
    weights, python = _python_gradients(args)
    monkeypatch.setenv("LSTMKIT_CPP_LOOP", "rows")
    for threads in (1, 2):
        torch.set_num_threads(threads)
        monkeypatch.setenv("LSTMKIT_LN_DW_CHUNK", "0")
        after = _grads(args, "cpp", weights)
        assert _C.last_dw_chunk_rows() == 0 and _C.last_loops() == ("rows", "rows")
        monkeypatch.setenv("LSTMKIT_LN_DW_CHUNK", str(chunk_rows))
        chunked = _grads(args, "cpp", weights)
        assert _C.last_dw_chunk_rows() == chunk_rows and _C.last_loops() == ("rows", "rows")
        for got, alone, want in zip((*chunked[0], *chunked[1]), (*after[0], *after[1]), (*python[0], *python[1])):
            assert (got is None) == (want is None)
            if got is not None:
                torch.testing.assert_close(got, alone, rtol=1e-12, atol=1e-12)
                torch.testing.assert_close(got, want)


@pytest.mark.parametrize("option,hidden,proj", [
    ("plain", 40, None), ("reverse", 40, None), ("no_bias", 33, None), ("proj", 37, 21), ("zoneout_masks", 33, None),
    ("cell_clip", 40, None),
])
@pytest.mark.parametrize("chunk_rows", [3, 6, 9])
def test_cpp_backward_in_chunks_equals_whole(monkeypatch, option, hidden, proj, chunk_rows):
    """A large plain layer's backward keeps dz for a chunk of steps and adds the gradients of x, w_ih, w_hh and the
    bias chunk by chunk inside the units loop (LSTMKIT_DZ_CHUNK forces it at test sizes: T=4, B=3, so chunks of 1,
    2 and 3 steps, the last one shorter): it does keep only that many rows (_C.last_dz_rows), and its outputs and
    gradients equal the whole-dz backward's and the Python kernel's, in both directions, at 2 threads."""
    from lstmkit.ops import _C

    args = _wide_args(option, hidden, proj)
    weights = [torch.randn_like(t) for t in _op(args, "python")[:3]]
    python = _grads(args, "python", weights)
    before = torch.get_num_threads()
    monkeypatch.setenv("LSTMKIT_CPP_LOOP", "units")
    try:
        torch.set_num_threads(2)
        monkeypatch.setenv("LSTMKIT_DZ_CHUNK", "0")
        whole = _grads(args, "cpp", weights)
        assert _C.last_dz_rows() == 12 and _C.last_loops() == ("units", "units")
        monkeypatch.setenv("LSTMKIT_DZ_CHUNK", str(chunk_rows))
        chunked = _grads(args, "cpp", weights)
        assert _C.last_dz_rows() == chunk_rows
    finally:
        torch.set_num_threads(before)
    for got, alone, want in zip((*chunked[0], *chunked[1]), (*whole[0], *whole[1]), (*python[0], *python[1])):
        assert (got is None) == (want is None)
        if got is not None:
            torch.testing.assert_close(got, alone, rtol=1e-12, atol=1e-12)
            torch.testing.assert_close(got, want)


def _inference_args(option: str, hidden: int, dtype):
    """make_args's option without gradients (need_workspace False: an inference call); "layer_norm_rh_c": layer
    norm of R h and of c only; "layer_norm_all": of x W_ih^T too (by chunks in the rows and units loops)."""
    if option == "layer_norm_all":
        args = _layer_norm_args("all", hidden, dtype)
    elif option == "layer_norm_rh_c":
        args = _layer_norm_args("all", hidden, dtype)
        args.update(ln_ih_w=None, ln_ih_b=None)
    else:
        args = _wide_args(option, hidden, dtype=dtype)
    args = {k: (v.detach() if isinstance(v, torch.Tensor) else v) for k, v in args.items()}
    args["need_workspace"] = False
    return args


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("option,hidden", [
    ("plain", 40), ("reverse", 33), ("packed", 40), ("packed_reverse", 5), ("proj", 37), ("no_bias", 8),
    ("zoneout_masks", 33), ("zoneout_eval", 40), ("all", 37), ("layer_norm_rh_c", 40), ("layer_norm_all", 40),
])
def test_cpp_inference_input_gemm_in_chunks_equals_whole(monkeypatch, option, hidden, dtype):
    """An inference call (no workspace) makes x W_ih^T for a chunk of steps at a time inside the time loop
    (LSTMKIT_GATES_CHUNK forces chunks at test sizes: T=4, B=3, chunks of 1 and 2 steps; packed input's steps are
    shorter): it keeps only that many rows of gates (_C.last_gate_rows), in every loop (rows: each thread its own
    rows of each step; units: its own gate columns; steps) at 1 and 2 threads, and its outputs equal the whole-GEMM
    call's and the Python kernel's."""
    from lstmkit.ops import _C

    args = _inference_args(option, hidden, dtype)
    n_rows = args["x"].shape[0] if args["batch_sizes"] is not None else args["x"].shape[0] * args["x"].shape[1]
    want = _op(args, "python")[:3]
    tol = dict(rtol=1e-12, atol=1e-12) if dtype == torch.float64 else dict(rtol=1e-5, atol=1e-6)
    loops = {"layer_norm_all": ["rows", "units"]}.get(option, ["rows", "units", "steps"])
    for loop in loops:
        monkeypatch.setenv("LSTMKIT_CPP_LOOP", loop)
        for threads in (1, 2):
            torch.set_num_threads(threads)
            monkeypatch.setenv("LSTMKIT_GATES_CHUNK", "0")
            whole = _op(args, "cpp")[:3]
            assert _C.last_gate_rows() == n_rows
            for chunk_rows in (3, 6):
                monkeypatch.setenv("LSTMKIT_GATES_CHUNK", str(chunk_rows))
                got = _op(args, "cpp")[:3]
                assert _C.last_gate_rows() == min(n_rows, chunk_rows), (loop, threads, chunk_rows)
                assert _C.last_loops()[0] == loop, (loop, threads)
                for g, w, p in zip(got, whole, want):
                    torch.testing.assert_close(g, w, **tol)
                    torch.testing.assert_close(g, p)


_LN_SUBSETS = {"ih+hh+c": ("ih", "hh", "c"), "hh": ("hh",), "c": ("c",), "ih+hh": ("ih", "hh"), "ih+c": ("ih", "c"),
               "hh+c": ("hh", "c")}


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("subset", list(_LN_SUBSETS))
@pytest.mark.parametrize("option,hidden", [
    ("plain", 40), ("reverse", 40), ("packed", 40), ("packed_reverse", 33), ("proj", 37), ("no_bias", 40),
    ("all", 37),  # all: packed, reverse, projection, peepholes, both masks, zoneout, cell clip
])
def test_cpp_units_loop_layer_norm_inference_equals_python(monkeypatch, option, hidden, subset, dtype):
    """An inference call (no workspace) with layer norm of R h or of c may take the units loop: each thread sums its
    own units' part of a row's moments and every thread merges the parts after a barrier (a second barrier for
    layer norm of c); x W_ih^T is normalised there too, by chunks of steps. Forced at test sizes (2 threads split
    H = 40 into 16 + 24 units: parts of unequal counts; 1 thread: one part, the whole row), with each subset of the
    three layer norms, its outputs equal the Python kernel's and the reference equations' (float64), and the
    Python kernel's within float32's rounding; _C.last_loops() says the units loop ran, with whole and chunked
    x W_ih^T. A training call (workspace) forced to the units loop still falls back to the per-step loop."""
    from lstmkit.ops import _C
    from lstmkit.ops.reference import lstm_layer_ref
    from test_layer_op import _run

    args = _inference_args("layer_norm_all", hidden, torch.float64)
    base = _wide_args(option, hidden, proj=21 if option in ("proj", "all") else None)
    args.update({k: (v.detach() if isinstance(v, torch.Tensor) else v) for k, v in base.items()
                 if not k.startswith("ln_") and k != "need_workspace"})
    for name in ("ih", "hh", "c"):
        if name not in _LN_SUBSETS[subset]:
            args.update({f"ln_{name}_w": None, f"ln_{name}_b": None})
    if dtype != torch.float64:
        args = {k: (v.to(dtype) if isinstance(v, torch.Tensor) and v.is_floating_point() else v)
                for k, v in args.items()}
    want = _op(args, "python")[:3]
    if dtype == torch.float64:
        ref = _run(lstm_layer_ref, {k: v for k, v in args.items() if k != "need_workspace"})
        for w, r in zip(want, ref):
            torch.testing.assert_close(w, r)
    tol = {} if dtype == torch.float64 else dict(rtol=2e-5, atol=2e-5)
    monkeypatch.setenv("LSTMKIT_CPP_LOOP", "units")
    for threads, chunk in ((2, "0"), (2, "3"), (1, "6")):
        torch.set_num_threads(threads)
        monkeypatch.setenv("LSTMKIT_GATES_CHUNK", chunk)
        got = _op(args, "cpp")[:3]
        assert _C.last_loops()[0] == "units", (threads, chunk, _C.last_loops())
        for g, w in zip(got, want):
            torch.testing.assert_close(g, w, **tol)
    torch.set_num_threads(2)
    training = {**args, "need_workspace": True}
    for g, w in zip(_op(training, "cpp")[:3], want):
        torch.testing.assert_close(g, w, **tol)
    assert _C.last_loops()[0] == "steps"


@pytest.mark.parametrize("dtype,hidden", [(torch.float32, 260), (torch.float64, 184)])
def test_cpp_layer_norm_inference_takes_the_units_loop_where_a_plain_layer_does(monkeypatch, dtype, hidden):
    """Unforced, at 2 threads: where W_hh exceeds the rows loop's bound (4H x P values > 1 MiB) a layer-norm layer's
    inference takes the units loop with few rows per thread, as a plain layer's does, and equals the Python
    kernel; with many rows per thread (>= 32) and W_hh <= 4 MiB it keeps the rows loop, where each thread's stream
    of W_hh hides behind its GEMM; training keeps the rows loop; small weights keep the rows loop."""
    from lstmkit.ops import _C

    monkeypatch.delenv("LSTMKIT_CPP_LOOP", raising=False)
    monkeypatch.delenv("LSTMKIT_GATES_CHUNK", raising=False)
    torch.set_num_threads(2)
    for hid, batch, want_loop, need in ((hidden, 3, "units", False), (hidden, 64, "rows", False),
                                        (hidden, 3, "rows", True), (40, 3, "rows", False)):
        g = torch.Generator().manual_seed(hid + batch)
        rand = lambda *shape: torch.randn(*shape, generator=g, dtype=dtype) * 0.3  # noqa: E731
        args = _inference_args("layer_norm_all", 8, dtype)
        args.update(x=rand(2, batch, 8), h0=rand(batch, hid), c0=rand(batch, hid), w_ih=rand(4 * hid, 8),
                    w_hh=rand(4 * hid, hid) / hid ** 0.5, b_ih=rand(4 * hid), b_hh=rand(4 * hid), w_hr=None,
                    batch_sizes=None, peephole=None, recurrent_mask=None, zoneout_h_mask=None,
                    zoneout_c_mask=None, ln_ih_w=rand(4 * hid) + 1, ln_ih_b=rand(4 * hid),
                    ln_hh_w=rand(4 * hid) + 1, ln_hh_b=rand(4 * hid), ln_c_w=rand(hid) + 1, ln_c_b=rand(hid),
                    need_workspace=need)
        want = _op(args, "python")[:3]
        got = _op(args, "cpp")[:3]
        assert _C.last_loops()[0] == want_loop, (hid, batch, need, _C.last_loops())
        for g_, w in zip(got, want):
            torch.testing.assert_close(g_, w, **({} if dtype == torch.float64 else dict(rtol=2e-5, atol=2e-5)))


@pytest.mark.parametrize("layer_norm", [False, True])
def test_cpp_rows_loop_inference_chunks_only_while_w_ih_fits_l2(monkeypatch, layer_norm):
    """The rows loop's inference chunks multiply each thread's rows of a step by all of w_ih: with w_ih over a
    core's L2 (4H x I values > 1 MiB) it keeps the whole product (when that is at most 32 MiB, or up to 256 MiB
    with the workspace pool on, which hands the buffer back on the next call), below it it takes chunks of about
    2 MiB of rows (_C.last_gate_rows); all equal the Python kernel (2 threads, float64: these random layers with
    layer norm amplify a rounding difference about 1.2x a step, beyond float32's bounds)."""
    from lstmkit.ops import _C

    monkeypatch.delenv("LSTMKIT_CPP_LOOP", raising=False)
    monkeypatch.delenv("LSTMKIT_GATES_CHUNK", raising=False)
    torch.set_num_threads(2)
    batch = 64
    # (steps, hidden, inputs, pool, rows kept): H = 64 rows of 2 KiB, 40 steps over one 2 MiB chunk (1024 rows),
    # w_ih 1.06 / 1.02 MB; H = 128 rows of 4 KiB, 140 steps 36.7 MB (over 32 MiB), chunks of 512 rows
    for steps, hidden, inputs, pool, rows in ((40, 64, 520, "1", 40 * batch), (40, 64, 500, "1", 1024),
                                              (140, 128, 260, "1", 140 * batch), (140, 128, 260, "0", 512)):
        monkeypatch.setenv("LSTMKIT_WORKSPACE_POOL", pool)
        g = torch.Generator().manual_seed(inputs)
        rand = lambda *shape: torch.randn(*shape, generator=g, dtype=torch.float64) * 0.3  # noqa: E731
        args = _inference_args("layer_norm_all", 8, torch.float64)
        args.update(x=rand(steps, batch, inputs), h0=rand(batch, hidden), c0=rand(batch, hidden),
                    w_ih=rand(4 * hidden, inputs) / inputs ** 0.5, w_hh=rand(4 * hidden, hidden) / hidden ** 0.5,
                    b_ih=rand(4 * hidden), b_hh=rand(4 * hidden), w_hr=None, batch_sizes=None, peephole=None,
                    recurrent_mask=None, zoneout_h_mask=None, zoneout_c_mask=None,
                    ln_ih_w=rand(4 * hidden) + 1, ln_ih_b=rand(4 * hidden), ln_hh_w=rand(4 * hidden) + 1,
                    ln_hh_b=rand(4 * hidden), ln_c_w=rand(hidden) + 1, ln_c_b=rand(hidden))
        if not layer_norm:
            args.update({k: None for k in args if k.startswith("ln_")})
        want = _op(args, "python")[:3]
        got = _op(args, "cpp")[:3]
        assert _C.last_loops()[0] == "rows" and _C.last_gate_rows() == rows, (steps, inputs, pool, _C.last_gate_rows())
        for g_, w in zip(got, want):
            torch.testing.assert_close(g_, w, msg=lambda m: f"{steps} steps, w_ih {inputs} inputs, pool {pool}: {m}")


def test_cpp_inference_keeps_the_whole_input_gemm_with_a_workspace_or_layer_norm_of_the_input(monkeypatch):
    """The chunks apply to inference calls only: a call that keeps its workspace for the backward keeps every row of
    gates, and so does one with layer norm of x W_ih^T alone outside the rows loop (the units and per-step loops
    then normalise all rows at once); the rows loop normalises each step's rows in place, by chunks (and so does the
    units loop with layer norm of R h or c too: test_cpp_units_loop_layer_norm_inference_equals_python)."""
    from lstmkit.ops import _C

    monkeypatch.setenv("LSTMKIT_GATES_CHUNK", "3")
    args = _wide_args("plain", 40)
    _op(args, "cpp")
    assert _C.last_gate_rows() == 12
    args = _inference_args("plain", 40, torch.float64)
    args.update(ln_ih_w=torch.ones(160, dtype=torch.float64), ln_ih_b=torch.zeros(160, dtype=torch.float64))
    for loop, rows in (("units", 12), ("steps", 12), ("rows", 3)):
        monkeypatch.setenv("LSTMKIT_CPP_LOOP", loop)
        _op(args, "cpp")
        assert _C.last_loops()[0] == loop and _C.last_gate_rows() == rows, (loop, _C.last_loops(), _C.last_gate_rows())


def test_cpp_units_loop_inference_packs_w_ih_into_the_workspace_pool(monkeypatch):
    """The units loop's inference by chunks packs each thread's slices of w_ih.T (MKL, float32) into one buffer from
    the workspace pool, which the next call of that shape gets back (no miss): a fresh allocation per call and thread
    was fresh pages every call (benchmarks/RESULTS.md, "Session 11: eval cells after other cells"). Outputs equal
    the Python kernel's, and bit for bit those of a call with the pool switched off (memory of its own)."""
    from lstmkit.ops import _C

    hidden, inputs = 128, 1024  # each thread's four slices: 1024 x 64 floats each, 1 MiB a thread (above the floor)
    args = _inference_args("zoneout_eval", hidden, torch.float32)
    g = torch.Generator().manual_seed(3)
    args.update(x=torch.randn(4, 3, inputs, generator=g), w_ih=torch.randn(4 * hidden, inputs, generator=g) * 0.05)
    want = _op(args, "python")[:3]
    monkeypatch.setenv("LSTMKIT_CPP_LOOP", "units")
    monkeypatch.setenv("LSTMKIT_GATES_CHUNK", "3")  # one step's rows a chunk
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        _C.workspace_pool_clear()
        held0 = _C.workspace_pool_stats()[0]  # buffers other live tensors hold
        first = _op(args, "cpp")[:3]
        assert _C.last_loops()[0] == "units" and _C.last_gate_rows() == 3
        held, idle, hits, misses = _C.workspace_pool_stats()
        assert held - held0 >= args["w_ih"].numel() * 4 and idle == held - held0, (held, held0, idle)
        second = _op(args, "cpp")[:3]
        assert _C.workspace_pool_stats()[3] == misses and _C.workspace_pool_stats()[2] > hits
        monkeypatch.setenv("LSTMKIT_WORKSPACE_POOL", "0")
        alone = _op(args, "cpp")[:3]
    finally:
        torch.set_num_threads(before)
    for a, b, c, w in zip(first, second, alone, want):
        torch.testing.assert_close(a, c, rtol=0, atol=0)
        torch.testing.assert_close(b, c, rtol=0, atol=0)
        torch.testing.assert_close(a, w, rtol=1e-4, atol=1e-5)


def test_workspace_pool_never_hands_out_a_referenced_buffer(monkeypatch):
    """Large buffers come from a pool that hands a buffer out again only when no tensor refers to its storage: a
    buffer held by a live tensor (a view of it, an output the user kept, a saved workspace) is never returned twice,
    one whose tensors are all gone is, and the pool can be switched off (LSTMKIT_WORKSPACE_POOL=0)."""
    from lstmkit.ops import _C

    _C.workspace_pool_clear()
    shape = [1 << 18, 2]  # 2 MiB of float32, above the pool's 1 MiB floor
    a = _C.pooled_empty(shape, torch.float32)
    view = a[10:20]
    a_ptr = a.data_ptr()
    del a
    b = _C.pooled_empty(shape, torch.float32)  # `view` still holds a's storage
    assert b.data_ptr() != a_ptr
    del view
    c = _C.pooled_empty(shape, torch.float32)  # now a's buffer is free again
    assert c.data_ptr() == a_ptr and c.shape == tuple(shape) and c.dtype == torch.float32
    assert b.data_ptr() != c.data_ptr()
    small = _C.pooled_empty([16], torch.float32)  # below the floor: an ordinary allocation
    assert small.shape == (16,)
    held, idle, hits, misses = _C.workspace_pool_stats()
    assert held >= 2 * (1 << 21) and idle == 0 and hits >= 1
    del b, c
    assert _C.workspace_pool_stats()[1] >= 2 * (1 << 21)
    _C.workspace_pool_clear()
    held_after = _C.workspace_pool_stats()[0]  # only buffers other live tensors hold (none of this test's)
    assert _C.workspace_pool_stats()[1] == 0 and held - held_after >= 2 * (1 << 21)  # b and c given back
    monkeypatch.setenv("LSTMKIT_WORKSPACE_POOL", "0")
    d = _C.pooled_empty(shape, torch.float32)
    assert _C.workspace_pool_stats()[0] == held_after and d.shape == tuple(shape)


def test_workspace_pool_keeps_saved_workspaces_and_outputs_apart():
    """Through the operator: a training call's workspace (saved for its backward) and an output the user keeps are
    never handed to a later call while they live. Two forwards in a row, then both backwards, must give each call's
    own gradients; a kept output must keep its values after later calls of the same size."""
    from lstmkit.ops import _C

    _C.workspace_pool_clear()
    g = torch.Generator().manual_seed(3)
    T_, B_, I_, H_ = 64, 64, 8, 48  # every (N, 4H) buffer 3 MiB in float32: pooled
    w = [torch.randn(*s, generator=g).mul_(0.3).requires_grad_(True) for s in [(4 * H_, I_), (4 * H_, H_)]]
    xs = [torch.randn(T_, B_, I_, generator=g) for _ in range(2)]
    h0, c0 = torch.zeros(B_, H_), torch.zeros(B_, H_)

    def call(x, need):
        return torch.ops.lstmkit.lstm_layer(x, h0, c0, w[0], w[1], None, None, None, None, False, None, None, None,
                                            None, None, None, None, None, None, None, 0.0, 0.0, None, need)

    def grads_alone(x):
        return torch.autograd.grad(call(x, True)[0].square().sum(), w)

    with use_fused_backend("cpp"):
        want = [grads_alone(x) for x in xs]
        out_a, out_b = call(xs[0], True)[0], call(xs[1], True)[0]  # both workspaces live at once
        got_a = torch.autograd.grad(out_a.square().sum(), w, retain_graph=True)
        got_b = torch.autograd.grad(out_b.square().sum(), w)
        for got, exp in zip((*got_a, *got_b), (*want[0], *want[1])):
            torch.testing.assert_close(got, exp)
        with torch.no_grad():
            kept = call(xs[0], False)[0]
            copy = kept.clone()
            for _ in range(3):
                call(xs[1], False)
                call(xs[1], True)
        torch.testing.assert_close(kept, copy, rtol=0, atol=0)
        assert _C.workspace_pool_stats()[2] > 0  # the pool did hand out buffers again


def test_workspace_pool_frees_idle_buffers_when_sizes_change():
    """A request that matches no idle buffer frees idle ones (least recently used first) until no more bytes are idle
    than the most the pool ever had in use at once: sizes that change every call (variable sequence lengths) do not
    pile up idle buffers, and a size pattern that repeats (a training step) stops missing once warm."""
    from lstmkit.ops import _C

    _C.workspace_pool_clear()
    held0 = _C.workspace_pool_stats()[0]  # buffers other live tensors hold (in use)
    u = held0 + (1 << 20)
    for k in range(1, 9):  # eight sizes, each freed at once: 36 u in all
        t = _C.pooled_empty([k * u], torch.uint8)
        del t
    held, idle = _C.workspace_pool_stats()[:2]
    assert idle <= held0 + 15 * u and held - idle == held0, (held, idle)  # at most the peak (8 u) + the last
    _C.workspace_pool_clear()
    # a step whose two halves ask for different sizes (a forward's temporaries, then a backward's), the second
    # larger than what is kept through the step: warm after one step
    sizes = [[3 << 18, 5 << 18], [7 << 18, 3 << 18]]
    for step in range(3):
        misses = _C.workspace_pool_stats()[3]
        kept = [_C.pooled_empty([1 << 18], torch.float32)]  # 1 MiB held through the step (a saved workspace)
        for half in sizes:
            temps = [_C.pooled_empty([n], torch.float32) for n in half]
            del temps
        del kept
        if step > 0:
            assert _C.workspace_pool_stats()[3] == misses, step


def test_workspace_pool_serves_slightly_smaller_requests():
    """An idle buffer serves a request of up to a quarter fewer bytes (sequence lengths that vary a little between
    batches), as a tensor of exactly the requested shape at the buffer's start; a smaller request gets its own."""
    from lstmkit.ops import _C

    _C.workspace_pool_clear()
    a = _C.pooled_empty([1 << 20], torch.float32)  # 4 MiB
    first = a.data_ptr()
    del a
    b = _C.pooled_empty([900_000], torch.float32)  # 3.4 MiB: within a quarter
    assert b.data_ptr() == first and b.shape == (900_000,) and b.is_contiguous()
    del b
    c = _C.pooled_empty([700_000], torch.float32)  # 2.7 MiB: more than a quarter smaller
    assert c.data_ptr() != first


def test_workspace_pool_buffer_crosses_inference_mode():
    """A buffer first handed out under torch.inference_mode and freed can serve a training call: the tensor made
    on it outside inference mode is an ordinary tensor, which autograd may save for backward."""
    from lstmkit.ops import _C

    _C.workspace_pool_clear()
    with torch.inference_mode():
        a = _C.pooled_empty([1 << 19], torch.float32)
        first = a.data_ptr()
        assert a.is_inference()
    del a
    b = _C.pooled_empty([1 << 19], torch.float32)
    assert b.data_ptr() == first and not b.is_inference()
    w = torch.ones(1 << 19, requires_grad=True)
    (b.fill_(2.0) * w).sum().backward()  # b saved for the backward
    assert torch.equal(w.grad, torch.full_like(w, 2.0))


def test_cpp_packing_buffers_kept_between_calls_give_what_fresh_ones_give(monkeypatch):
    """float32 weight slices are packed (MKL) into a buffer per thread kept from call to call (csrc PackArena). A
    call after calls of other shapes (a larger layer, whose slices did not fit: memory of their own, then the
    buffer grows to hold them; a projection; the rows loop's whole weight; a changed weight of the same shape)
    gives bit for bit what packing into fresh memory gives (LSTMKIT_PACK_REUSE=0), and the Python kernel's values,
    in both loops, forward and backward."""
    from lstmkit.ops import _C

    configs = [("plain", 40, None, "units"), ("plain", 72, None, "units"), ("proj", 37, 21, "units"),
               ("plain", 40, None, "units"), ("reverse", 40, None, "rows"), ("plain", 72, None, "units")]
    before = torch.get_num_threads()
    sizes = []
    _C.release_pack_arena()  # start empty: earlier tests may have grown this thread's buffer past these layers
    try:
        torch.set_num_threads(2)
        for k, (option, hidden, proj, loop) in enumerate(configs):
            args = _wide_args(option, hidden, proj, dtype=torch.float32)
            if k == 3:  # the first call's shape again, other weights: packed anew into the kept buffer
                args["w_hh"] = (args["w_hh"].detach() * -0.7).requires_grad_()
            weights = [torch.randn_like(t) for t in _op(args, "python")[:3]]
            monkeypatch.setenv("LSTMKIT_CPP_LOOP", loop)
            monkeypatch.setenv("LSTMKIT_PACK_REUSE", "1")
            kept = _grads(args, "cpp", weights)
            assert _C.last_loops() == (loop, loop)
            sizes.append(_C.pack_arena_bytes())
            monkeypatch.setenv("LSTMKIT_PACK_REUSE", "0")
            fresh = _grads(args, "cpp", weights)
            python = _grads(args, "python", weights)
            for got, alone, want in zip((*kept[0], *kept[1]), (*fresh[0], *fresh[1]), (*python[0], *python[1])):
                assert (got is None) == (want is None)
                if got is not None:
                    torch.testing.assert_close(got, alone, rtol=0, atol=0)
                    torch.testing.assert_close(got, want, rtol=2e-5, atol=2e-5)
    finally:
        torch.set_num_threads(before)
    # the calling thread's buffer is in use (MKL packs here) and grew after the larger layer, never shrinking
    assert sizes[0] > 0 and sizes[2] > sizes[0] and sizes == sorted(sizes), sizes


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("loop", ["units", "rows"])
def test_cpp_sees_every_change_of_the_weights_between_calls(monkeypatch, dtype, loop):
    """Nothing of a weight is kept from one call to the next (the packed slices are rebuilt every call, only their
    memory is kept): after an optimizer step, an in-place edit through .data (which autograd's version counter
    does not see), a .data assignment, load_state_dict, a one-element edit, and with two modules called in turn,
    each call's outputs and gradients equal the Python kernel's on the weights as they are now."""
    import lstmkit

    monkeypatch.setenv("LSTMKIT_CPP_LOOP", loop)
    torch.manual_seed(0)
    a, b = (lstmkit.LSTM(6, 40, impl="fused", dtype=dtype) for _ in range(2))
    x = torch.randn(4, 3, 6, dtype=dtype)
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == torch.float32 else {}

    def check(module):
        results = []
        for backend in ("cpp", "python"):
            module.zero_grad()
            with use_fused_backend(backend):
                out, (h, c) = module(x)
                (out.sum() + h.sum() + c.sum()).backward()
            results.append([out.detach(), *(p.grad.clone() for p in module.parameters())])
        for got, want in zip(*results):
            torch.testing.assert_close(got, want, **tol)
        return results[0][0]

    torch.set_num_threads(2)
    first = check(a)
    torch.optim.SGD(a.parameters(), lr=0.5).step()  # gradients of the python call, left by check
    assert not torch.equal(check(a), first)
    a.weight_hh_l0.data.mul_(-0.5)  # not counted by a.weight_hh_l0._version
    check(a)
    a.weight_hh_l0.data = torch.randn_like(a.weight_hh_l0)
    check(a)
    a.load_state_dict(b.state_dict())
    torch.testing.assert_close(check(a), check(b), rtol=0, atol=0)
    with torch.no_grad():
        a.weight_hh_l0[5, 7] += 1.0
    assert not torch.equal(check(a), check(b))
    assert _cpp_loops() == (loop, loop)


def _cpp_loops():
    from lstmkit.ops import _C

    return _C.last_loops()
