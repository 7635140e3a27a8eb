"""The variants: fused equals the reference twin, gradients check out, and each option means what its paper says."""

from __future__ import annotations


import pytest
import torch
import torch.nn.functional as F
from torch.autograd import gradcheck
from torch.nn.utils.rnn import pack_padded_sequence

import lstmkit
from lstmkit.ops import lstm_layer_fused, lstm_layer_ref
from lstmkit.ops.reference import Variant

pytestmark = pytest.mark.usefixtures("fused_kernel")  # each test on the C++ and the Python kernel

OPTIONS = {
    "recurrent_dropout": dict(recurrent_dropout=0.3),
    "zoneout": dict(zoneout=(0.3, 0.2)),
    "layer_norm": dict(layer_norm=True),
    "peephole": dict(peephole=True),
    "cell_clip": dict(cell_clip=0.3),
    "all": dict(recurrent_dropout=0.2, zoneout=0.15, layer_norm=True, peephole=True, cell_clip=0.5),
}
SHAPES = {
    "plain": dict(),
    "stack": dict(num_layers=2, bidirectional=True, dropout=0.3),
    "proj": dict(proj_size=3, batch_first=True),
}


def _run(module, x, lengths, seed, batch_first):
    inp = x
    if lengths is not None:
        inp = pack_padded_sequence(x, lengths, batch_first=batch_first, enforce_sorted=False)
    torch.manual_seed(seed)  # the masks
    out, (h, c) = module(inp)
    data = out.data if lengths is not None else out
    (data.sin().sum() + (h * h).sum() + c.cos().sum()).backward()
    return [data, h, c, x.grad] + [p.grad for p in module.parameters()]


@pytest.mark.parametrize("option", OPTIONS)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("packed", [False, True])
@pytest.mark.parametrize("training", [True, False])
def test_fused_equals_reference_float64(option, shape, packed, training):
    kwargs = {**OPTIONS[option], **SHAPES[shape]}
    batch_first = kwargs.get("batch_first", False)
    results = []
    for impl in ("reference", "fused"):
        torch.manual_seed(0)
        module = lstmkit.LSTM(4, 6, impl=impl, dtype=torch.float64, **kwargs).train(training)
        g = torch.Generator().manual_seed(1)
        x = torch.randn((3, 5, 4) if batch_first else (5, 3, 4), generator=g, dtype=torch.float64).requires_grad_()
        lengths = torch.tensor([5, 2, 4]) if packed else None
        results.append(_run(module, x, lengths, seed=7, batch_first=batch_first))
    for a, b in zip(*results):
        torch.testing.assert_close(b, a, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("option", OPTIONS)
def test_fused_equals_reference_float32_with_onednn_sizes(option):
    """At H = 256 the fused path takes oneDNN's matmuls: still the reference's numbers to float32 precision."""
    results = []
    for impl in ("reference", "fused"):
        torch.manual_seed(0)
        module = lstmkit.LSTM(8, 256, impl=impl, **OPTIONS[option])
        x = torch.randn(6, 3, 8, generator=torch.Generator().manual_seed(1)).requires_grad_()
        results.append(_run(module, x, None, seed=3, batch_first=False))
    for a, b in zip(*results):
        scale = a.abs().mean() + 1e-12
        assert ((b - a).abs() / (a.abs() + scale)).max() < 1e-4


def _variant_args(option, B=3, T=4, H=3, P=0, seed=0):
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=g, dtype=torch.float64, requires_grad=True)  # noqa: E731
    variant = Variant()
    proj = P or H
    if option in ("layer_norm", "all"):
        variant = variant._replace(ln_ih=(r(4 * H), r(4 * H)), ln_hh=(r(4 * H), r(4 * H)), ln_c=(r(H), r(H)))
    if option in ("peephole", "all"):
        variant = variant._replace(peephole=r(3, H))
    if option in ("cell_clip", "all"):
        variant = variant._replace(cell_clip=0.4)
    if option in ("recurrent_dropout", "all"):
        variant = variant._replace(recurrent_mask=torch.bernoulli(torch.full((B, proj), 0.6, dtype=torch.float64), generator=g) / 0.6)
    if option in ("zoneout", "all"):
        variant = variant._replace(
            zoneout_h=torch.bernoulli(torch.full((T, B, proj), 0.3, dtype=torch.float64), generator=g),
            zoneout_c=torch.bernoulli(torch.full((T, B, H), 0.3, dtype=torch.float64), generator=g),
        )
    if option == "zoneout_eval":
        variant = variant._replace(zoneout_h=0.3, zoneout_c=0.2)
    x = r(T, B, 2)
    weights = [r(4 * H, 2), r(4 * H, proj), r(4 * H), r(4 * H), r(P, H) if P else None]
    return x, (r(B, proj), r(B, H)), weights, variant


