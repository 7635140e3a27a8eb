"""bfloat16 in the C++ kernel, both ways (csrc/lstm_layer.cpp's header): "native" (bfloat16 GEMMs) and "float32" (the
float32 kernel with every GEMM operand rounded to bfloat16, the way hosts without AMX-BF16 take). The float32 way is
pinned to a hand-written per-step reference that rounds the same operands (below), forward and gradients, for every
option; both ways are checked against float32 in test_cpp_extension.py and under autocast in test_layer_op.py."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from lstmkit.ops import cpp_extension_error, fused_backend, use_fused_backend
from lstmkit.ops.layer_op import workspace_dtype
from lstmkit.ops.reference import LAYER_NORM_EPS
from test_layer_op import make_args

if cpp_extension_error() is not None:
    pytest.skip(f"the C++ extension is not built ({cpp_extension_error()}); the Python path is used",
                allow_module_level=True)

WAYS = ("native", "float32")


def _rnd(t: torch.Tensor) -> torch.Tensor:
    """t's values rounded to the nearest bfloat16 (ties to even), in t's dtype."""
    return t.to(torch.bfloat16).to(t.dtype)


class _RoundValue(torch.autograd.Function):
    """Forward: round to bfloat16 (a GEMM operand the kernel rounds where it makes it). Backward: the gradient
    passes as it is, as in the kernel, which differentiates the rounded value as if it were exact."""

    @staticmethod
    def forward(x):
        return _rnd(x)

    @staticmethod
    def setup_context(ctx, inputs, output):
        pass

    @staticmethod
    def backward(ctx, grad):
        return grad


class _RoundGrad(torch.autograd.Function):
    """Forward: identity. Backward: the gradient rounded to bfloat16 (a gradient the kernel rounds before it
    becomes a GEMM operand: of the gate pre-activations, of R h and W x under layer norm, of the projected h)."""

    @staticmethod
    def forward(x):
        return x.clone()

    @staticmethod
    def setup_context(ctx, inputs, output):
        pass

    @staticmethod
    def backward(ctx, grad):
        return _rnd(grad)


def _peep(p: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """p * c whose gradient to p arrives rounded (through the pre-activation's) while c's does not: the kernel's row
    sweep feeds dc from the float32 dz, and rounds dz after it. Used inside _RoundGrad with the exact term added
    outside: value p * c."""
    return p * c.detach()


def _cell(x, h, c, w_ih, w_hh, bias, w_hr, a, mask, zh, zc):
    """One step of the float32 way, written out (shapes as in lstmkit.ops.reference)."""
    hidden = c.shape[1]
    h_in = _RoundValue.apply(h * mask) if mask is not None else h  # (B, P); h is a bfloat16 value already
    from_x = x @ w_ih.t()  # (B, 4H)
    from_h = h_in @ w_hh.t()  # (B, 4H)
    if a["ln_ih_w"] is not None:
        from_x = F.layer_norm(_RoundGrad.apply(from_x), (4 * hidden,), a["ln_ih_w"], a["ln_ih_b"], LAYER_NORM_EPS)
    if a["ln_hh_w"] is not None:
        from_h = F.layer_norm(_RoundGrad.apply(from_h), (4 * hidden,), a["ln_hh_w"], a["ln_hh_b"], LAYER_NORM_EPS)
    lin = from_x + from_h + (bias if bias is not None else 0)
    zi, zf, zg, zo = lin.chunk(4, dim=1)  # (B, H) each
    p = a["peephole"]
    if p is not None:
        zi = _RoundGrad.apply(zi + _peep(p[0], c)) + p[0].detach() * (c - c.detach())
        zf = _RoundGrad.apply(zf + _peep(p[1], c)) + p[1].detach() * (c - c.detach())
    else:
        zi, zf = _RoundGrad.apply(zi), _RoundGrad.apply(zf)
    i, f, g = torch.sigmoid(zi), torch.sigmoid(zf), torch.tanh(_RoundGrad.apply(zg))
    c_new = f * c + i * g
    if a["cell_clip"] is not None:
        c_new = c_new.clamp(-a["cell_clip"], a["cell_clip"])
    if p is not None:
        zo = _RoundGrad.apply(zo + _peep(p[2], c_new)) + p[2].detach() * (c_new - c_new.detach())
    else:
        zo = _RoundGrad.apply(zo)
    o = torch.sigmoid(zo)
    c_out = F.layer_norm(c_new, (hidden,), a["ln_c_w"], a["ln_c_b"], LAYER_NORM_EPS) if a["ln_c_w"] is not None else c_new
    h_new = o * torch.tanh(c_out)  # (B, H)
    if w_hr is not None:
        h_new = _RoundGrad.apply(_RoundValue.apply(h_new) @ w_hr.t())  # (B, P)
    if zh is not None:
        h_new = torch.lerp(h_new, h, zh)
    if zc is not None:
        c_new = torch.lerp(c_new, c, zc)
    return _RoundValue.apply(h_new), c_new


def _reference(a):
    """The layer of lstmkit::lstm_layer (arguments as make_args gives them) computed as the float32 way does, in
    float64: output, h_n, c_n."""
    x, h, c = a["x"], a["h0"], a["c0"]
    sizes = [int(s) for s in a["batch_sizes"]] if a["batch_sizes"] is not None else [x.shape[1]] * x.shape[0]
    split = (lambda t: list(t.unbind(0))) if a["batch_sizes"] is None else (lambda t: list(t.split(sizes)))
    inputs = split(x)
    zh = split(a["zoneout_h_mask"]) if a["zoneout_h_mask"] is not None else None
    zc = split(a["zoneout_c_mask"]) if a["zoneout_c_mask"] is not None else None
    bias = None
    for b in (a["b_ih"], a["b_hh"]):
        if b is not None:
            bias = b if bias is None else bias + b
    outputs = [None] * len(sizes)
    for t in (range(len(sizes) - 1, -1, -1) if a["reverse"] else range(len(sizes))):
        n = sizes[t]
        mask = a["recurrent_mask"][:n] if a["recurrent_mask"] is not None else None
        step_zh = zh[t] if zh is not None else (a["zoneout_h"] if a["zoneout_h"] > 0 else None)
        step_zc = zc[t] if zc is not None else (a["zoneout_c"] if a["zoneout_c"] > 0 else None)
        h_t, c_t = _cell(inputs[t], h[:n], c[:n], a["w_ih"], a["w_hh"], bias, a["w_hr"], a, mask, step_zh, step_zc)
        outputs[t] = h_t
        h, c = torch.cat([h_t, h[n:]]), torch.cat([c_t, c[n:]])
    output = torch.stack(outputs) if a["batch_sizes"] is None else torch.cat(outputs)
    return output, h, c


def _bf16_args(option: str, hidden: int = 24, proj: int = 16, seed: int = 0):
    """make_args's option at a size where rounding shows (24 units, projection to 16), every tensor a bfloat16."""
    import test_layer_op as shapes

    saved = shapes.H, shapes.P
    shapes.H, shapes.P = hidden, proj
    try:
        args = make_args(option, dtype=torch.float32, seed=seed)
    finally:
        shapes.H, shapes.P = saved
    return {k: (v.detach().bfloat16().requires_grad_(v.requires_grad) if isinstance(v, torch.Tensor)
                and v.is_floating_point() else v) for k, v in args.items()}


def _kernel_and_reference(args, seed: int = 1):
    """(outputs + gradients of the C++ kernel, the same of the float64 reference) for random output weights."""
    g = torch.Generator().manual_seed(seed)
    inputs = [k for k, v in args.items() if isinstance(v, torch.Tensor) and v.requires_grad]
    with use_fused_backend("cpp"):  # the backward picks its kernel when it runs: inside too
        out = torch.ops.lstmkit.lstm_layer(*args.values())[:3]
        weights = [_rnd(torch.randn(t.shape, generator=g, dtype=torch.float64)) for t in out]  # bf16 values
        got = (*out, *torch.autograd.grad(out, [args[k] for k in inputs], [w.bfloat16() for w in weights]))
    wide = {k: (v.detach().double().requires_grad_(v.requires_grad) if isinstance(v, torch.Tensor)
                and v.is_floating_point() else v) for k, v in args.items()}
    ref = _reference(wide)
    want = (*ref, *torch.autograd.grad(ref, [wide[k] for k in inputs], weights))
    return ["output", "h_n", "c_n", *(f"d_{k}" for k in inputs)], got, want


def _mismatch(got: torch.Tensor, want: torch.Tensor) -> tuple[float, float]:
    """(share of entries farther from the reference than rounding the reference to bfloat16 allows (half a bf16
    step, 2^-8 of the value, plus 1e-4 of the tensor's largest entry for float32 sums), largest such distance as a
    fraction of that largest entry)."""
    got = got.double()
    scale = want.abs().max().item() + 1e-12
    err = (got - want).abs()
    bad = err > want.abs() * 2.0 ** -8 + 1e-4 * scale
    return bad.double().mean().item(), err.max().item() / scale


OPTIONS = ["plain", "proj", "packed_reverse", "peephole", "layer_norm", "recurrent_mask", "zoneout_masks",
           "zoneout_eval", "cell_clip", "all"]


@pytest.mark.parametrize("option", OPTIONS)
def test_float32_way_equals_the_rounding_reference(monkeypatch, option):
    """The float32 way equals the per-step reference that rounds the same GEMM operands (float64 arithmetic
    otherwise), in the outputs and every gradient: at most 1 % of the entries of any tensor more than half a
    bfloat16 step away from the reference, none more than 1 % of the tensor's largest entry. Both outputs round the
    same h; where float32 and float64 sums fall on either side of a bf16 rounding boundary, one h takes the
    neighbouring bf16 value and the later steps carry that small difference (the 1 %; measured: none over 3 seeds, and at most 0.37 % of the largest entry, the final rounding). A kernel that
    does not round h (or dz) where the reference does fails this: measured in the comments below."""
    monkeypatch.setenv("LSTMKIT_CPP_BF16", "float32")
    names, got, want = _kernel_and_reference(_bf16_args(option))
    for name, a, b in zip(names, got, want):
        assert a.dtype == torch.bfloat16, name
        share, worst = _mismatch(a, b)
        assert share <= 0.01 and worst <= 0.01, (option, name, share, worst)


@pytest.mark.parametrize("chunk_rows", [0, 6])
def test_float32_way_in_the_units_loop_equals_the_rounding_reference(monkeypatch, chunk_rows):
    """The same check in the units loop (hidden units split over the threads, a barrier per step), also with the
    backward keeping dz for chunks of steps (LSTMKIT_DZ_CHUNK rows, here two steps of three rows), where each thread
    adds the weight, bias and input gradients of a chunk from the rounded dz as the chunk ends."""
    from lstmkit.ops import _C

    monkeypatch.setenv("LSTMKIT_CPP_BF16", "float32")
    monkeypatch.setenv("LSTMKIT_CPP_LOOP", "units")
    monkeypatch.setenv("LSTMKIT_DZ_CHUNK", str(chunk_rows))
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        names, got, want = _kernel_and_reference(_bf16_args("plain"))
        assert _C.last_loops() == ("units", "units")
        assert _C.last_dz_rows() == (chunk_rows or 12)
    finally:
        torch.set_num_threads(before)
    for name, a, b in zip(names, got, want):
        share, worst = _mismatch(a, b)
        assert share <= 0.01 and worst <= 0.01, (chunk_rows, name, share, worst)


def test_the_rounding_reference_tells_rounding_apart():
    """The reference check above is sharp enough to see the rounding: the float32 kernel without any rounding
    (plain float32 arguments holding the same bfloat16 values) misses it."""
    args = _bf16_args("all")
    names, _, want = _kernel_and_reference(args)
    wide = {k: (v.detach().float().requires_grad_(v.requires_grad) if isinstance(v, torch.Tensor)
                and v.is_floating_point() else v) for k, v in args.items()}
    with use_fused_backend("cpp"):
        out = torch.ops.lstmkit.lstm_layer(*wide.values())[:3]
    shares = [_mismatch(a.bfloat16(), b)[0] for a, b in zip(out, want)]
    assert max(shares) > 0.01, shares


@pytest.mark.parametrize("way", WAYS)
def test_the_way_is_named_and_forced(monkeypatch, way):
    """LSTMKIT_CPP_BF16 picks the way per call; fused_backend(torch.bfloat16) names it; unset, the host decides
    (native with AMX-BF16, which /proc/cpuinfo calls amx_bf16 on Linux); a wrong value is a clear error."""
    from lstmkit.ops import _C

    monkeypatch.setenv("LSTMKIT_CPP_BF16", way)
    x = torch.zeros(2, 1, 3, dtype=torch.bfloat16)
    with use_fused_backend("cpp"):
        assert fused_backend(torch.bfloat16) == f"cpp-bf16-{way}"
        assert fused_backend() == "cpp" and fused_backend(torch.float32) == "cpp"
        assert workspace_dtype(x) == (torch.float32 if way == "float32" else torch.bfloat16)
        assert workspace_dtype(x.float()) == torch.float32
    with use_fused_backend("python"):
        assert fused_backend(torch.bfloat16) == "python" and workspace_dtype(x) == torch.bfloat16
    monkeypatch.delenv("LSTMKIT_CPP_BF16")
    try:
        flags = next(line for line in open("/proc/cpuinfo") if line.startswith("flags")).split()
        assert _C.host_amx_bf16() == ("amx_bf16" in flags)
    except (OSError, StopIteration):  # not Linux: nothing to compare with
        pass
    with use_fused_backend("cpp"):
        assert fused_backend(torch.bfloat16) == ("cpp-bf16-native" if _C.host_amx_bf16() else "cpp-bf16-float32")
        monkeypatch.setenv("LSTMKIT_CPP_BF16", "fp8")
        with pytest.raises(RuntimeError, match="LSTMKIT_CPP_BF16 must be 'native' or 'float32'"):
            fused_backend(torch.bfloat16)


def test_float32_way_rounds_gemm_operands_and_keeps_float32_elsewhere(monkeypatch):
    """What the float32 way keeps: h_raw (a GEMM operand) holds bfloat16 values; the cells and gates, pointwise
    results, are float32 values that bfloat16 cannot hold; the workspace is float32, the outputs bfloat16."""
    monkeypatch.setenv("LSTMKIT_CPP_BF16", "float32")
    args = _bf16_args("all")
    with use_fused_backend("cpp"):
        out = torch.ops.lstmkit.lstm_layer(*args.values())
    assert [t.dtype for t in out[:3]] == [torch.bfloat16] * 3
    assert all(t.dtype == torch.float32 for t in out[3:])
    gates, cells, h_raw = out[3], out[4], out[7]
    assert h_raw.numel() and torch.equal(h_raw, _rnd(h_raw))
    assert not torch.equal(cells, _rnd(cells)) and not torch.equal(gates, _rnd(gates))


@pytest.mark.parametrize("way", WAYS)
@pytest.mark.parametrize("option", ["plain", "all"])
def test_opcheck_bfloat16(monkeypatch, way, option):
    """The fake kernels agree with both ways (the float32 way's workspace is float32), forward and backward."""
    monkeypatch.setenv("LSTMKIT_CPP_BF16", way)
    args = _bf16_args(option, hidden=5, proj=3)
    with use_fused_backend("cpp"):
        torch.library.opcheck(torch.ops.lstmkit.lstm_layer.default, tuple(args.values()))
        out = torch.ops.lstmkit.lstm_layer(*args.values())
        a = {k: (v.detach() if isinstance(v, torch.Tensor) else v) for k, v in args.items()}
        back_args = (
            *(torch.randn_like(t) for t in out[:3]), a["x"], a["h0"], a["c0"], a["w_ih"], a["w_hh"], a["w_hr"],
            a["batch_sizes"], a["reverse"], a["peephole"], a["ln_ih_w"], a["ln_ih_b"], a["ln_hh_w"], a["ln_hh_b"],
            a["ln_c_w"], a["ln_c_b"], a["recurrent_mask"], a["zoneout_h_mask"], a["zoneout_c_mask"], a["zoneout_h"],
            a["zoneout_c"], a["cell_clip"], out[0].detach(), *(w.detach() for w in out[3:]), [True] * 14,
        )
        torch.library.opcheck(torch.ops.lstmkit.lstm_layer_backward.default, back_args)


def test_the_python_backward_reads_a_float32_workspace(monkeypatch):
    """The forward and backward kernels can be mixed: the Python backward reads the float32 way's workspace."""
    monkeypatch.setenv("LSTMKIT_CPP_BF16", "float32")
    args = _bf16_args("all", hidden=5, proj=3)
    inputs = [v for v in args.values() if isinstance(v, torch.Tensor) and v.requires_grad]
    with use_fused_backend("cpp"):
        out = torch.ops.lstmkit.lstm_layer(*args.values())[:3]
        want = torch.autograd.grad(out, inputs, [torch.ones_like(t) for t in out], retain_graph=True)
    with use_fused_backend("python"):
        got = torch.autograd.grad(out, inputs, [torch.ones_like(t) for t in out])
    for a, b in zip(got, want):
        assert a.dtype == torch.bfloat16
        scale = b.float().abs().max().item() + 1e-6
        assert (a.float() - b.float()).abs().max().item() <= 0.1 * scale


@pytest.mark.parametrize("way", WAYS)
def test_float32_way_takes_the_partitioned_loop(monkeypatch, way):
    """The point of the float32 way: bfloat16 runs the float32 kernel's partitioned loop (one parallel region, MKL
    sgemm per thread) where the native way keeps the per-step ATen loop (_C.last_loops names the loop taken)."""
    from lstmkit.ops import _C

    monkeypatch.setenv("LSTMKIT_CPP_BF16", way)
    monkeypatch.delenv("LSTMKIT_CPP_LOOP", raising=False)
    args = _bf16_args("plain")
    with use_fused_backend("cpp"):
        out = torch.ops.lstmkit.lstm_layer(*args.values())
        torch.autograd.grad(out[0].float().sum(), [args["w_hh"]])
    forward_loop, backward_loop = _C.last_loops()
    if way == "native":
        assert (forward_loop, backward_loop) == ("steps", "steps")
    else:
        assert forward_loop in ("rows", "units") and backward_loop in ("rows", "units")


@pytest.mark.parametrize("way", WAYS)
@pytest.mark.parametrize("option", ["plain", "packed_reverse", "all_but_input_norm"])
def test_inference_input_gemm_in_chunks(monkeypatch, way, option):
    """An inference call (no workspace) makes x W_ih^T chunk by chunk in the time loop (LSTMKIT_GATES_CHUNK rows;
    _C.last_gate_rows says it did) in both ways: the outputs equal the whole-GEMM call's (the same products, row by
    row) and, in the float32 way, the rounding reference as closely as the training call does."""
    from lstmkit.ops import _C

    monkeypatch.setenv("LSTMKIT_CPP_BF16", way)
    args = _bf16_args("all" if option == "all_but_input_norm" else option)
    if option == "all_but_input_norm":
        args.update(ln_ih_w=None, ln_ih_b=None)  # layer norm of x W_ih^T keeps the whole GEMM
    args = {k: (v.detach() if isinstance(v, torch.Tensor) else v) for k, v in args.items()}
    args["need_workspace"] = False
    with use_fused_backend("cpp"):
        monkeypatch.setenv("LSTMKIT_GATES_CHUNK", "0")
        whole = torch.ops.lstmkit.lstm_layer(*args.values())[:3]
        monkeypatch.setenv("LSTMKIT_GATES_CHUNK", "3")  # one step of B = 3 rows
        got = torch.ops.lstmkit.lstm_layer(*args.values())[:3]
        assert _C.last_gate_rows() == 3
    wide = {k: (v.double() if isinstance(v, torch.Tensor) and v.is_floating_point() else v) for k, v in args.items()}
    want = _reference(wide)
    for a, w, r in zip(got, whole, want):
        assert a.dtype == torch.bfloat16
        torch.testing.assert_close(a, w, rtol=0, atol=0)
        if way == "float32":
            share, worst = _mismatch(a, r)
            assert share <= 0.01 and worst <= 0.01, (option, share, worst)
