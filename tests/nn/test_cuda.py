"""lstmkit on a CUDA device: the same contract as on the CPU.

Skipped where torch sees no GPU (CI has none). On a machine with one, ``python -m pytest tests/nn/test_cuda.py``
checks that
- plain configurations (auto/native) run torch's cuDNN kernel and equal torch.nn.LSTM there, gradients included;
- the fused operator (its Python kernels: the C++ one is CPU only) and the reference equations agree on the GPU
  for every variant, and with the CPU's float64 answers;
- autocast, torch.compile and the errors for tensors on mixed devices behave as torch's do.
benchmarks/RESULTS.md ("lstmkit on a CUDA device") records the run and its host.
"""

from __future__ import annotations

import pytest
import torch
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence

import lstmkit
from lstmkit.ops.masks import dropout_mask, dropout_scale
from helpers import assert_close, assert_same_as_torch, compare_modules, make_input, run

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device (these tests need a GPU)")

CUDA = torch.device("cuda")

VARIANTS = {
    "layer_norm": dict(layer_norm=True),
    "peephole": dict(peephole=True),
    "cell_clip": dict(cell_clip=0.4),
    "zoneout": dict(zoneout=(0.3, 0.2)),
    "recurrent_dropout": dict(recurrent_dropout=0.3),
    "all": dict(layer_norm=True, peephole=True, cell_clip=0.5, zoneout=0.15, recurrent_dropout=0.2),
}
SHAPES = {
    "plain": dict(),
    "stack": dict(num_layers=2, bidirectional=True, dropout=0.3),
    "proj": dict(proj_size=3, batch_first=True),
}


def _outputs(module, x, lengths, batch_first, seed=7):
    """Forward and backward of a fixed loss; every tensor worth comparing, on the CPU."""
    x = x.clone().requires_grad_()
    inp = pack_padded_sequence(x, lengths, batch_first=batch_first, enforce_sorted=False) if lengths is not None else x
    torch.manual_seed(seed)  # the dropout/zoneout masks, drawn on the module's device
    out, (h, c) = module(inp)
    data = out.data if isinstance(out, PackedSequence) else out
    (data.sin().sum() + (h * h).sum() + c.cos().sum()).backward()
    tensors = {"output": data, "h_n": h, "c_n": c, "grad input": x.grad}
    tensors.update({f"grad {name}": p.grad for name, p in module.named_parameters()})
    return {name: t.detach().cpu() for name, t in tensors.items()}


@pytest.mark.parametrize("kind", ["batched", "unbatched", "packed", "unsorted"])
@pytest.mark.parametrize("options", [dict(), dict(num_layers=2, bidirectional=True),
                                     dict(proj_size=3, batch_first=True)], ids=["plain", "stack-bi", "proj"])
@pytest.mark.parametrize("impl", ["auto", "native", "fused", "reference"])
def test_every_impl_equals_torch_on_cuda(impl, options, kind):
    """torch.nn.LSTM on the GPU (cuDNN) is the oracle for every impl, as on the CPU (tests/nn/test_lstm_parity.py).

    auto and native are cuDNN itself: 1e-5. fused and reference compute in float32 with cuBLAS; cuDNN's float32 LSTM
    was measured up to 1.9e-5 from them on an H200 (benchmarks/RESULTS.md, "lstmkit on a CUDA device"), so they are
    held to 5e-5 from torch and to 1e-5 from the float64 answer (the reference equations in float64 on the GPU)."""
    torch.manual_seed(0)
    theirs = torch.nn.LSTM(5, 6, **options).to(CUDA)
    ours = lstmkit.LSTM(5, 6, impl=impl, **options).to(CUDA)
    ours.load_state_dict(theirs.state_dict())
    batch_first = options.get("batch_first", False)
    x, lengths = make_input(kind, 7, 4, 5, batch_first, dtype=torch.float32)
    # cuDNN's float32 RNNs multiply in TF32 by default on Ampere and later (torch.backends.cudnn.allow_tf32), about
    # 4e-4 from float32 here; fused and reference multiply in float32 (cuBLAS at float32_matmul_precision "highest")
    with torch.backends.cudnn.flags(enabled=True, allow_tf32=False):
        rtol = 1e-5 if impl in ("auto", "native") else 5e-5
        compare_modules(theirs, ours, x.to(CUDA), lengths, batch_first=batch_first, packed_sorted=kind != "unsorted",
                        rtol=rtol)
    if impl in ("auto", "native"):
        return
    exact = lstmkit.LSTM(5, 6, impl="reference", dtype=torch.float64, **options).to(CUDA)
    exact.load_state_dict(theirs.state_dict())
    ours.zero_grad(set_to_none=True)  # compare_modules left its gradients
    actual = run(ours, x.to(CUDA), lengths, None, batch_first, kind != "unsorted")
    expected = run(exact, x.to(CUDA, torch.float64), lengths, None, batch_first, kind != "unsorted")
    for name in expected:
        assert_close(actual[name], expected[name], rtol=1e-5, name=f"{name} (against float64)")


