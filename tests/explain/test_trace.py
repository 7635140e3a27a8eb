"""Tests for lstmkit.explain.trace.

The trace checks itself against the module; these tests check it again from the outside, in the caller's layout:
the last layer's h is ``output``, the final steps are ``h_n`` / ``c_n``, and the gates obey the cell recurrence in
the right time order for each direction. Every configuration of the core parity suite, for lstmkit's and torch's
modules.

Shapes: T time steps, B batch, I input size, H hidden size, P proj size or H.
"""

import doctest
import statistics
import time

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import lstmkit
from lstmkit.explain import GateTrace, TraceMismatchError, trace
from lstmkit.explain import tracing

T, B, I, H, P = 5, 3, 4, 6, 2
LENGTHS = [5, 2, 4]  # unsorted on purpose; sorted: [5, 4, 2]

CONFIGS = {
    "1 layer": {},
    "2 layers": dict(num_layers=2),
    "3 layers": dict(num_layers=3),
    "bidirectional": dict(bidirectional=True),
    "2 layers bidirectional": dict(num_layers=2, bidirectional=True),
    "proj": dict(proj_size=P),
    "3 layers bidirectional proj": dict(num_layers=3, bidirectional=True, proj_size=P),
    "no bias": dict(bias=False),
    "no bias bidirectional": dict(bias=False, bidirectional=True, num_layers=2),
    "batch_first": dict(batch_first=True),
    "batch_first 2 layers bidirectional proj": dict(batch_first=True, num_layers=2, bidirectional=True, proj_size=P),
}
INPUTS = ["padded", "unbatched", "packed sorted", "packed unsorted"]
MODULES = {"lstmkit": lstmkit.LSTM, "torch": nn.LSTM}


def make(kind: str, dtype=torch.float64, seed=0, **options) -> nn.Module:
    torch.manual_seed(seed)
    return MODULES[kind](I, H, dtype=dtype, **options)


def make_input(module, form: str, dtype=torch.float64):
    """The input in the requested form, plus each sequence's length (in the caller's order)."""
    torch.manual_seed(1)
    x = torch.randn(T, B, I, dtype=dtype)  # (T, B, I)
    if form == "unbatched":
        return x[:, 0], [T]
    if form == "padded":
        return (x.transpose(0, 1) if module.batch_first else x), [T] * B
    lengths = sorted(LENGTHS, reverse=True) if form == "packed sorted" else LENGTHS
    source = x.transpose(0, 1) if module.batch_first else x
    packed = pack_padded_sequence(source, torch.tensor(lengths), batch_first=module.batch_first,
                                  enforce_sorted=form == "packed sorted")
    return packed, lengths


def make_hx(module, batched: bool, dtype=torch.float64):
    torch.manual_seed(2)
    count = module.num_layers * (2 if module.bidirectional else 1)
    size = module.proj_size or module.hidden_size
    batch = (B,) if batched else ()
    return torch.randn(count, *batch, size, dtype=dtype), torch.randn(count, *batch, H, dtype=dtype)


def output_time_major(module, input, output) -> torch.Tensor:
    """The module's output as (T, B, D * P), zeros past each sequence's end."""
    if isinstance(output, nn.utils.rnn.PackedSequence):
        padded, _ = pad_packed_sequence(output)
        return padded
    if output.dim() == 2:
        return output.unsqueeze(1)
    return output.transpose(0, 1) if module.batch_first else output


def batched(t: torch.Tensor) -> torch.Tensor:
    return t if t.dim() == 3 else t.unsqueeze(1)


def previous_cells(c: torch.Tensor, c0: torch.Tensor, lengths, reverse: bool) -> torch.Tensor:
    """The cell each step started from, in processing order: c0 at a sequence's first step. c (T, B, H), c0 (B, H)."""
    prev = torch.cat([c[1:], c[:1]]) if reverse else torch.cat([c[:1], c[:-1]])  # (T, B, H), edges fixed below
    for b, length in enumerate(lengths):
        prev[length - 1 if reverse else 0, b] = c0[b]
    return prev


