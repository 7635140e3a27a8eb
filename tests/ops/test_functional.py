"""lstm_layer dispatch: every impl agrees, including torch's kernel run in reverse over packed rows."""

from __future__ import annotations

import pytest
import torch

from helpers import FUSED_KERNELS
from lstmkit.ops import lstm_layer, resolve_impl, use_fused_backend
from lstmkit.ops.reference import Variant, lstm_layer_ref, lstm_layer_scan


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("packed", [False, True])
@pytest.mark.parametrize("proj", [0, 2])
def test_every_impl_agrees(reverse, packed, proj):
    torch.manual_seed(0)
    H, P = 5, proj or 5
    sizes = [4, 4, 3, 1, 1] if packed else None
    x = torch.randn(sum(sizes), 3) if packed else torch.randn(5, 4, 3)
    w = [torch.randn(4 * H, 3), torch.randn(4 * H, P), torch.randn(4 * H), None, torch.randn(P, H) if proj else None]
    hx = (torch.randn(4, P), torch.randn(4, H))
    results = {impl: lstm_layer(x, hx, *w, reverse=reverse, batch_sizes=sizes, impl=impl) for impl in ("native", "fused", "reference", "auto")}
    ref_out, (ref_h, ref_c) = results["reference"]
    for impl, (out, (h, c)) in results.items():
        torch.testing.assert_close(out, ref_out, rtol=1e-5, atol=1e-6, msg=impl)
        torch.testing.assert_close(h, ref_h, rtol=1e-5, atol=1e-6, msg=impl)
        torch.testing.assert_close(c, ref_c, rtol=1e-5, atol=1e-6, msg=impl)


@pytest.mark.parametrize("reverse", [False, True])
def test_scan_layer_equals_the_python_loop(reverse):
    """lstm_layer_scan (the reference step looped by torch's scan: what torch.export runs for impl 'reference' and
    'native') equals lstm_layer_ref with every variant, zoneout masks scanned over time: outputs and gradients,
    float64."""
    torch.manual_seed(0)
    T, B, I, H, P = 4, 3, 5, 6, 2
    x = torch.randn(T, B, I, dtype=torch.float64, requires_grad=True)
    hx = (torch.randn(B, P, dtype=torch.float64), torch.randn(B, H, dtype=torch.float64))
    shapes = [(4 * H, I), (4 * H, P), (4 * H,), (4 * H,), (P, H)]
    w = [torch.randn(*shape, dtype=torch.float64, requires_grad=True) for shape in shapes]

    def pair(size):
        return (torch.randn(size, dtype=torch.float64), torch.randn(size, dtype=torch.float64))

    variant = Variant(peephole=torch.randn(3, H, dtype=torch.float64), ln_ih=pair(4 * H), ln_hh=pair(4 * H),
                      ln_c=pair(H), recurrent_mask=torch.rand(B, P, dtype=torch.float64),
                      zoneout_h=(torch.rand(T, B, P) < 0.3).double(), zoneout_c=0.2, cell_clip=0.7)

    def run(layer):
        out, (h, c) = layer(x, hx, *w, reverse=reverse, variant=variant)
        return (out, h, c, *torch.autograd.grad((out * out).sum() + h.sum() + c.sin().sum(), [x, *w]))

    for k, (a, e) in enumerate(zip(run(lstm_layer_scan), run(lstm_layer_ref))):
        torch.testing.assert_close(a, e, rtol=1e-12, atol=1e-12, msg=f"result {k}")
    with pytest.raises(ValueError, match="lstm_layer_scan takes padded input"):
        lstm_layer_scan(x[0], hx, *w, batch_sizes=[3])


def test_missing_hx_is_zeros():
    torch.manual_seed(0)
    x, w_ih, w_hh = torch.randn(4, 2, 3), torch.randn(8, 3), torch.randn(8, 2)
    zeros = (torch.zeros(2, 2), torch.zeros(2, 2))
    for impl in ("native", "fused", "reference"):
        torch.testing.assert_close(lstm_layer(x, None, w_ih, w_hh, impl=impl)[0], lstm_layer(x, zeros, w_ih, w_hh, impl=impl)[0])