def test_auto_runs_cudnn_for_plain_configurations(monkeypatch):
    """auto on CUDA goes to torch's kernel (cuDNN) for packed and projected input too, where on the CPU it may not."""
    from lstmkit.ops import functional

    for packed, projected in [(False, False), (True, False), (False, True), (True, True)]:
        assert functional.resolve_impl("auto", device=CUDA, dtype=torch.float32, packed=packed, projected=projected,
                                       hidden=512, batch=1, needs_grad=False) == "native"
    calls = []
    monkeypatch.setattr(functional, "lstm_layer_fused", lambda *a, **k: calls.append("fused"))
    module = lstmkit.LSTM(5, 6, proj_size=2).to(CUDA)
    x, lengths = make_input("unsorted", 6, 3, 5, False)
    module(pack_padded_sequence(x.to(CUDA), lengths, enforce_sorted=False))
    assert calls == []


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("packed", [False, True])
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("variant", VARIANTS)
def test_variants_fused_equals_reference_on_cuda_float64(variant, shape, packed, training):
    """The fused operator on the GPU against the reference equations on the GPU, masks from the same seed."""
    kwargs = {**VARIANTS[variant], **SHAPES[shape]}
    batch_first = kwargs.get("batch_first", False)
    g = torch.Generator().manual_seed(1)
    x = torch.randn((3, 5, 4) if batch_first else (5, 3, 4), generator=g, dtype=torch.float64)
    lengths = torch.tensor([5, 2, 4]) if packed else None
    results = []
    for impl in ("reference", "fused"):
        torch.manual_seed(0)
        module = lstmkit.LSTM(4, 6, impl=impl, dtype=torch.float64, **kwargs).to(CUDA).train(training)
        results.append(_outputs(module, x.to(CUDA), lengths, batch_first))
    for name in results[0]:
        torch.testing.assert_close(results[1][name], results[0][name], rtol=1e-10, atol=1e-10, msg=name)


@pytest.mark.parametrize("variant", ["layer_norm", "peephole", "cell_clip", "zoneout", "all"])
def test_variants_on_cuda_equal_the_cpu_in_eval(variant):
    """Deterministic (eval) variants give the CPU's float64 answers on the GPU, fused on both sides."""
    kwargs = {**VARIANTS[variant], "num_layers": 2, "bidirectional": True}
    torch.manual_seed(0)
    cpu = lstmkit.LSTM(4, 6, impl="fused", dtype=torch.float64, **kwargs).eval()
    gpu = lstmkit.LSTM(4, 6, impl="fused", dtype=torch.float64, **kwargs).to(CUDA).eval()
    gpu.load_state_dict(cpu.state_dict())
    x = torch.randn(6, 3, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    expected, actual = _outputs(cpu, x, None, False), _outputs(gpu, x.to(CUDA), None, False)
    for name in expected:
        torch.testing.assert_close(actual[name], expected[name], rtol=1e-10, atol=1e-10, msg=name)


def test_recurrent_dropout_on_cuda_keeps_units_with_their_probability():
    """The masks are drawn on the GPU with the stated meaning of p: about 1 - p of the units survive, scaled by
    1 / (1 - p) (p as realised by the mask's integer threshold, :func:`lstmkit.ops.masks.realised_probability`)."""
    p = 0.3
    mask = dropout_mask((4000, 64), p, dtype=torch.float32, device=CUDA)
    assert mask.device.type == "cuda"
    values = torch.unique(mask).tolist()
    assert len(values) == 2 and values[0] == 0.0 and values[1] == pytest.approx(dropout_scale(p)), values
    kept = (mask != 0).float().mean().item()
    assert abs(kept - (1 - p)) < 0.01, kept


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_autocast_on_cuda_matches_torch(dtype):
    """Under torch.autocast("cuda"), plain lstmkit.LSTM is torch's kernel in the autocast dtype: same dtype, same
    values as torch.nn.LSTM."""
    torch.manual_seed(0)
    theirs = torch.nn.LSTM(16, 32, num_layers=2).to(CUDA)
    ours = lstmkit.LSTM(16, 32, num_layers=2).to(CUDA)
    ours.load_state_dict(theirs.state_dict())
    x = torch.randn(9, 4, 16, device=CUDA)
    with torch.autocast("cuda", dtype=dtype):
        assert_same_as_torch(lambda: theirs(x), lambda: ours(x), rtol=1e-2)


def test_autocast_on_cuda_with_a_variant_stays_close_to_float32():
    """A variant under CUDA autocast (the operator keeps its inputs' dtype there): finite, within bfloat16's
    rounding of the float32 answer, gradients flow to every parameter."""
    torch.manual_seed(0)
    module = lstmkit.LSTM(16, 32, layer_norm=True, peephole=True).to(CUDA)
    x = torch.randn(9, 4, 16, device=CUDA)
    expected, _ = module(x)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        out, (h, c) = module(x)
    assert torch.isfinite(out).all()
    assert (out.float() - expected).abs().max().item() < 5e-2
    out.float().sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in module.parameters())


