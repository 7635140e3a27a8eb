"""LanguageModel: shapes and NamedTuples, tied weights, each regulariser, the loss, state carried between windows,
and the fused decoder + cross entropy against the unfused reference."""

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from helpers import assert_close
from lstmkit.lm import LanguageModel, LanguageModelConfig, LMLoss, LMOutput, detach_hidden
from lstmkit.ops import linear_cross_entropy, linear_cross_entropy_ref

V = 23
TINY = LanguageModelConfig(embedding_size=6, hidden_size=10, num_layers=3)
DROPOUTS = ("embedding_dropout", "input_dropout", "hidden_dropout", "output_dropout", "weight_dropout")


def make(config=TINY, seed=0, vocab_size=V):
    torch.manual_seed(seed)
    return LanguageModel(vocab_size, config)


def words(T=7, B=3, seed=1):
    return torch.randint(V, (T, B), generator=torch.Generator().manual_seed(seed))


def test_output_is_a_named_tuple_with_the_documented_shapes():
    model = make()
    out = model(words())
    assert isinstance(out, LMOutput)
    assert out.output.shape == (7, 3, 6)
    assert [tuple(r.shape) for r in out.raw_outputs] == [(7, 3, 10), (7, 3, 10), (7, 3, 6)]
    assert [tuple(d.shape) for d in out.dropped_outputs] == [(7, 3, 10), (7, 3, 10), (7, 3, 6)]
    assert out.output is out.dropped_outputs[-1]
    assert [(tuple(h.shape), tuple(c.shape)) for h, c in out.hidden] == [
        ((1, 3, 10), (1, 3, 10)), ((1, 3, 10), (1, 3, 10)), ((1, 3, 6), (1, 3, 6))]
    assert model.logits(out.output).shape == (7, 3, V)
    assert torch.allclose(model.log_probs(out.output).exp().sum(-1), torch.ones(7, 3))
    losses = model.loss(out, words(seed=2))
    assert isinstance(losses, LMLoss) and losses.loss.dim() == 0


def test_decoder_is_tied_to_the_embedding():
    model = make()
    assert model.decoder.weight is model.embedding.weight
    assert model.num_parameters() == sum(p.numel() for p in set(model.parameters()))
    model.loss(model(words()), words(seed=2)).loss.backward()
    assert model.embedding.weight.grad is not None  # one gradient, from both uses
    untied = make(dataclasses.replace(TINY, tie_weights=False))
    assert untied.decoder.weight is not untied.embedding.weight
    assert untied.decoder.weight.shape == (V, 10) and untied.layers[-1].hidden_size == 10


def test_layers_are_lstmkit_lstms_with_weight_dropout_on_the_recurrent_weights():
    import lstmkit

    model = make(dataclasses.replace(TINY, weight_dropout=0.3))
    assert all(isinstance(layer, lstmkit.LSTM) and layer.num_layers == 1 for layer in model.layers)
    assert all(layer.weight_dropout == 0.3 for layer in model.layers)


@pytest.mark.parametrize("name", DROPOUTS)
def test_each_dropout_acts_in_training_and_is_identity_in_eval(name):
    plain = make(dataclasses.replace(TINY, **dict.fromkeys(DROPOUTS, 0.0)))
    dropped = make(dataclasses.replace(TINY, **{**dict.fromkeys(DROPOUTS, 0.0), name: 0.5}))
    dropped.load_state_dict(plain.state_dict())
    x = words(T=9, B=4)
    plain.eval(), dropped.eval()
    assert torch.equal(dropped(x).output, plain(x).output)
    dropped.train(), plain.train()
    torch.manual_seed(3)
    assert not torch.equal(dropped(x).output, plain(x).output)


def test_locked_dropouts_keep_one_mask_over_time():
    config = dataclasses.replace(TINY, **{**dict.fromkeys(DROPOUTS, 0.0), "output_dropout": 0.5})
    model = make(config)
    out = model(words(T=12, B=2))
    dropped = out.output == 0  # (T, B, E): which features were dropped
    assert torch.equal(dropped, dropped[:1].expand_as(dropped))
    assert dropped.any()


def test_embedding_dropout_drops_whole_words():
    from lstmkit.regularize import embedding_dropout

    model = make(dataclasses.replace(TINY, **{**dict.fromkeys(DROPOUTS, 0.0), "embedding_dropout": 0.5}))
    x = torch.tensor([[1, 2], [1, 3], [2, 1], [4, 4]])
    torch.manual_seed(3)
    out = model(x)
    torch.manual_seed(3)
    h = embedding_dropout(model.embedding.weight, x, 0.5, True)  # what the model must have looked up
    zero = (h == 0).all(-1)
    assert zero.any() and not zero.all()
    for word in (1, 2, 4):
        fates = zero[x == word]
        assert fates.all() or not fates.any()  # every occurrence of a word shares one fate
    for layer in model.layers:
        h, _ = layer(h)
    assert torch.equal(out.output, h)