def test_auto_resolution_on_cpu():
    cpu = torch.device("cpu")
    assert resolve_impl("auto", device=cpu, dtype=torch.float32, packed=False, projected=False) == "native"
    assert resolve_impl("auto", device=cpu, dtype=torch.float32, packed=True, projected=False) == "fused"
    assert resolve_impl("auto", device=cpu, dtype=torch.float32, packed=False, projected=True) == "fused"
    assert resolve_impl("auto", device=cpu, dtype=torch.float64, packed=False, projected=False) == "fused"
    assert resolve_impl("auto", device=torch.device("cuda"), dtype=torch.float32, packed=True, projected=True) == "native"
    assert resolve_impl("reference", device=cpu, dtype=torch.float32, packed=False, projected=False) == "reference"


def test_auto_keeps_torch_loop_where_a_step_is_too_small_for_the_fused_path():
    """Measured rule for the Python kernel (RESULTS.md, "auto's choice where torch leaves oneDNN"): torch's C++
    fallback loop wins without grad for small hidden sizes or one sequence; the fused path everywhere else."""
    cpu = torch.device("cpu")
    with use_fused_backend("python"):

        def auto(hidden, batch, needs_grad, packed=True, projected=False, dtype=torch.float32):
            return resolve_impl("auto", device=cpu, dtype=dtype, packed=packed, projected=projected, hidden=hidden,
                                batch=batch, needs_grad=needs_grad)

        assert auto(128, 16, needs_grad=True) == "fused"  # training: the fused backward pays off
        assert auto(128, 1, needs_grad=True) == "fused"
        assert auto(128, 1, needs_grad=True, packed=False, projected=True) == "fused"
        assert auto(256, 64, needs_grad=False) == "native"  # inference, small packed steps
        assert auto(384, 4, needs_grad=False) == "fused"
        assert auto(384, 16, needs_grad=False, packed=False, projected=True) == "native"
        assert auto(512, 16, needs_grad=False, packed=False, projected=True) == "fused"
        assert auto(256, 16, needs_grad=False, packed=False, dtype=torch.float64) == "native"
        assert auto(1024, 1, needs_grad=False, packed=False, projected=True) == "fused"
        assert auto(512, 1, needs_grad=False, packed=False, projected=True) == "native"
        # without the sizes (the old signature) auto takes the fused path, as before
        assert resolve_impl("auto", device=cpu, dtype=torch.float32, packed=True, projected=False, needs_grad=False) == "fused"
        # a plain padded float32 call stays on oneDNN whatever the sizes
        assert auto(8, 1, needs_grad=False, packed=False) == "native"


@pytest.mark.skipif("cpp" not in FUSED_KERNELS, reason="the C++ extension is not built")
def test_auto_with_the_cpp_kernel_takes_the_fused_path_for_every_batch():
    """Measured rule for the C++ kernel (RESULTS.md "auto's boundary with the C++ kernel", 1 and 2 threads): without
    grad it beats torch's fallback loop for every float32 batch of more than one sequence; torch keeps one projected
    sequence above H = 512 (RESULTS.md "Session 9: final tables on the merged kernel"), and float64 inference of more
    than four sequences. Training: the fused path everywhere."""
    cpu = torch.device("cpu")

    def auto(hidden, batch, needs_grad, packed=True, projected=False, dtype=torch.float32):
        return resolve_impl("auto", device=cpu, dtype=dtype, packed=packed, projected=projected, hidden=hidden,
                            batch=batch, needs_grad=needs_grad)

    with use_fused_backend("cpp"):
        assert auto(128, 4, needs_grad=False) == "fused"
        assert auto(128, 1, needs_grad=False, packed=False, projected=True) == "fused"
        assert auto(512, 1, needs_grad=False, packed=False, projected=True) == "fused"  # fused 0.84x (session 9)
        assert auto(1024, 1, needs_grad=False, packed=False, projected=True) == "native"  # fused 1.12-1.17x
        assert auto(512, 64, needs_grad=False, packed=False, dtype=torch.float64) == "native"
        assert auto(128, 16, needs_grad=False, packed=False, dtype=torch.float64) == "native"  # fused 1.03x
        assert auto(512, 4, needs_grad=False, packed=False, dtype=torch.float64) == "fused"  # fused 0.92x
        assert auto(1024, 1, needs_grad=False, packed=False, dtype=torch.float64) == "fused"  # fused 0.98x
        assert auto(384, 1, needs_grad=False, packed=False, projected=True) == "fused"  # fused 0.85x
        assert auto(1024, 4, needs_grad=True) == "fused"  # training: fused everywhere (0.41x here)
        assert auto(128, 1, needs_grad=True, packed=False, dtype=torch.float64) == "fused"
        assert auto(8, 1, needs_grad=False, packed=False) == "native"  # plain padded float32: oneDNN