def assert_recurrence(tr: GateTrace, c0: torch.Tensor, lengths, reverse: bool, w_hr=None) -> None:
    """c[t] = f[t] c_prev + i[t] g[t] and h[t] = o[t] tanh(c[t]) (projected) at every real step; zeros after."""
    i, f, g, o, c, h = (batched(v) for v in tr)  # (T, B, .)
    valid = torch.arange(c.shape[0]).unsqueeze(1) < torch.tensor(lengths)  # (T, B)
    prev = previous_cells(c, c0, lengths, reverse)
    torch.testing.assert_close(c[valid], (f * prev + i * g)[valid])
    out = o * torch.tanh(c)  # (T, B, H)
    torch.testing.assert_close(h[valid], (out @ w_hr.t() if w_hr is not None else out)[valid])
    for v in (i, f, g, o, c, h):  # padding is zeros
        assert torch.all(v[~valid] == 0)


@pytest.mark.parametrize("given_hx", [False, True], ids=["no hx", "hx"])
@pytest.mark.parametrize("form", INPUTS)
@pytest.mark.parametrize("config", CONFIGS.values(), ids=CONFIGS.keys())
@pytest.mark.parametrize("kind", MODULES)
def test_trace_equals_module_outputs(kind, config, form, given_hx):
    module = make(kind, **config)
    input, lengths = make_input(module, form)
    hx = make_hx(module, batched=form != "unbatched") if given_hx else None
    output, (h_n, c_n) = module(input, hx)
    traces = trace(module, input, hx)

    directions = 2 if module.bidirectional else 1
    size = module.proj_size or H
    assert len(traces) == module.num_layers and all(len(row) == directions for row in traces)
    for row in traces:
        for tr in row:
            assert isinstance(tr, GateTrace)
            lead = (T,) if form == "unbatched" else (T, B)
            assert tr.i.shape == tr.f.shape == tr.g.shape == tr.o.shape == tr.c.shape == (*lead, H)
            assert tr.h.shape == (*lead, size)

    # the last layer's h, both directions side by side, is the module's output, step for step
    last = torch.cat([batched(tr.h) for tr in traces[-1]], dim=-1)  # (T, B, D * P)
    torch.testing.assert_close(last, output_time_major(module, input, output))

    # h_n / c_n are the states after each direction's last step: t = length - 1 forwards, t = 0 backwards
    h_n, c_n = batched(h_n), batched(c_n)
    c0 = batched(hx[1]) if hx is not None else torch.zeros_like(c_n)
    weights = tracing._lstm_weights(module)
    for layer, row in enumerate(traces):
        for direction, tr in enumerate(row):
            k = layer * directions + direction
            t_final = [0 if direction == 1 else length - 1 for length in lengths]
            batch = range(len(lengths))
            torch.testing.assert_close(batched(tr.h)[t_final, batch], h_n[k])
            torch.testing.assert_close(batched(tr.c)[t_final, batch], c_n[k])
            assert_recurrence(tr, c0[k], lengths, reverse=direction == 1, w_hr=weights[k].w_hr)


@pytest.mark.parametrize("given_hx", [False, True], ids=["no hx", "hx"])
@pytest.mark.parametrize("is_batched", [True, False], ids=["batched", "unbatched"])
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no bias"])
@pytest.mark.parametrize("cell_type", [lstmkit.LSTMCell, nn.LSTMCell], ids=["lstmkit", "torch"])
def test_trace_of_a_cell_is_one_step(cell_type, bias, is_batched, given_hx):
    torch.manual_seed(0)
    cell = cell_type(I, H, bias=bias, dtype=torch.float64)
    lead = (B,) if is_batched else ()
    x = torch.randn(*lead, I, dtype=torch.float64)
    hx = (torch.randn(*lead, H, dtype=torch.float64), torch.randn(*lead, H, dtype=torch.float64)) if given_hx else None
    h1, c1 = cell(x, hx)
    [[tr]] = trace(cell, x, hx)
    assert tr.i.shape == tr.c.shape == tr.h.shape == (1, *lead, H)
    torch.testing.assert_close(tr.h[0], h1)
    torch.testing.assert_close(tr.c[0], c1)
    c0 = hx[1] if hx is not None else torch.zeros_like(c1)
    torch.testing.assert_close(tr.c[0], tr.f[0] * c0 + tr.i[0] * tr.g[0])


