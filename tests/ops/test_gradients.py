"""gradcheck in float64 for the fused and reference paths, and the fused path against its reference twin."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch.autograd import gradcheck

from lstmkit.ops import lstm_layer_fused, lstm_layer_ref

pytestmark = pytest.mark.usefixtures("fused_kernel")  # each test on the C++ and the Python kernel


def _args(T=4, B=3, I=2, H=3, P=0, bias=True, packed=False, seed=0):
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=g, dtype=torch.float64, requires_grad=True)  # noqa: E731
    proj = P or H
    sizes = [3, 3, 2, 1][:T] if packed else None
    x = r(sum(sizes), I) if packed else r(T, B, I)
    weights = [r(4 * H, I), r(4 * H, proj), r(4 * H) if bias else None, r(4 * H) if bias else None, r(P, H) if P else None]
    return x, (r(B, proj), r(B, H)), weights, sizes


CONFIGS = list(itertools.product([False, True], [False, True], [0, 2], [True, False]))


@pytest.mark.parametrize("layer", [lstm_layer_fused, lstm_layer_ref], ids=["fused", "reference"])
@pytest.mark.parametrize("reverse,packed,proj,bias", CONFIGS)
def test_gradcheck(layer, reverse, packed, proj, bias):
    x, hx, weights, sizes = _args(P=proj, bias=bias, packed=packed)

    present = [w for w in weights if w is not None]

    def g(x, h0, c0, *given):
        it = iter(given)
        full = [next(it) if w is not None else None for w in weights]
        out, (h, c) = layer(x, (h0, c0), *full, reverse=reverse, batch_sizes=sizes)
        return out, h, c

    assert gradcheck(g, (x, *hx, *present), eps=1e-6, atol=1e-7, rtol=1e-5)


@pytest.mark.parametrize("reverse,packed,proj,bias", CONFIGS)
def test_fused_equals_reference_float64(reverse, packed, proj, bias):
    x, hx, weights, sizes = _args(T=4, B=3, I=5, H=6, P=proj, bias=bias, packed=packed, seed=3)
    results = []
    for layer in (lstm_layer_ref, lstm_layer_fused):
        tensors = [x, *hx] + [w for w in weights if w is not None]
        for t in tensors:
            t.grad = None
        out, (h, c) = layer(x, hx, *weights, reverse=reverse, batch_sizes=sizes)
        (out.sin().sum() + (h * h).sum() + c.cos().sum()).backward()
        results.append([out, h, c] + [t.grad.clone() for t in tensors])
    for a, b in zip(*results):
        torch.testing.assert_close(b, a, rtol=1e-12, atol=1e-12)


def test_fused_backward_twice_with_retain_graph():
    """retain_graph keeps the saved buffers: a second backward gives the same gradients; without it, torch's error."""
    x, hx, weights, sizes = _args()
    out, _ = lstm_layer_fused(x, hx, *weights)
    first = torch.autograd.grad(out.sum(), weights[0], retain_graph=True)[0]
    second = torch.autograd.grad(out.sum(), weights[0])[0]
    torch.testing.assert_close(first, second)
    with pytest.raises(RuntimeError, match=r"backward through the graph a second time"):
        out.sum().backward()


def test_fused_only_final_state_used():
    """Gradients flow when only h_n / c_n take part in the loss (grad_output is None)."""
    x, hx, weights, _ = _args()
    ref = torch.autograd.grad(lstm_layer_ref(x, hx, *weights)[1][0].sum(), [x, *hx])
    fused = torch.autograd.grad(lstm_layer_fused(x, hx, *weights)[1][0].sum(), [x, *hx])
    for a, b in zip(ref, fused):
        torch.testing.assert_close(b, a)


def test_fused_inference_keeps_no_buffers_and_matches():
    x, hx, weights, _ = _args()
    with torch.no_grad():
        out_nograd, (h1, c1) = lstm_layer_fused(x, hx, *weights)
    with torch.inference_mode():
        out_inf, (h2, c2) = lstm_layer_fused(x, hx, *weights)
    out_ref, (h3, c3) = lstm_layer_ref(x, hx, *weights)
    assert not out_nograd.requires_grad
    for a, b in ((out_nograd, out_ref), (out_inf, out_ref), (h1, h3), (c2, c3)):
        torch.testing.assert_close(a, b.detach())