def _run_packed(monkeypatch, lengths: list[int], hidden: int):
    """lstmkit.LSTM(3, hidden) with impl='auto' and torch.nn.LSTM with the same weights on one packed batch, in the
    current grad mode. Returns (whether the fused layer ran, lstmkit's output data, torch's output data)."""
    import lstmkit
    from lstmkit.ops import functional
    from torch.nn.utils.rnn import pack_padded_sequence

    calls = []
    fused = functional.lstm_layer_fused
    monkeypatch.setattr(functional, "lstm_layer_fused", lambda *a, **k: calls.append(1) or fused(*a, **k))
    torch.manual_seed(0)
    module = lstmkit.LSTM(3, hidden)
    reference = torch.nn.LSTM(3, hidden)
    reference.load_state_dict(module.state_dict())
    packed = pack_padded_sequence(torch.randn(max(lengths), len(lengths), 3), torch.tensor(lengths))
    out = module(packed)[0].data
    return bool(calls), out, reference(packed)[0].data


@pytest.mark.parametrize("kernel", FUSED_KERNELS)
@pytest.mark.parametrize("grad", [True, False])
def test_module_auto_picks_by_grad_mode(grad, kernel, monkeypatch):
    """A small packed batch: in training lstmkit.LSTM(impl='auto') runs the fused layer; under no_grad torch's
    with the Python kernel, still the fused layer with the C++ one."""
    with torch.set_grad_enabled(grad), use_fused_backend(kernel):
        ran_fused, out, expected = _run_packed(monkeypatch, [6, 5, 3, 2], hidden=16)
    assert ran_fused == (grad or kernel == "cpp")
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("lengths, native", [([5, 5, 5], True), ([1], True), ([5, 4, 2], False)])
def test_packed_sequences_of_one_length_stay_on_torchs_kernel(lengths, native, monkeypatch):
    """torch runs a PackedSequence whose sequences all have the same length on oneDNN, like padded input; auto
    keeps it there even in training, and takes the fused path for ragged batches."""
    ran_fused, out, expected = _run_packed(monkeypatch, lengths, hidden=8)
    out.sum().backward()
    assert ran_fused != native
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-6)


def test_torch_autocasts_plain_stacks_off_the_cpu():
    """Off the CPU a plain stack is torch's kernel, and torch's autocast casts it (for cuDNN it packs the cast
    weights into one buffer); lstmkit casts itself only where its own kernels run: on the CPU, with a variant,
    recurrent dropout, lengths, or impl fused/reference. (tests/nn/test_cuda.py checks the result on a GPU.)"""
    from lstmkit.ops.functional import _autocast_by_torch
    from lstmkit.ops.reference import NO_VARIANT, Variant

    gpu_like, cpu = torch.empty(2, 1, 3, device="meta"), torch.empty(2, 1, 3)
    plain = [NO_VARIANT, NO_VARIANT]
    assert _autocast_by_torch(gpu_like, "auto", plain, 0.0, None)
    assert _autocast_by_torch(gpu_like, "native", None, 0.0, None)
    assert not _autocast_by_torch(cpu, "auto", plain, 0.0, None)
    assert not _autocast_by_torch(gpu_like, "fused", plain, 0.0, None)
    assert not _autocast_by_torch(gpu_like, "reference", plain, 0.0, None)
    assert not _autocast_by_torch(gpu_like, "auto", None, 0.3, None)  # recurrent dropout
    assert not _autocast_by_torch(gpu_like, "auto", plain, 0.0, torch.tensor([2]))  # lengths
    assert not _autocast_by_torch(gpu_like, "auto", [NO_VARIANT, Variant(cell_clip=1.0)], 0.0, None)
