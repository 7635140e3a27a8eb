"""The classifier: concat pooling, independence from padding, the language model's weights, the ULMFiT schedule."""

from __future__ import annotations

import pytest
import torch

from lstmkit.classify.finetune import extend_vocab, map_embeddings
from lstmkit.classify.model import Classifier, ClassifierConfig, concat_pool
from lstmkit.classify.task import ClassifierRunConfig, ClassifierTask, stlr_factor
from lstmkit.data import Vocab
from lstmkit.lm import LanguageModel, LanguageModelConfig
from lstmkit.classify.data import Example
from lstmkit.train.config import merge_from_args
from lstmkit.train.loop import StepInfo

SMALL = LanguageModelConfig(embedding_size=6, hidden_size=10, num_layers=2)


def test_concat_pool_is_last_max_and_mean_of_the_real_steps():
    torch.manual_seed(0)
    outputs = torch.randn(5, 3, 4)  # (T, B, D)
    lengths = torch.tensor([5, 2, 1])
    pooled = concat_pool(outputs, lengths)
    for b, n in enumerate(lengths.tolist()):
        real = outputs[:n, b]
        expected = torch.cat([real[-1], real.max(dim=0).values, real.mean(dim=0)])
        torch.testing.assert_close(pooled[b], expected)
    with pytest.raises(ValueError, match=r"lengths must have shape \(3,\)"):
        concat_pool(outputs, torch.tensor([1, 2]))


def test_an_example_scores_the_same_alone_and_padded_in_a_batch():
    torch.manual_seed(0)
    model = Classifier(30, 3, ClassifierConfig(encoder=SMALL, head_hidden=5)).eval()
    words = torch.randint(30, (7, 3))
    lengths = torch.tensor([7, 4, 2])
    together = model(words, lengths).logits
    for b, n in enumerate(lengths.tolist()):
        alone = model(words[:n, b : b + 1], lengths[b : b + 1]).logits
        torch.testing.assert_close(together[b : b + 1], alone, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="lengths must be in 1 .. T = 7"):
        model(words, torch.tensor([8, 1, 1]))


def test_a_language_models_weights_load_into_the_encoder_and_groups_cover_every_trained_weight():
    lm = LanguageModel(30, SMALL)
    model = Classifier(30, 2, ClassifierConfig(encoder=SMALL))
    model.encoder.load_state_dict(lm.state_dict())
    torch.testing.assert_close(model.encoder.layers[1].weight_hh_l0, lm.layers[1].weight_hh_l0)
    grouped = {id(p) for group in model.layer_groups() for p in group}
    unused = [name for name, p in model.named_parameters() if id(p) not in grouped]
    assert unused == ["encoder.decoder.bias"]
    assert len(model.layer_groups()) == 4  # embedding, two LSTM layers, head


def test_stlr_rises_to_the_peak_at_cut_frac_and_falls_back():
    assert stlr_factor(0.0, 0.1, 32) == pytest.approx(1 / 32)
    assert stlr_factor(0.1, 0.1, 32) == pytest.approx(1.0)
    assert stlr_factor(0.05, 0.1, 32) == pytest.approx((1 + 0.5 * 31) / 32)
    assert stlr_factor(0.55, 0.1, 32) == pytest.approx((1 + 0.5 * 31) / 32)
    assert stlr_factor(1.0, 0.1, 32) == pytest.approx(1 / 32)


def _task(*overrides):
    config = merge_from_args(ClassifierRunConfig(), [
        "--model.encoder.embedding_size=6", "--model.encoder.hidden_size=10", "--data.batch_size=2",
        "--train.max_steps=100", "--train.max_epochs=none", *overrides])
    examples = [Example(("good",), 1), Example(("bad", "film"), 0), Example(("fine",), 1)]
    vocab = Vocab.build(["good", "bad", "film", "fine"])
    return ClassifierTask(config, {"train": examples, "dev": examples}, vocab, ["negative", "positive"])


def test_gradual_unfreezing_and_discriminative_rates_follow_the_budget():
    task = _task("--optim.unfreeze_every=0.1", "--optim.discriminative_decay=2", "--optim.lr=0.01")
    assert [task.trainable_groups(f) for f in (0.0, 0.09, 0.1, 0.25, 0.3, 0.9)] == [1, 1, 2, 3, 4, 4]
    rates = task.group_rates(0.1)  # the STLR peak
    assert rates == pytest.approx([0.01 / 8, 0.01 / 4, 0.01 / 2, 0.01])
    batch, _ = next(iter(task.batches(0, None)))
    embedding = task.model.encoder.embedding.weight.detach().clone()
    head = task.model.head[-1].weight.detach().clone()
    task.train_step(batch, StepInfo(0, 0, 0.0, None))  # fraction 0: the head alone trains
    assert torch.equal(task.model.encoder.embedding.weight, embedding)
    assert not torch.equal(task.model.head[-1].weight, head)
    layers = [p.detach().clone() for p in task.model.encoder.layers.parameters()]
    task.train_step(batch, StepInfo(50, 0, 0.0, None))  # fraction 0.5: everything trains
    assert not torch.equal(task.model.encoder.embedding.weight, embedding)
    assert all(not torch.equal(p, q) for p, q in zip(task.model.encoder.layers.parameters(), layers))
    assert all(p in task.optimizer.state for group in task.groups for p in group)  # Adam state for every weight
    assert [g["lr"] for g in task.optimizer.param_groups] == pytest.approx(task.group_rates(0.5))


def test_no_unfreezing_trains_every_group_from_the_first_step():
    task = _task("--optim.unfreeze_every=0")
    assert task.trainable_groups(0.0) == 4


def test_extend_vocab_keeps_old_ids_and_map_embeddings_takes_own_then_other_case_then_mean_rows():
    old = Vocab(["<unk>", "<eos>", "the", "Jackson", "jackson", "Rock"])
    rows = torch.arange(6, dtype=torch.float).unsqueeze(1).repeat(1, 2)  # row i = (i, i)
    new = extend_vocab(old, [["the", "rock", "zebra", "zebra", "rock", "rock", "jackson"]])
    assert new.itos[:6] == old.itos and new.itos[6:] == ("rock", "zebra")
    mapped, counts = map_embeddings(old, rows, new)
    assert mapped[:6].tolist() == rows.tolist()
    assert mapped[6].tolist() == [5.0, 5.0]  # "rock" takes "Rock"'s row
    assert mapped[7].tolist() == [2.5, 2.5]  # "zebra": the mean row
    assert counts == (6, 1, 1)
    assert extend_vocab(old, [["zebra", "rock", "rock"]], min_count=2).itos[6:] == ("rock",)
