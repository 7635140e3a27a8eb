"""Dropout between layers, and weight dropout: identity in eval, torch's masks and statistics in training."""

from __future__ import annotations

import copy
import io
import pickle
import warnings

import pytest
import torch

import lstmkit
from lstmkit.regularize import drop_weight


def _pair(impl, **options):
    torch.manual_seed(0)
    theirs = torch.nn.LSTM(4, 6, num_layers=3, dropout=0.4, **options)
    ours = lstmkit.LSTM(4, 6, num_layers=3, dropout=0.4, impl=impl, **options)
    ours.load_state_dict(theirs.state_dict())
    return theirs, ours


@pytest.mark.parametrize("impl", ["native", "fused", "reference"])
def test_dropout_is_identity_in_eval(impl):
    theirs, ours = _pair(impl)
    theirs.eval()
    ours.eval()
    x = torch.randn(7, 3, 4)
    out, (h, c) = ours(x)
    again, _ = ours(x)
    assert torch.equal(out, again)
    torch.testing.assert_close(out, theirs(x)[0], rtol=1e-5, atol=1e-6)
    nodrop = lstmkit.LSTM(4, 6, num_layers=3, impl=impl)
    nodrop.load_state_dict(ours.state_dict())
    torch.testing.assert_close(nodrop(x)[0], out, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("impl", ["native", "fused", "reference"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_training_dropout_draws_torchs_masks(impl, bidirectional):
    """Same seed, same masks: torch's kernel drops the same elements of each layer's output as our loop."""
    theirs, ours = _pair(impl, bidirectional=bidirectional)
    x = torch.randn(7, 3, 4)
    torch.manual_seed(42)
    expected = theirs(x)[0]
    torch.manual_seed(42)
    actual = ours(x)[0]
    torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-6)
    torch.manual_seed(43)
    assert not torch.allclose(ours(x)[0], actual), "a new seed must give new masks"


@pytest.mark.parametrize("impl", ["fused", "reference"])
def test_training_dropout_statistics(impl, monkeypatch):
    """Over many draws (other seeds than torch's) the outputs spread as much as torch's, and about p of the layer-1
    inputs are dropped. Dropout keeps the mean, so comparing means could not tell p = 0 from p = 0.4 (the mean
    difference measured 0.003 for both); the spread across draws grows with p (ratio 0 at p = 0, 0.80 at 0.3,
    1.21 at 0.5 against torch's 0.4, 0.99 when right)."""
    theirs, ours = _pair(impl)
    x = torch.randn(5, 64, 4)
    torch.manual_seed(0)
    spread_theirs = torch.stack([theirs(x)[0] for _ in range(40)]).std(0).mean()
    torch.manual_seed(1)
    spread_ours = torch.stack([ours(x)[0] for _ in range(40)]).std(0).mean()
    assert abs(spread_ours / spread_theirs - 1) < 0.08
    # the dropped fraction, seen through a 2-layer LSTM whose second layer reads only dropped inputs
    probe = lstmkit.LSTM(4, 6, num_layers=2, dropout=0.4, impl=impl)
    seen = []
    original = torch.nn.functional.dropout

    def spy(t, p, training=True, inplace=False):
        out = original(t, p, training, inplace)
        seen.append((out == 0).float().mean().item())
        return out

    monkeypatch.setattr(torch.nn.functional, "dropout", spy)
    probe(torch.randn(20, 50, 4))
    assert len(seen) == 1 and abs(seen[0] - 0.4) < 0.03


@pytest.mark.parametrize("impl", ["auto", "fused", "reference"])
def test_weight_dropout_mask_and_gradient(impl):
    torch.manual_seed(0)
    lstm = lstmkit.LSTM(3, 5, weight_dropout=0.5, impl=impl)
    raw = lstm.weight_hh_l0.detach().clone()
    x = torch.randn(6, 2, 3)
    out, _ = lstm(x)
    out.sum().backward()
    assert torch.equal(lstm.weight_hh_l0.detach(), raw), "the raw parameter is never modified"
    grad = lstm.weight_hh_l0.grad
    dropped = grad == 0
    assert 0.35 < dropped.float().mean() < 0.65, "about half of R's entries got no gradient: they were dropped"
    # the mask is one per call, the same at every time step: replaying the call with that mask reproduces it
    torch.manual_seed(1)
    first, _ = lstm(x)
    torch.manual_seed(1)
    second, _ = lstm(x)
    assert torch.equal(first, second)
    lstm.eval()
    plain = torch.nn.LSTM(3, 5)
    plain.load_state_dict(lstm.state_dict())
    torch.testing.assert_close(lstm(x)[0], plain(x)[0], rtol=1e-5, atol=1e-6)


def test_weight_dropout_equals_running_with_the_dropped_weight():
    """In training the layer computes exactly a plain LSTM whose R is the dropped-and-rescaled copy."""
    torch.manual_seed(0)
    lstm = lstmkit.LSTM(3, 5, weight_dropout=0.3)
    x = torch.randn(6, 2, 3)
    torch.manual_seed(7)
    out, _ = lstm(x)
    torch.manual_seed(7)
    dropped = drop_weight(lstm.weight_hh_l0, 0.3)
    kept = dropped != 0
    torch.testing.assert_close(dropped[kept], lstm.weight_hh_l0[kept] / 0.7)
    plain = torch.nn.LSTM(3, 5)
    state = lstm.state_dict()
    state["weight_hh_l0"] = dropped.detach()
    plain.load_state_dict(state)
    torch.testing.assert_close(out, plain(x)[0], rtol=1e-5, atol=1e-6)


def test_weight_dropout_survives_mode_switches_copies_and_state_dicts():
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        lstm = lstmkit.LSTM(3, 5, num_layers=2, weight_dropout=0.5)
        x = torch.randn(4, 2, 3)
        lstm.train()
        lstm(x)[0].sum().backward()
        lstm.eval()
        reference = lstm(x)[0]
        lstm.train()
        lstm(x)
        lstm.eval()
        torch.testing.assert_close(lstm(x)[0], reference)
        moved = copy.deepcopy(lstm).to(torch.float64)
        assert moved.weight_dropout == 0.5 and isinstance(moved.weight_hh_l0, torch.nn.Parameter)
        torch.testing.assert_close(moved(x.double())[0].float(), reference, rtol=1e-5, atol=1e-6)
        moved.train()
        moved(x.double())[0].sum().backward()
        assert moved.weight_hh_l0.grad.dtype == torch.float64
        doubled = copy.deepcopy(lstm).double()
        torch.testing.assert_close(doubled(x.double())[0].float(), reference, rtol=1e-5, atol=1e-6)
        clone = pickle.loads(pickle.dumps(lstm))
        torch.testing.assert_close(clone(x)[0], reference)
        buffer = io.BytesIO()
        torch.save(lstm.state_dict(), buffer)
        buffer.seek(0)
        fresh = lstmkit.LSTM(3, 5, num_layers=2, weight_dropout=0.5).eval()
        fresh.load_state_dict(torch.load(buffer, weights_only=True))
        torch.testing.assert_close(fresh(x)[0], reference)
        # a plain torch.nn.LSTM state_dict loads into a weight-dropped module and back
        plain = torch.nn.LSTM(3, 5, num_layers=2)
        fresh.load_state_dict(plain.state_dict())
        torch.testing.assert_close(fresh(x)[0], plain(x)[0])
        plain.load_state_dict(lstm.state_dict())
        assert set(lstm.state_dict()) == set(plain.state_dict())


def test_forget_bias_added_to_forget_rows_only():
    torch.manual_seed(3)
    base = lstmkit.LSTM(3, 4, num_layers=2, bidirectional=True)
    torch.manual_seed(3)
    shifted = lstmkit.LSTM(3, 4, num_layers=2, bidirectional=True, forget_bias=1.0)
    for (name, a), b in zip(base.state_dict().items(), shifted.state_dict().values()):
        difference = b - a
        if name.startswith("bias_ih"):
            torch.testing.assert_close(difference[4:8], torch.ones(4))
            assert difference[:4].abs().max() == 0 and difference[8:].abs().max() == 0
        else:
            assert difference.abs().max() == 0, name
    with pytest.raises(ValueError, match=r"forget_bias=1.0 needs bias=True"):
        lstmkit.LSTM(3, 4, bias=False, forget_bias=1.0)
    with pytest.raises(ValueError, match=r"weight_dropout must be a probability in \[0, 1\), got 1.0"):
        lstmkit.LSTM(3, 4, weight_dropout=1.0)