def test_gates_lie_in_their_ranges_and_cell_output_is_h_before_projection():
    module = make("lstmkit", num_layers=2, proj_size=P)
    x, _ = make_input(module, "padded")
    for layer, [tr] in enumerate(trace(module, x)):
        for gate in (tr.i, tr.f, tr.o):
            assert torch.all((gate > 0) & (gate < 1))
        assert torch.all(tr.g.abs() < 1)
        assert tr.cell_output.shape == (T, B, H)
        w_hr = getattr(module, f"weight_hr_l{layer}")
        torch.testing.assert_close(tr.h, tr.cell_output @ w_hr.t())
    [[tr]] = trace(make("torch"), x)
    torch.testing.assert_close(tr.cell_output, tr.h)


def test_float32_module_with_default_kernel():
    torch.manual_seed(0)
    module = lstmkit.LSTM(I, H, num_layers=2, bidirectional=True)  # impl="auto": torch's kernel, float32
    x = torch.randn(20, B, I)
    output, _ = module(x)
    traces = trace(module, x)
    torch.testing.assert_close(torch.cat([traces[-1][0].h, traces[-1][1].h], -1), output, atol=1e-5, rtol=1e-4)


def test_training_module_with_dropout_is_traced_in_eval_and_keeps_its_mode():
    module = make("torch", num_layers=3, dropout=0.5)
    module.train()
    x, _ = make_input(module, "padded")
    traces = trace(module, x)
    assert module.training
    with torch.no_grad():
        module.eval()
        expected, _ = module(x)
    torch.testing.assert_close(traces[-1][0].h, expected)


def test_children_keep_their_own_modes():
    class Wrapped(lstmkit.LSTM):
        def __init__(self):
            super().__init__(I, H, dtype=torch.float64)
            self.child = nn.Dropout(0.1)

    module = Wrapped()
    module.train()
    module.child.eval()
    trace(module, torch.randn(T, B, I, dtype=torch.float64))
    assert module.training and not module.child.training


class OffsetOutput(nn.LSTM):
    """An LSTM whose forward is not the LSTM equations: its output is shifted."""

    def forward(self, input, hx=None):
        output, state = super().forward(input, hx)
        return output + 0.1, state


class DoubledCellState(nn.LSTM):
    def forward(self, input, hx=None):
        output, (h_n, c_n) = super().forward(input, hx)
        return output, (h_n, c_n * 2)


class DropsLastStep(nn.LSTM):
    def forward(self, input, hx=None):
        output, state = super().forward(input, hx)
        return output[:-1], state


def test_mismatch_raises():
    x = torch.randn(T, B, I)
    with pytest.raises(TraceMismatchError, match=r"DropsLastStep's output has shape \(4, 3, 6\) but the reference"):
        trace(DropsLastStep(I, H), x)
    with pytest.raises(TraceMismatchError, match=r"do not reproduce OffsetOutput's output \(largest difference 0\.1"):
        trace(OffsetOutput(I, H), x)
    with pytest.raises(TraceMismatchError, match="DoubledCellState's c_n"):
        trace(DoubledCellState(I, H), x)


def test_tolerance_can_be_widened():
    traces = trace(OffsetOutput(I, H), torch.randn(T, B, I), atol=0.2)
    assert traces[0][0].h.shape == (T, B, H)


def test_unsupported_module_and_input():
    with pytest.raises(TypeError, match="trace expects an lstmkit.LSTM, torch.nn.LSTM, .* got GRU"):
        trace(nn.GRU(I, H), torch.randn(T, B, I))
    with pytest.raises(TypeError, match="expects a Tensor or PackedSequence input, got list"):
        trace(nn.LSTM(I, H), [[0.0] * I])