def _tensors_of(variant):
    found = []
    for value in (variant.peephole, *(variant.ln_ih or ()), *(variant.ln_hh or ()), *(variant.ln_c or ())):
        if value is not None:
            found.append(value)
    return found


@pytest.mark.parametrize("option", list(OPTIONS) + ["zoneout_eval"])
@pytest.mark.parametrize("reverse,proj", [(False, 0), (True, 2)])
def test_gradcheck_fused_variant(option, reverse, proj):
    x, hx, weights, variant = _variant_args(option, P=proj)
    extras = _tensors_of(variant)
    present = [w for w in weights if w is not None]

    def f(x, h0, c0, *rest):
        given = iter(rest[: len(present)])
        full = [next(given) if w is not None else None for w in weights]
        more = iter(rest[len(present) :])
        v = variant
        if v.peephole is not None:
            v = v._replace(peephole=next(more))
        if v.ln_ih is not None:
            v = v._replace(ln_ih=(next(more), next(more)), ln_hh=(next(more), next(more)), ln_c=(next(more), next(more)))
        out, (h, c) = lstm_layer_fused(x, (h0, c0), *full, reverse=reverse, variant=v)
        return out, h, c

    assert gradcheck(f, (x, *hx, *present, *extras), eps=1e-6, atol=1e-6, rtol=1e-4)


