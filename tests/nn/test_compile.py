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
from torch.nn.utils.rnn import pack_padded_sequence, pack_sequence, pad_packed_sequence

import lstmkit
from helpers import assert_close
from lstmkit.lm.model import LanguageModel, LanguageModelConfig

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


@pytest.mark.parametrize("impl,training", [("auto", True), ("auto", False), ("reference", True)],
                         ids=["train", "eval", "reference-train"])
def test_compiled_lstm_equals_eager(impl, training):
    torch.manual_seed(0)
    m = lstmkit.LSTM(3, 4, impl=impl, **EVERY_OPTION).double().train(training)
    x = torch.randn(5 if impl == "auto" else 3, 2, 3, dtype=torch.float64)  # reference: an unrolled loop to compile
    compiled = torch.compile(m, fullgraph=True, backend="aot_eager")
    _assert_all_close(_step(compiled, x), _step(m, x))


@pytest.mark.parametrize("impl", ["fused", "native"])
def test_compiled_cell_equals_eager(impl):
    torch.manual_seed(0)
    cell = lstmkit.LSTMCell(3, 4, impl=impl, **(CELL_OPTIONS if impl != "native" else {})).double()
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


# ---------------------------------------------------------------------------------------------- variable lengths

LENGTHS = torch.tensor([2, 5, 3])


@pytest.mark.parametrize("impl", ["auto", "native", "fused", "reference"])
@pytest.mark.parametrize("batch_first", [False, True])
def test_lengths_equal_packing(impl, batch_first):
    """forward(padded, lengths=) is pack -> LSTM -> pad back (eval: no random masks to tell the layouts apart)."""
    options = {} if impl == "native" else dict(layer_norm=True, peephole=True, zoneout=0.2, cell_clip=0.5)
    torch.manual_seed(0)
    m = lstmkit.LSTM(3, 4, num_layers=2, bidirectional=True, batch_first=batch_first, impl=impl, **options)
    m = m.double().eval()
    x = torch.randn((3, 5, 3) if batch_first else (5, 3, 3), dtype=torch.float64, requires_grad=True)

    def run(via_lengths):
        if via_lengths:
            out, (h, c) = m(x, lengths=LENGTHS)
        else:
            packed = pack_padded_sequence(x, LENGTHS, batch_first=batch_first, enforce_sorted=False)
            out, (h, c) = m(packed)
            out = pad_packed_sequence(out, batch_first=batch_first, total_length=5)[0]
        loss = (out * out).sum() + h.sum() + c.sin().sum()
        return (out, h, c, *torch.autograd.grad(loss, [x, *m.parameters()]))

    _assert_all_close(run(True), run(False), rtol=1e-9)


def test_lengths_are_checked():
    m = lstmkit.LSTM(3, 4)
    with pytest.raises(ValueError, match=r"lengths must be in \[1, 5\] \(the input has 5 steps\), got \[2, 6\]"):
        m(torch.randn(5, 2, 3), lengths=torch.tensor([2, 6]))
    with pytest.raises(ValueError, match=r"lengths must be an integer tensor of shape \(2,\), one per sequence"):
        m(torch.randn(5, 2, 3), lengths=torch.tensor([2, 3, 4]))
    with pytest.raises(ValueError, match=r"lengths needs padded batched input .* got 2-D input"):
        m(torch.randn(5, 3), lengths=torch.tensor([2]))


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_compiled_lengths_equal_eager(training):
    """Variable lengths under torch.compile: no graph break, and the same masks, outputs and gradients as eager."""
    torch.manual_seed(0)
    m = lstmkit.LSTM(3, 4, batch_first=True, **EVERY_OPTION).double().train(training)
    x = torch.randn(3, 5, 3, dtype=torch.float64)

    def step(module):
        torch.manual_seed(7)
        out, (h, c) = module(x, lengths=LENGTHS)
        return (out, h, c, *torch.autograd.grad((out * out).sum() + h.sum() + c.sin().sum(), list(m.parameters())))

    assert _graph_breaks(lambda x: m(x, lengths=LENGTHS), x) == (0, [])
    _assert_all_close(step(torch.compile(m, fullgraph=True, backend="aot_eager")), step(m))


def test_tagger_training_step_compiles(treebank_batch):
    """The tagger's loss (its char and sentence BiLSTMs over variable lengths) traces whole; compiled it equals
    eager, which packs (in eval, where no dropout masks differ between the layouts)."""
    model, batch = treebank_batch

    def loss(b):
        return model.loss(model(b), b.tags)

    assert _graph_breaks(loss, batch) == (0, [])
    compiled = torch.compile(loss, fullgraph=True, backend="aot_eager")
    model.eval()

    def step(fn):
        value = fn(batch)
        return (value, *torch.autograd.grad(value, list(model.parameters())))

    _assert_all_close(step(compiled), step(loss), rtol=1e-5)


