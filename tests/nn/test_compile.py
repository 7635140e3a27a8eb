"""torch.compile(fullgraph=True) over lstmkit.LSTM / LSTMCell and the language model's training step.

Zero graph breaks is checked with torch._dynamo.explain (tracing only, fast); equality with eager by compiling
with the aot_eager backend: dynamo's graph through AOTAutograd's forward and backward graphs, run by eager kernels,
so the random masks come from the same generator in the same order. Inductor (the default backend) compiles
the same graphs; its C++ code generation takes 40-100 s on this machine, too slow for the suite, so
benchmarks/bench_compile.py checks it (outputs and gradients against eager, with ``fallback_random``).
"""

from __future__ import annotations

import pytest
import torch
import torch._dynamo

import lstmkit
from helpers import assert_close
from lstmkit.models.language_model import LanguageModel, LanguageModelConfig

EVERY_OPTION = dict(
    num_layers=2, bidirectional=True, dropout=0.1, weight_dropout=0.3, forget_bias=1.0, recurrent_dropout=0.2,
    zoneout=(0.2, 0.1), layer_norm=True, peephole=True, cell_clip=0.5,
)
CELL_OPTIONS = dict(forget_bias=1.0, zoneout=0.2, layer_norm=True, peephole=True, cell_clip=0.5)


@pytest.fixture(autouse=True)
def fresh_dynamo():
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def _graph_breaks(fn, *args) -> tuple[int, list[str]]:
    explained = torch._dynamo.explain(fn)(*args)
    return explained.graph_break_count, [str(b.reason).splitlines()[0] for b in explained.break_reasons]


LSTM_CASES = [
    (dict(), "padded"),
    (dict(impl="fused", proj_size=2, bidirectional=True), "padded"),
    (dict(impl="reference", batch_first=True), "padded"),
    (EVERY_OPTION, "padded"),
    (dict(EVERY_OPTION, proj_size=2, batch_first=True), "unbatched"),
    (dict(EVERY_OPTION, impl="reference"), "padded"),
    (EVERY_OPTION, "hx"),
]


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("kwargs,form", LSTM_CASES, ids=[f"case{k}-{form}" for k, (_, form) in enumerate(LSTM_CASES)])
def test_lstm_has_no_graph_breaks(kwargs, form, training):
    m = lstmkit.LSTM(3, 4, **kwargs).train(training)
    layers = m.num_layers * (2 if m.bidirectional else 1)
    args = {
        "padded": (torch.randn(5, 2, 3),),
        "unbatched": (torch.randn(5, 3),),
        "hx": (torch.randn(5, 2, 3), (torch.randn(layers, 2, m.proj_size or 4), torch.randn(layers, 2, 4))),
    }[form]
    assert _graph_breaks(m, *args) == (0, [])


@pytest.mark.parametrize("impl", ["auto", "native", "fused", "reference"])
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_cell_has_no_graph_breaks(impl, training):
    options = CELL_OPTIONS if impl != "native" else {}
    cell = lstmkit.LSTMCell(3, 4, impl=impl, **options).train(training)
    assert _graph_breaks(cell, torch.randn(2, 3), (torch.randn(2, 4), torch.randn(2, 4))) == (0, [])
    assert _graph_breaks(cell, torch.randn(3)) == (0, [])


def _step(model, x, hx=None):
    """Forward and backward with every option's randomness seeded: outputs, states and every gradient."""
    torch.manual_seed(7)
    out, (h, c) = model(x, hx)
    loss = (out * out).sum() + h.sum() + c.sin().sum()
    return (out, h, c, *torch.autograd.grad(loss, list(model.parameters())))


def _assert_all_close(actual, expected, rtol=1e-6):
    assert len(actual) == len(expected)
    for k, (a, e) in enumerate(zip(actual, expected)):
        assert_close(a, e, rtol=rtol, name=f"result {k}")


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_compiled_lstm_equals_eager(training):
    torch.manual_seed(0)
    m = lstmkit.LSTM(3, 4, **EVERY_OPTION).double().train(training)
    x = torch.randn(5, 2, 3, dtype=torch.float64)
    compiled = torch.compile(m, fullgraph=True, backend="aot_eager")
    _assert_all_close(_step(compiled, x), _step(m, x))


def test_compiled_cell_equals_eager():
    torch.manual_seed(0)
    cell = lstmkit.LSTMCell(3, 4, impl="fused", **CELL_OPTIONS).double()
    x = torch.randn(2, 3, dtype=torch.float64)
    hx = (torch.randn(2, 4, dtype=torch.float64), torch.randn(2, 4, dtype=torch.float64))

    def step(module):
        torch.manual_seed(7)
        h, c = module(x, hx)
        return (h, c, *torch.autograd.grad(h.sum() + c.sin().sum(), list(module.parameters())))

    _assert_all_close(step(torch.compile(cell, fullgraph=True, backend="aot_eager")), step(cell))


def _lm_step(model, words, targets, hidden):
    out = model(words, hidden)
    return model.loss(out, targets).loss, out.hidden


def test_language_model_training_step_compiles():
    """The language model's loss and gradients (every AWD-LSTM dropout on) compiled equal eager."""
    torch.manual_seed(0)
    model = LanguageModel(40, LanguageModelConfig(embedding_size=6, hidden_size=8, num_layers=2)).train()
    words, targets = torch.randint(0, 40, (5, 3)), torch.randint(0, 40, (5, 3))
    hidden = model.init_hidden(3)
    assert _graph_breaks(lambda *a: _lm_step(model, *a), words, targets, hidden) == (0, [])
    compiled = torch.compile(lambda *a: _lm_step(model, *a), fullgraph=True, backend="aot_eager")

    def step(fn):
        torch.manual_seed(3)
        loss, new_hidden = fn(words, targets, hidden)
        return (loss, *(t for pair in new_hidden for t in pair), *torch.autograd.grad(loss, list(model.parameters())))

    _assert_all_close(step(compiled), step(lambda *a: _lm_step(model, *a)), rtol=1e-5)