@pytest.mark.parametrize("option", list(OPTIONS) + ["zoneout_eval"])
def test_fused_equals_reference_with_given_masks(option):
    x, hx, weights, variant = _variant_args(option, T=5, B=4, H=5, seed=2)
    outs = [fn(x, hx, *weights, variant=variant) for fn in (lstm_layer_ref, lstm_layer_fused)]
    (ref_out, (ref_h, ref_c)), (out, (h, c)) = outs
    torch.testing.assert_close(out, ref_out, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(h, ref_h, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(c, ref_c, rtol=1e-12, atol=1e-12)


# ------------------------------------------------------------------------------------------ the papers' equations


def _one_step(module, x):
    """Run one time step of a 1-layer LSTM from zeros, and return its weights by name."""
    out, (h, c) = module(x.unsqueeze(0))
    return out[0], c[0], dict(module.named_parameters())


def test_layer_norm_follows_ba_kiros_hinton():
    """gates = LN(W x) + LN(R h) + b; c carried un-normalised; h = o * tanh(LN(c)) (eqs. 20-22)."""
    torch.manual_seed(0)
    lstm = lstmkit.LSTM(3, 4, layer_norm=True)
    with torch.no_grad():
        for name, p in lstm.named_parameters():
            if name.startswith("ln_"):
                p.uniform_(-1, 1)
    x, h0, c0 = torch.randn(2, 3), torch.randn(1, 2, 4), torch.randn(1, 2, 4)
    out, (h, c) = lstm(x.unsqueeze(0), (h0, c0))
    p = dict(lstm.named_parameters())
    ln = lambda v, k: F.layer_norm(v, v.shape[-1:], p[f"ln_{k}_weight_l0"], p[f"ln_{k}_bias_l0"])  # noqa: E731
    gates = ln(x @ p["weight_ih_l0"].t(), "ih") + ln(h0[0] @ p["weight_hh_l0"].t(), "hh") + p["bias_ih_l0"] + p["bias_hh_l0"]
    i, f, g, o = gates.chunk(4, 1)
    c_expected = torch.sigmoid(f) * c0[0] + torch.sigmoid(i) * torch.tanh(g)
    h_expected = torch.sigmoid(o) * torch.tanh(ln(c_expected, "c"))
    torch.testing.assert_close(c[0], c_expected)  # the carried cell is not normalised
    torch.testing.assert_close(h[0], h_expected)


def test_peepholes_follow_gers():
    """i and f see c_{t-1}, o sees c_t, through diagonal weights."""
    torch.manual_seed(0)
    lstm = lstmkit.LSTM(3, 4, peephole=True)
    x, h0, c0 = torch.randn(2, 3), torch.randn(1, 2, 4), torch.randn(1, 2, 4)
    _, (h, c) = lstm(x.unsqueeze(0), (h0, c0))
    p = dict(lstm.named_parameters())
    z = x @ p["weight_ih_l0"].t() + h0[0] @ p["weight_hh_l0"].t() + p["bias_ih_l0"] + p["bias_hh_l0"]
    i, f, g, o = z.chunk(4, 1)
    i = torch.sigmoid(i + p["weight_ci_l0"] * c0[0])
    f = torch.sigmoid(f + p["weight_cf_l0"] * c0[0])
    c_new = f * c0[0] + i * torch.tanh(g)
    o = torch.sigmoid(o + p["weight_co_l0"] * c_new)
    torch.testing.assert_close(c[0], c_new)
    torch.testing.assert_close(h[0], o * torch.tanh(c_new))
    assert p["weight_ci_l0"].shape == p["weight_cf_l0"].shape == p["weight_co_l0"].shape == (4,)


def test_cell_clip_bounds_every_cell_and_stops_gradients():
    torch.manual_seed(0)
    lstm = lstmkit.LSTM(3, 5, cell_clip=0.2, impl="fused")
    x = torch.randn(30, 4, 3) * 5
    cells = []
    state = None
    for t in range(30):  # step by step, to see every cell
        _, state = lstm(x[t : t + 1], state)
        cells.append(state[1])
    cells = torch.stack(cells)
    assert cells.abs().max() <= 0.2 + 1e-7
    assert (cells.abs() > 0.2 - 1e-6).any(), "the test input must actually hit the clip"
    # gradient of a clipped cell with respect to its inputs is zero
    x1 = torch.randn(1, 1, 3, requires_grad=True)
    c0 = torch.full((1, 1, 5), 10.0)
    _, (_, c) = lstm(x1, (torch.zeros(1, 1, 5), c0))
    c.sum().backward()
    assert x1.grad.abs().max() == 0


def test_zoneout_training_masks_and_eval_expectation():
    torch.manual_seed(0)
    lstm = lstmkit.LSTM(3, 64, zoneout=(0.4, 0.0), impl="fused")
    x = torch.randn(40, 8, 3)
    out, _ = lstm(x)
    kept = (out[1:] == out[:-1]).float()  # h exactly equal to the previous step: that unit was zoned out
    assert abs(kept.mean().item() - 0.4) < 0.03
    per_step = kept.mean(dim=(1, 2))
    assert per_step.std() > 0, "a new mask every step"
    lstm.eval()  # eval: h = p h_prev + (1 - p) h_new, deterministic
    first, _ = lstm(x)
    torch.testing.assert_close(first, lstm(x)[0])
    reference = lstmkit.LSTM(3, 64, zoneout=(0.4, 0.0), impl="reference").eval()
    reference.load_state_dict(lstm.state_dict())
    torch.testing.assert_close(first, reference(x)[0])


def test_recurrent_dropout_one_mask_per_sequence_and_identity_in_eval(monkeypatch):
    torch.manual_seed(0)
    lstm = lstmkit.LSTM(3, 6, recurrent_dropout=0.5, impl="fused")
    plain = lstmkit.LSTM(3, 6)
    plain.load_state_dict(lstm.state_dict())
    x = torch.randn(7, 4, 3)
    lstm.eval()
    torch.testing.assert_close(lstm(x)[0], plain(x)[0], rtol=1e-5, atol=1e-6)
    lstm.train()
    seen = []
    import lstmkit.ops.functional as functional

    original = functional.lstm_layer_fused

    def spy(*args, **kwargs):
        seen.append(kwargs["variant"].recurrent_mask)
        return original(*args, **kwargs)

    monkeypatch.setattr(functional, "lstm_layer_fused", spy)
    lstm(x)
    lstm(x)
    first, second = seen
    assert first.shape == (4, 6), "one mask per sequence: (B, P), the same at every step"
    assert set(first.unique().tolist()) <= {0.0, 2.0}, "survivors scaled by 1/(1-p)"
    assert not torch.equal(first, second), "fresh per call"


def test_options_off_is_bit_for_bit_the_plain_module():
    torch.manual_seed(0)
    plain = lstmkit.LSTM(3, 5, num_layers=2)
    off = lstmkit.LSTM(3, 5, num_layers=2, recurrent_dropout=0.0, zoneout=0.0, layer_norm=False, peephole=False, cell_clip=None)
    assert list(off.state_dict()) == list(plain.state_dict())
    off.load_state_dict(plain.state_dict())
    x = torch.randn(4, 2, 3)
    assert torch.equal(off(x)[0], plain(x)[0])
    theirs = torch.nn.LSTM(3, 5, num_layers=2)
    theirs.load_state_dict(plain.state_dict())
    assert torch.equal(off(x)[0], theirs(x)[0]), "options off: torch's kernel, torch's exact numbers"


def test_variant_parameters_do_not_shift_torchs_initial_weights():
    torch.manual_seed(11)
    theirs = torch.nn.LSTM(3, 5, num_layers=2)
    torch.manual_seed(11)
    ours = lstmkit.LSTM(3, 5, num_layers=2, layer_norm=True, peephole=True)
    for name, value in theirs.state_dict().items():
        assert torch.equal(ours.state_dict()[name], value), name
    assert torch.equal(ours.ln_c_weight_l1, torch.ones(5)) and torch.equal(ours.ln_hh_bias_l0, torch.zeros(20))
    # a torch state_dict loads into a variant module non-strictly: only the variant parameters are missing
    fresh = lstmkit.LSTM(3, 5, num_layers=2, layer_norm=True, peephole=True)
    missing, unexpected = fresh.load_state_dict(theirs.state_dict(), strict=False)
    assert not unexpected and all(k.startswith(("ln_", "weight_c")) for k in missing)


def test_native_impl_refuses_variants_and_auto_picks_fused():
    with pytest.raises(ValueError, match=r"impl='native' \(torch's kernel\) cannot compute layer_norm, peephole"):
        lstmkit.LSTM(3, 4, layer_norm=True, peephole=True, impl="native")(torch.randn(2, 1, 3))
    with pytest.raises(ValueError, match=r"cannot compute recurrent_dropout"):
        lstmkit.LSTM(3, 4, recurrent_dropout=0.1, impl="native")(torch.randn(2, 1, 3))
    lstmkit.LSTM(3, 4, recurrent_dropout=0.1, impl="native").eval()(torch.randn(2, 1, 3))  # off in eval


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(recurrent_dropout=1.0), r"recurrent_dropout must be a probability in \[0, 1\)"),
        (dict(zoneout=(0.1, 0.2, 0.3)), r"zoneout must be a probability or a pair \(p_h, p_c\)"),
        (dict(zoneout=-0.1), r"zoneout must be a probability in \[0, 1\), got -0.1"),
        (dict(cell_clip=0), r"cell_clip must be a positive number or None, got 0"),
    ],
)
def test_variant_argument_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        lstmkit.LSTM(3, 4, **kwargs)