@pytest.fixture
def treebank_batch():
    import dataclasses

    from lstmkit.tagger.data import TaggingVocabs, encode_sentences, make_batch
    from lstmkit.tagger import Tagger, TaggerConfig
    from tiny_treebank import random_sentences

    train = random_sentences(6, 0)
    vocabs = TaggingVocabs.build(train)
    config = TaggerConfig(word_embedding_size=6, char_embedding_size=4, char_hidden_size=5, hidden_size=6)
    torch.manual_seed(0)
    model = Tagger.from_vocabs(dataclasses.replace(config, num_layers=2), vocabs).train()
    return model, make_batch(encode_sentences(train, vocabs), vocabs)


# ---------------------------------------------------------------------------------------------- PackedSequence


PACKED_CASES = [  # (options, sorted, with h_0, training)
    (dict(EVERY_OPTION, proj_size=2), True, False, True),
    (dict(EVERY_OPTION, proj_size=2, batch_first=True), True, False, False),
    (dict(EVERY_OPTION, impl="fused"), False, False, True),
    (dict(EVERY_OPTION, proj_size=2), True, True, True),
    (dict(), False, False, False),
    (dict(impl="reference", proj_size=2), True, False, False),
    (dict(batch_first=True, impl="reference"), True, True, False),
]


@pytest.mark.parametrize(
    "kwargs,sorted_,with_hx,training",
    PACKED_CASES,
    ids=["every-sorted-train", "every-sorted-eval", "every-unsorted-fused-train", "every-sorted-hx-train",
         "plain-unsorted-eval", "reference-sorted-eval", "reference-sorted-hx-eval"],
)
def test_compiled_packed_input_equals_eager(kwargs, sorted_, with_hx, training):
    """A PackedSequence (packed outside, as pack_padded_sequence is a graph break) traces whole, sorted or not,
    with or without h_0: the fused operator runs the packed rows and draws eager's masks, so compiled outputs,
    states and gradients equal eager's in training too. A sorted batch without h_0 has its size only in
    ``batch_sizes[0]``: lstmkit::packed_zero_state makes it a symbolic size. impl="reference" runs a padded copy
    under compilation (its masks are drawn in that layout), compared in eval."""
    torch.manual_seed(0)
    m = lstmkit.LSTM(3, 4, **kwargs).double().train(training)
    x = torch.randn(5, 3, 3, dtype=torch.float64)
    lengths = torch.tensor([5, 3, 2]) if sorted_ else torch.tensor([3, 5, 2])
    packed = pack_padded_sequence(x.transpose(0, 1) if m.batch_first else x, lengths, batch_first=m.batch_first,
                                  enforce_sorted=sorted_)
    layers = m.num_layers * (2 if m.bidirectional else 1)
    hx = None
    if with_hx:
        hx = (torch.randn(layers, 3, m.proj_size or 4, dtype=torch.float64), torch.randn(layers, 3, 4, dtype=torch.float64))

    def step(module):
        torch.manual_seed(7)
        out, (h, c) = module(packed, hx)
        loss = (out.data * out.data).sum() + h.sum() + c.sin().sum()
        return (out.data, h, c, *torch.autograd.grad(loss, list(m.parameters())))

    assert _graph_breaks(lambda p: m(p, hx)[0].data, packed) == (0, [])
    _assert_all_close(step(torch.compile(m, fullgraph=True, backend="aot_eager")), step(m), rtol=1e-9)


def test_compiled_packed_input_takes_other_batches():
    """Sorted packed batches of other sizes and lengths compile twice (static, then dynamic with the batch size a
    symbolic value) and never again, each equal to eager; pack_sequence is the other way to sort and pack."""
    graphs = []

    def counting_backend(gm, example_inputs):
        graphs.append(gm)
        return gm

    torch.manual_seed(0)
    m = lstmkit.LSTM(3, 4, num_layers=2, bidirectional=True, proj_size=2).double().eval()
    compiled = torch.compile(m, fullgraph=True, backend=counting_backend)
    for lengths in ((5, 3, 2), (4, 4, 2, 1, 1), (2,), (6, 6, 6, 5, 3, 3, 1)):
        packed = pack_sequence([torch.randn(n, 3, dtype=torch.float64) for n in lengths])
        (out, (h, c)), (want, (want_h, want_c)) = compiled(packed), m(packed)
        assert h.shape == (4, len(lengths), 2)
        _assert_all_close((out.data, h, c), (want.data, want_h, want_c), rtol=1e-12)
    assert len(graphs) == 2


