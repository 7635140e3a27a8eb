"""lstm_layer dispatch: every impl agrees, including torch's kernel run in reverse over packed rows."""

from __future__ import annotations

import pytest
import torch

from lstmkit.ops import lstm_layer, resolve_impl


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