@pytest.mark.parametrize("option", ["layer_norm", "peephole", "cell_clip", "zoneout"])
def test_cell_variants_equal_one_step_of_the_layer(option):
    kwargs = {**OPTIONS[option]}
    torch.manual_seed(0)
    layer = lstmkit.LSTM(3, 5, **kwargs).eval()
    cell = lstmkit.LSTMCell(3, 5, **kwargs).eval()
    names = {k.replace("_l0", ""): v for k, v in layer.state_dict().items()}
    cell.load_state_dict(names)
    x, h0, c0 = torch.randn(2, 3), torch.randn(2, 5), torch.randn(2, 5)
    _, (h, c) = layer(x.unsqueeze(0), (h0.unsqueeze(0), c0.unsqueeze(0)))
    for impl in ("auto", "fused", "reference"):
        cell.impl = impl
        h1, c1 = cell(x, (h0, c0))
        torch.testing.assert_close(h1, h[0], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(c1, c[0], rtol=1e-5, atol=1e-6)


def test_cell_auto_with_a_variant_runs_the_reference_cell(monkeypatch):
    """For one step the equations with autograd beat the fused layer (bench_auto.py --cells), so auto takes them."""
    from lstmkit.ops import functional

    calls = []
    monkeypatch.setattr(functional, "lstm_layer_fused", lambda *a, **k: calls.append("fused"))
    reference = functional.lstm_cell_ref
    monkeypatch.setattr(functional, "lstm_cell_ref", lambda *a, **k: calls.append("reference") or reference(*a, **k))
    cell = lstmkit.LSTMCell(3, 5, layer_norm=True)
    cell(torch.randn(2, 3))[0].sum().backward()
    assert calls == ["reference"]
    cell.impl = "fused"
    calls.clear()
    with pytest.raises(TypeError):  # the stub returns None: proves the fused layer was called
        cell(torch.randn(2, 3))
    assert calls == ["fused"]


def test_cell_zoneout_keeps_each_unit_with_its_probability():
    torch.manual_seed(0)
    cell = lstmkit.LSTMCell(4, 64, zoneout=(0.3, 0.6)).train()
    x, h0, c0 = torch.randn(512, 4), torch.randn(512, 64) + 5, torch.randn(512, 64) + 5  # new h, c never equal old
    h1, c1 = cell(x, (h0, c0))
    assert abs((h1 == h0).double().mean().item() - 0.3) < 0.01
    assert abs((c1 == c0).double().mean().item() - 0.6) < 0.01
    h2, _ = cell(x, (h0, c0))
    assert not torch.equal(h1 == h0, h2 == h0)  # a fresh mask per call


@pytest.mark.parametrize("steps, expected", [(1, "reference"), (3, "fused")])
def test_layer_auto_with_a_variant_runs_one_step_like_the_cell(steps, expected, monkeypatch):
    """A module called one time step at a time (a decoder) takes the reference layer, as LSTMCell does."""
    from lstmkit.ops import functional

    calls = []
    for name in ("lstm_layer_fused", "lstm_layer_ref"):
        original = getattr(functional, name)
        monkeypatch.setattr(functional, name, lambda *a, _f=original, _n=name, **k: calls.append(_n) or _f(*a, **k))
    lstm = lstmkit.LSTM(3, 5, num_layers=2, peephole=True)
    lstm(torch.randn(steps, 2, 3))[0].sum().backward()
    assert calls == [f"lstm_layer_{'ref' if expected == 'reference' else 'fused'}"] * 2
