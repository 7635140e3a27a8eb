"""Each variant's one-step equations, written out by hand here and checked against every implementation.

These pin what the options mean independently of the code: the fused and reference paths are compared with the
equations below, not with each other, at probabilities other than 0.5 (where p and 1 - p, 1/p and 1/(1-p) agree).
"""

from __future__ import annotations

import itertools

import pytest
import torch

import lstmkit

IMPLS = ["fused", "reference"]
F64 = dict(dtype=torch.float64)


def hand_step(x, h, c, w_ih, w_hh, b_ih, b_hh, w_hr=None, h_fed=None):
    """One plain LSTM step written out: gates in torch's order i, f, g, o along the 4H rows.

    ``h_fed`` is the h the recurrence sees (recurrent dropout changes it); returns (h', c') before any zoneout."""
    H = c.shape[-1]
    h_fed = h if h_fed is None else h_fed
    z = x @ w_ih.T + b_ih + h_fed @ w_hh.T + b_hh  # (B, 4H)
    i = torch.sigmoid(z[:, 0 * H : 1 * H])
    f = torch.sigmoid(z[:, 1 * H : 2 * H])
    g = torch.tanh(z[:, 2 * H : 3 * H])
    o = torch.sigmoid(z[:, 3 * H : 4 * H])
    c_new = f * c + i * g
    h_new = o * torch.tanh(c_new)
    if w_hr is not None:
        h_new = h_new @ w_hr.T
    return h_new, c_new