def test_invalid_input_raises_the_module_error():
    with pytest.raises(RuntimeError, match="input.size\\(-1\\) must be equal to input_size. Expected 4, got 5"):
        trace(lstmkit.LSTM(I, H), torch.randn(T, B, 5))


def test_docstring_example():
    finder = doctest.DocTestFinder()
    runner = doctest.DocTestRunner()
    for test in finder.find(tracing.trace, globs={"torch": torch, "lstmkit": lstmkit, "trace": trace}):
        runner.run(test)
    assert runner.failures == 0 and runner.tries > 0


def _seconds(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def test_tracing_costs_at_most_three_reference_passes():
    torch.manual_seed(0)
    traced = lstmkit.LSTM(16, 32, num_layers=2, bidirectional=True)
    reference = lstmkit.LSTM(16, 32, num_layers=2, bidirectional=True, impl="reference")
    reference.load_state_dict(traced.state_dict())
    x = torch.randn(30, 8, 16)  # (T, B, I)
    with torch.no_grad():  # on one thread (conftest.py), so the timings do not wait on a busy machine's others
        for _ in range(2):  # warm up
            reference(x)
            trace(traced, x)
        # each ratio from a back-to-back pair, so a slow spell on a shared machine hits both sides
        ratios = [_seconds(lambda: trace(traced, x)) / _seconds(lambda: reference(x)) for _ in range(15)]
    assert statistics.median(ratios) <= 3.0, f"trace / reference forward time ratios {sorted(ratios)}"


@pytest.mark.parametrize(
    "options",
    [dict(layer_norm=True), dict(peephole=True), dict(cell_clip=0.3), dict(zoneout=(0.3, 0.1)), dict(recurrent_dropout=0.4),
     dict(layer_norm=True, peephole=True, zoneout=0.2, cell_clip=0.5, num_layers=2, bidirectional=True, proj_size=2)],
    ids=["layer_norm", "peephole", "cell_clip", "zoneout", "recurrent_dropout", "all"],
)
def test_trace_follows_the_variants(options):
    """The trace runs the module's own options through the reference equations (eval mode: zoneout's expectation,
    no recurrent dropout), and its h is checked against the module's output as for any LSTM."""
    torch.manual_seed(0)
    module = lstmkit.LSTM(3, 4, **options)
    x = torch.randn(6, 2, 3)
    traces = lstmkit.explain.trace(module, x)
    module.eval()
    output, _ = module(x)
    last = traces[-1]
    h = last[0].h if len(last) == 1 else torch.cat([last[0].h, last[1].h], dim=-1)
    torch.testing.assert_close(h, output, rtol=1e-5, atol=1e-6)
    if "cell_clip" in options:
        assert all(t.c.abs().max() <= options["cell_clip"] + 1e-6 for layer in traces for t in layer)


def test_trace_of_a_variant_cell():
    torch.manual_seed(0)
    cell = lstmkit.LSTMCell(3, 4, layer_norm=True, peephole=True).eval()
    x = torch.randn(2, 3)
    (trace_,) = lstmkit.explain.trace(cell, x)[0]
    torch.testing.assert_close(trace_.h[0], cell(x)[0], rtol=1e-5, atol=1e-6)


def test_trace_runs_the_reference_layer_loop(monkeypatch):
    """trace() has no time loop of its own: every layer and direction goes through ops.reference's layer loop."""
    calls = []
    original = tracing.lstm_layer_gates_ref

    def spy(x, hx, *weights, reverse=False, batch_sizes=None, variant=None):
        calls.append((reverse, batch_sizes is not None))
        return original(x, hx, *weights, reverse=reverse, batch_sizes=batch_sizes, variant=variant)

    monkeypatch.setattr(tracing, "lstm_layer_gates_ref", spy)
    lstm = lstmkit.LSTM(I, H, num_layers=2, bidirectional=True)
    x = torch.randn(T, B, I)
    trace(lstm, pack_padded_sequence(x, LENGTHS, enforce_sorted=False))
    assert calls == [(False, True), (True, True)] * 2
