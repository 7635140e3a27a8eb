"""lstm_cell_gates_ref: the reference step that also hands back its gates."""

import pytest
import torch

from lstmkit.ops.reference import lstm_cell_gates_ref, lstm_cell_ref

B, I, H, P = 3, 4, 5, 2


@pytest.mark.parametrize("projected", [False, True])
@pytest.mark.parametrize("bias", [False, True])
def test_gates_step_matches_cell_and_the_equations(projected, bias):
    torch.manual_seed(0)
    size = P if projected else H
    x, h, c = torch.randn(B, I, dtype=torch.float64), torch.randn(B, size, dtype=torch.float64), torch.randn(B, H, dtype=torch.float64)
    w_ih, w_hh = torch.randn(4 * H, I, dtype=torch.float64), torch.randn(4 * H, size, dtype=torch.float64)
    b_ih, b_hh = (torch.randn(4 * H, dtype=torch.float64), torch.randn(4 * H, dtype=torch.float64)) if bias else (None, None)
    w_hr = torch.randn(P, H, dtype=torch.float64) if projected else None

    step = lstm_cell_gates_ref(x, (h, c), w_ih, w_hh, b_ih, b_hh, w_hr)
    h_ref, c_ref = lstm_cell_ref(x, (h, c), w_ih, w_hh, b_ih, b_hh, w_hr)
    assert torch.equal(step.h, h_ref) and torch.equal(step.c, c_ref)

    # the gates, computed here gate by gate from their own rows of the weights
    pre = []
    for k in range(4):
        rows = slice(k * H, (k + 1) * H)
        z = x @ w_ih[rows].t() + h @ w_hh[rows].t()
        if bias:
            z = z + b_ih[rows] + b_hh[rows]
        pre.append(z)
    torch.testing.assert_close(step.i, torch.sigmoid(pre[0]))
    torch.testing.assert_close(step.f, torch.sigmoid(pre[1]))
    torch.testing.assert_close(step.g, torch.tanh(pre[2]))
    torch.testing.assert_close(step.o, torch.sigmoid(pre[3]))
    torch.testing.assert_close(step.c, step.f * c + step.i * step.g)
    out = step.o * torch.tanh(step.c)
    torch.testing.assert_close(step.h, out @ w_hr.t() if projected else out)
    assert step.h.shape == (B, size) and step.c.shape == (B, H)