def test_windows_of_every_length_compile_twice():
    """auto is the operator under compilation (torch's kernel would be unrolled at one length): the language
    model's variable-length windows compile once static, once dynamic, and never again."""
    graphs = []

    def counting_backend(gm, example_inputs):
        graphs.append(gm)
        return gm

    torch.manual_seed(0)
    model = LanguageModel(40, LanguageModelConfig(embedding_size=6, hidden_size=8, num_layers=2)).train()
    compiled = torch.compile(lambda *a: _lm_step(model, *a), fullgraph=True, backend=counting_backend)
    for steps in (5, 6, 7, 9, 12):
        loss, _ = compiled(torch.randint(0, 40, (steps, 3)), torch.randint(0, 40, (steps, 3)), model.init_hidden(3))
        loss.backward()
    assert len(graphs) == 2


NATIVE_CASES = [  # (options, input, training)
    (dict(num_layers=2, bidirectional=True, proj_size=2, dropout=0.1, weight_dropout=0.3), "padded", True),
    (dict(bidirectional=True, batch_first=True, weight_dropout=0.3), "lengths", True),
    (dict(bidirectional=True, proj_size=2, weight_dropout=0.3), "packed", True),
]


@pytest.mark.parametrize("kwargs,form,training", NATIVE_CASES, ids=["stack-padded-train", "lengths-train", "packed-train"])
def test_native_under_compilation(kwargs, form, training):
    """impl='native' compiles whole in training and inference, padded, with lengths= and packed: torch's kernel
    where AOTAutograd traces it (padded input without grad), torch's equations (the reference step, the same
    math) elsewhere. Compiled outputs, states and gradients equal eager's, which runs torch's kernel (float64,
    rtol 1e-9). In training, dropout between layers with lengths= or packed input is drawn in the padded layout
    (not eager's packed one), so those cases train without it; weight dropout is drawn alike."""
    torch.manual_seed(0)
    m = lstmkit.LSTM(3, 4, impl="native", **kwargs).double().train(training)
    x = torch.randn((2, 5, 3) if m.batch_first else (5, 2, 3), dtype=torch.float64)
    args, options = (x,), {}
    if form == "lengths":
        options = dict(lengths=torch.tensor([3, 5]))
    elif form == "packed":
        args = (pack_sequence([torch.randn(n, 3, dtype=torch.float64) for n in (2, 5)], enforce_sorted=False),)

    def step(module):
        torch.manual_seed(7)
        out, (h, c) = module(*args, **options)
        out = out.data if form == "packed" else out
        loss = (out * out).sum() + h.sum() + c.sin().sum()
        return (out, h, c, *torch.autograd.grad(loss, list(m.parameters())))

    assert _graph_breaks(lambda *a: m(*a, **options)[1], *args) == (0, [])
    _assert_all_close(step(torch.compile(m, fullgraph=True, backend="aot_eager")), step(m), rtol=1e-9)


def test_torch_lstm_fails_to_compile_in_training():
    """Why impl='native' trains compiled through torch's equations, not its kernel: torch.nn.LSTM in training
    fails inside AOTAutograd (torch 2.13: oneDNN's LSTM saves a None for its backward)."""
    x = torch.randn(5, 2, 3)
    failure = pytest.raises(Exception, match="tensors_saved_with_vc_check to be Tensors")
    with torch._dynamo.config.patch(allow_rnn=True), failure:
        torch.compile(torch.nn.LSTM(3, 4), fullgraph=True, backend="aot_eager")(x)


def test_native_inference_compiles_torch_kernel():
    """Without grad, impl='native' on padded input stays torch's kernel under torch.compile: one call of it in
    dynamo's graph for the whole stack, equal to eager."""
    graphs = []

    def counting_backend(gm, example_inputs):
        graphs.append(gm)
        return gm

    torch.manual_seed(0)
    m = lstmkit.LSTM(3, 4, num_layers=2, bidirectional=True, impl="native").eval()
    x = torch.randn(5, 2, 3)
    with torch.no_grad():
        _assert_all_close(torch.compile(m, fullgraph=True, backend=counting_backend)(x)[0], m(x)[0])
    calls = [node.target for node in graphs[0].graph.nodes if node.op == "call_function"]
    assert calls.count(torch._VF.lstm) == 1 and len(calls) == 6  # zeros for h_0 and c_0, the kernel, 3 getitems