def _weights(module, suffix="_l0"):
    p = dict(module.named_parameters())
    return [p[f"{k}{suffix}"] if f"{k}{suffix}" in p else None for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_hr")]


def _state(B, P, H, seed=2):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(B, P, generator=g, **F64), torch.randn(B, H, generator=g, **F64)


# ------------------------------------------------------------------------------------------------ recurrent dropout


@pytest.mark.parametrize("impl", IMPLS + ["auto"])
def test_recurrent_dropout_feeds_back_h_times_one_mask_scaled_by_one_over_one_minus_p(impl):
    """R (h ⊙ m) with m in {0, 1/(1-p)}, one m per sequence for all steps: for every sequence exactly the
    trajectory of one such mask reproduces all T outputs. p = 0.375 = 3/8 is drawn exactly (the masks round p to
    a multiple of 2**-16), so survivors are exactly 1.6; a 1/p scaling (2.67) matches no mask."""
    p, T, B, I, H = 0.375, 3, 6, 2, 3
    torch.manual_seed(0)
    lstm = lstmkit.LSTM(I, H, recurrent_dropout=p, impl=impl, **F64).train()
    w_ih, w_hh, b_ih, b_hh, _ = _weights(lstm)
    x = torch.randn(T, B, I, **F64)
    h0, c0 = _state(B, H, H)
    torch.manual_seed(5)
    with torch.no_grad():
        out, (h_n, c_n) = lstm(x, (h0[None], c0[None]))
    survivors = 0
    for b in range(B):
        matches = []
        for bits in itertools.product((0.0, 1.0), repeat=H):
            m = torch.tensor(bits, **F64) / (1 - p)  # (H,)
            h, c = h0[b : b + 1], c0[b : b + 1]
            error = 0.0
            for t in range(T):
                h, c = hand_step(x[t, b : b + 1], h, c, w_ih, w_hh, b_ih, b_hh, h_fed=h * m)
                error = max(error, (h - out[t, b]).abs().max().item())
            error = max(error, (c - c_n[0, b]).abs().max().item())
            if error < 1e-12:
                matches.append(bits)
        assert len(matches) == 1, f"sequence {b}: {len(matches)} masks in {{0, 1/(1-p)}}^H reproduce the outputs"
        survivors += sum(matches[0])
    assert 0 < survivors < B * H, "the draw must keep some units and drop some, or the scaling is not tested"


# ------------------------------------------------------------------------------------------------ zoneout


def _zoneout_layer(impl, proj, zoneout, training):
    torch.manual_seed(0)
    return lstmkit.LSTM(3, 4, proj_size=proj, zoneout=zoneout, impl=impl, **F64).train(training)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("proj", [0, 2])
def test_zoneout_in_eval_is_p_times_previous_plus_one_minus_p_times_new(impl, proj):
    """Eval: h_t = p_h h_{t-1} + (1 - p_h) h'_t and c_t = p_c c_{t-1} + (1 - p_c) c'_t, where h'_t is computed
    from the new cell c'_t before zoneout (Krueger et al. 2017). Two steps, p_h = 0.3, p_c = 0.15."""
    p_h, p_c, T, B = 0.3, 0.15, 2, 3
    lstm = _zoneout_layer(impl, proj, (p_h, p_c), training=False)
    w_ih, w_hh, b_ih, b_hh, w_hr = _weights(lstm)
    P = proj or 4
    x = torch.randn(T, B, 3, **F64)
    h, c = _state(B, P, 4)
    with torch.no_grad():
        out, (h_n, c_n) = lstm(x, (h[None], c[None]))
    for t in range(T):
        h_new, c_new = hand_step(x[t], h, c, w_ih, w_hh, b_ih, b_hh, w_hr)
        h = p_h * h + (1 - p_h) * h_new
        c = p_c * c + (1 - p_c) * c_new
        torch.testing.assert_close(out[t], h, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(h_n[0], h, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(c_n[0], c, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("impl", IMPLS)
def test_zoneout_in_training_keeps_the_previous_value_with_probability_p(impl):
    """Training: each unit is either its previous value (probability p) or the new one, never a mixture."""
    p_h, p_c, B, H = 0.3, 0.7, 64, 16
    torch.manual_seed(0)
    lstm = lstmkit.LSTM(3, H, zoneout=(p_h, p_c), impl=impl, **F64).train()
    w_ih, w_hh, b_ih, b_hh, _ = _weights(lstm)
    x = torch.randn(1, B, 3, **F64)
    h0, c0 = _state(B, H, H)
    with torch.no_grad():
        _, (h1, c1) = lstm(x, (h0[None], c0[None]))
    h_new, c_new = hand_step(x[0], h0, c0, w_ih, w_hh, b_ih, b_hh)
    for got, old, new, p in ((h1[0], h0, h_new, p_h), (c1[0], c0, c_new, p_c)):
        kept = (got - old).abs() < 1e-12
        updated = (got - new).abs() < 1e-12
        assert torch.all(kept ^ updated), "every unit is exactly its previous or its new value"
        n = kept.numel()
        assert abs(kept.double().mean().item() - p) < 4 * (p * (1 - p) / n) ** 0.5


@pytest.mark.parametrize("impl", IMPLS + ["auto"])
def test_cell_zoneout_equations_in_eval_and_training(impl):
    p_h, p_c, B, H = 0.3, 0.15, 256, 8
    torch.manual_seed(0)
    cell = lstmkit.LSTMCell(3, H, zoneout=(p_h, p_c), impl=impl, **F64)
    p = dict(cell.named_parameters())
    x = torch.randn(B, 3, **F64)
    h0, c0 = _state(B, H, H)
    h_new, c_new = hand_step(x, h0, c0, p["weight_ih"], p["weight_hh"], p["bias_ih"], p["bias_hh"])
    with torch.no_grad():
        h1, c1 = cell.eval()(x, (h0, c0))
        torch.testing.assert_close(h1, p_h * h0 + (1 - p_h) * h_new, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(c1, p_c * c0 + (1 - p_c) * c_new, rtol=1e-12, atol=1e-12)
        h1, c1 = cell.train()(x, (h0, c0))
    for got, old, new, prob in ((h1, h0, h_new, p_h), (c1, c0, c_new, p_c)):
        kept = (got - old).abs() < 1e-12
        assert torch.all(kept ^ ((got - new).abs() < 1e-12))
        assert abs(kept.double().mean().item() - prob) < 4 * (prob * (1 - prob) / kept.numel()) ** 0.5


# ------------------------------------------------------------------------------------------------ forget bias


@pytest.mark.parametrize("impl", IMPLS + ["auto", "native"])
def test_cell_forget_bias_goes_to_the_forget_rows_only(impl):
    """LSTMCell(forget_bias=b) is the plain cell with b added to bias_ih[H:2H], the f rows, and nothing else."""
    H, shift = 4, 1.5
    torch.manual_seed(3)
    base = lstmkit.LSTMCell(3, H, impl=impl, **F64)
    torch.manual_seed(3)
    shifted = lstmkit.LSTMCell(3, H, forget_bias=shift, impl=impl, **F64)
    for (name, a), b in zip(base.state_dict().items(), shifted.state_dict().values()):
        expected = torch.zeros_like(a)
        if name == "bias_ih":
            expected[H : 2 * H] = shift
        torch.testing.assert_close(b - a, expected, rtol=0, atol=1e-15, msg=name)
    p = dict(base.named_parameters())
    x = torch.randn(2, 3, **F64)
    h0, c0 = _state(2, H, H)
    b_ih = p["bias_ih"] + torch.cat([torch.zeros(H), torch.full((H,), shift), torch.zeros(2 * H)]).double()
    h_expected, c_expected = hand_step(x, h0, c0, p["weight_ih"], p["weight_hh"], b_ih, p["bias_hh"])
    with torch.no_grad():
        h1, c1 = shifted(x, (h0, c0))
    torch.testing.assert_close(h1, h_expected, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(c1, c_expected, rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match=r"forget_bias=1.0 needs bias=True"):
        lstmkit.LSTMCell(3, 4, bias=False, forget_bias=1.0)