def test_loss_adds_ar_and_tar_in_training_only():
    model = make(dataclasses.replace(TINY, ar_alpha=2.0, tar_beta=3.0))
    x, y = words(), words(seed=2)
    out = model(x)
    losses = model.loss(out, y)
    last_dropped, last_raw = out.dropped_outputs[-1], out.raw_outputs[-1]
    ce = F.cross_entropy(model.logits(out.output).reshape(-1, V), y.reshape(-1))
    ar = 2.0 * last_dropped.pow(2).mean()
    tar = 3.0 * (last_raw[1:] - last_raw[:-1]).pow(2).mean()
    assert_close(losses.cross_entropy, ce, name="cross entropy")
    assert_close(losses.ar, ar, name="ar")
    assert_close(losses.tar, tar, name="tar")
    assert_close(losses.loss, ce + ar + tar, name="loss")
    assert losses.ar > 0 and losses.tar > 0
    model.eval()
    evaluated = model.loss(model(x), y)
    assert evaluated.ar == 0 and evaluated.tar == 0 and torch.equal(evaluated.loss, evaluated.cross_entropy)


def test_state_carried_between_windows_equals_one_long_window():
    model = make().eval()
    x = words(T=10, B=2)
    whole = model(x)
    first = model(x[:4])
    second = model(x[4:], detach_hidden(first.hidden))
    assert_close(torch.cat([first.output, second.output]), whole.output, name="output")
    for (h1, c1), (h2, c2) in zip(second.hidden, whole.hidden):
        assert_close(h1, h2, name="h")
        assert_close(c1, c2, name="c")  # assert_close returns None: chained with `and`, this line never ran


def test_detached_hidden_cuts_the_graph():
    model = make()
    out = model(words())
    assert all(h.grad_fn is not None for h, _ in out.hidden)
    detached = detach_hidden(out.hidden)
    assert all(h.grad_fn is None and c.grad_fn is None for h, c in detached)
    second = model(words(seed=5), detached)
    model.loss(second, words(seed=6)).loss.backward()  # would fail on a freed graph if not detached
    model.loss(model(words(seed=7), detach_hidden(second.hidden)), words(seed=8)).loss.backward()


def test_input_checks():
    model = make()
    with pytest.raises(ValueError, match=r"\(T, B\)"):
        model(torch.zeros(5, dtype=torch.long))
    with pytest.raises(ValueError, match="one \\(h, c\\) per layer"):
        model(words(), model.init_hidden(3)[:2])
    with pytest.raises(ValueError, match="targets"):
        model.loss(model(words()), words(T=6))
    with pytest.raises(ValueError, match="weight_dropout"):
        LanguageModelConfig(weight_dropout=1.0)
    with pytest.raises(ValueError, match="num_layers"):
        LanguageModelConfig(num_layers=0)


# ------------------------------------------------------------------------------------------- fused cross entropy


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("with_bias", [True, False])
def test_linear_cross_entropy_matches_the_unfused_reference(reduction, with_bias):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(13, 5, generator=g, dtype=torch.float64) * 3
    w = torch.randn(17, 5, generator=g, dtype=torch.float64)
    b = torch.randn(17, generator=g, dtype=torch.float64) if with_bias else None
    y = torch.randint(17, (13,), generator=g)
    results = []
    for fn in (linear_cross_entropy, linear_cross_entropy_ref):
        leaves = [t.clone().requires_grad_() for t in (x, w) + ((b,) if with_bias else ())]
        loss = fn(leaves[0], leaves[1], leaves[2] if with_bias else None, y, reduction)
        (loss * 1.7).backward()
        results.append([loss] + [t.grad for t in leaves])
    for actual, expected in zip(*results):
        assert_close(actual, expected, rtol=1e-10)


def test_linear_cross_entropy_plain_path_and_checks():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(4, 3, generator=g, requires_grad=True)
    w, b = torch.randn(6, 3, generator=g), torch.randn(6, generator=g)
    y = torch.tensor([0, 5, 2, 2])
    with torch.no_grad():
        assert linear_cross_entropy(x, w, b, y).grad_fn is None
    assert_close(linear_cross_entropy(x, w, b, y, "sum"), linear_cross_entropy_ref(x, w, b, y, "sum"))
    with pytest.raises(ValueError, match="target"):
        linear_cross_entropy(x, w, b, y[:3])
    with pytest.raises(ValueError, match="reduction"):
        linear_cross_entropy(x, w, b, y, "none")


def test_linear_cross_entropy_under_bfloat16_autocast():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(30, 8, generator=g, requires_grad=True)
    w = torch.randn(50, 8, generator=g, requires_grad=True)
    b = torch.zeros(50, requires_grad=True)
    y = torch.randint(50, (30,), generator=g)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = linear_cross_entropy(x, w, b, y)
    loss.backward()
    expected = linear_cross_entropy_ref(x.detach(), w.detach(), b.detach(), y)
    assert loss.dtype == torch.float32 and abs(loss.item() - expected.item()) < 2e-2 * expected.item()
    assert x.grad.dtype == w.grad.dtype == b.grad.dtype == torch.float32
    reference = [t.detach().clone().requires_grad_() for t in (x, w, b)]
    linear_cross_entropy_ref(*reference, y).backward()
    for ours, theirs in zip((x, w, b), reference):
        assert (ours.grad - theirs.grad).norm() < 2e-2 * theirs.grad.norm()


def test_model_under_bfloat16_autocast_keeps_float32_between_layers():
    model = make()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(words())
        losses = model.loss(out, words(seed=2))
        second = model(words(seed=3), detach_hidden(out.hidden))
    assert out.output.dtype == torch.float32 and all(h.dtype == torch.float32 for pair in out.hidden for h in pair)
    assert second.output.shape == (7, 3, 6)
    losses.loss.backward()
    assert model.layers[0].weight_hh_l0.grad.dtype == torch.float32