def test_cell_on_cuda_equals_torch_and_the_cpu():
    torch.manual_seed(0)
    theirs = torch.nn.LSTMCell(5, 6).to(CUDA)
    ours = lstmkit.LSTMCell(5, 6).to(CUDA)
    ours.load_state_dict(theirs.state_dict())
    x = torch.randn(3, 5, device=CUDA)
    assert_same_as_torch(lambda: theirs(x), lambda: ours(x))
    cell = lstmkit.LSTMCell(5, 6, layer_norm=True, peephole=True, dtype=torch.float64)
    expected = cell(x.double().cpu())
    actual = cell.to(CUDA)(x.double())
    for a, e in zip(actual, expected):
        torch.testing.assert_close(a.cpu(), e, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("module", ["lstm", "cell"])
def test_state_on_another_device_is_refused_like_torch(module):
    torch.manual_seed(0)
    if module == "lstm":
        theirs, ours = torch.nn.LSTM(5, 6).to(CUDA), lstmkit.LSTM(5, 6).to(CUDA)
        x, state = torch.randn(4, 2, 5, device=CUDA), (torch.zeros(1, 2, 6), torch.zeros(1, 2, 6))
    else:
        theirs, ours = torch.nn.LSTMCell(5, 6).to(CUDA), lstmkit.LSTMCell(5, 6).to(CUDA)
        x, state = torch.randn(2, 5, device=CUDA), (torch.zeros(2, 6), torch.zeros(2, 6))
    ours.load_state_dict(theirs.state_dict())
    with pytest.raises(Exception) as theirs_error:
        theirs(x, state)
    with pytest.raises(Exception) as ours_error:
        ours(x, state)
    assert "cpu" in str(ours_error.value) and "cuda" in str(ours_error.value), str(ours_error.value)
    assert type(ours_error.value) is type(theirs_error.value)


@pytest.mark.parametrize("options", [dict(layer_norm=True), dict(proj_size=4, impl="fused")], ids=["layer_norm", "proj"])
def test_compiled_on_cuda_equals_eager(options):
    """torch.compile over the operator on the GPU (inductor with Triton): one graph, eager's values and gradients."""
    torch.manual_seed(0)
    module = lstmkit.LSTM(8, 16, num_layers=2, **options).to(CUDA)
    x = torch.randn(6, 3, 8, device=CUDA)

    def step(fn):
        for p in module.parameters():
            p.grad = None
        out, (h, c) = fn(x)
        (out.square().sum() + c.sum()).backward()
        return [out, h, c] + [p.grad.clone() for p in module.parameters()]

    expected = step(module)
    torch._dynamo.reset()
    actual = step(torch.compile(module, fullgraph=True))
    for a, e in zip(actual, expected):
        assert_close(a, e, rtol=1e-4)


def test_bench_cuda_times_every_peer(tmp_path):
    """benchmarks/bench_cuda.py runs on the GPU and reports each peer against torch.nn.LSTM."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    bench = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_cuda.py"
    report = tmp_path / "cuda.json"
    done = subprocess.run([sys.executable, str(bench), "--quick", "--repeats", "1", "--json", str(report)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    records = json.loads(report.read_text())["records"]
    assert {r["peer"] for r in records} == {"torch", "lstmkit", "fused"}
    assert {r["mode"] for r in records} == {"training", "inference"}
    assert all(r["ms"] > 0 for r in records)
    assert all(r["ratio"] == 1.0 for r in records if r["peer"] == "torch")
    done = subprocess.run([sys.executable, str(bench), "--accuracy"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    fused = [line for line in done.stdout.splitlines() if "lstmkit fused" in line]
    assert len(fused) == 3 and all(max(float(v) for v in line.split()[-4:]) < 1e-4 for line in fused), done.stdout
