"""Tests for lstmkit.tagger.Tagger: shapes, padding independence, the masked loss, word dropout, learning."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from lstmkit.data import Sentence, batch_plan
from lstmkit.tagger.data import PAD_TAG, TaggingVocabs, encode_sentences, make_batch
from lstmkit.tagger import Tagger, TaggerConfig, TaggerOutput, tagging_loss
from tiny_treebank import random_sentences

TINY = TaggerConfig(
    word_embedding_size=12, char_embedding_size=8, char_hidden_size=10, hidden_size=16, dropout=0.2, word_dropout=0.25
)


sentences = random_sentences


@pytest.fixture(scope="module")
def data() -> tuple[list[Sentence], TaggingVocabs]:
    train = sentences(40)
    return train, TaggingVocabs.build(train)


def build(vocabs: TaggingVocabs, config: TaggerConfig = TINY, seed: int = 0) -> Tagger:
    torch.manual_seed(seed)
    return Tagger.from_vocabs(config, vocabs)


def test_output_shapes_mask_and_predictions(data) -> None:
    train, vocabs = data
    model = build(vocabs).eval()
    batch = make_batch(encode_sentences(train[:5], vocabs), vocabs)
    output = model(batch)
    assert isinstance(output, TaggerOutput)
    B, T = batch.word_ids.shape
    assert output.logits.shape == (B, T, len(vocabs.tags))
    assert torch.equal(output.mask, batch.mask)
    predicted = model.predict(output)
    assert torch.equal(predicted == PAD_TAG, ~batch.mask)
    assert (predicted[batch.mask] > 0).all()  # <unk> (id 0) is never predicted


def test_a_sentence_gets_the_same_scores_alone_and_beside_a_longer_one(data) -> None:
    train, vocabs = data
    model = build(vocabs).eval()
    short = Sentence.from_tokens("Anna sees the zebra .".split())  # "zebra" unseen: <unk> word, unseen chars
    long = Sentence.from_tokens(("the big old dog quickly finds a red house and a tree " * 3).split())
    alone = model(make_batch(encode_sentences([short], vocabs, with_tags=False), vocabs))
    together = model(make_batch(encode_sentences([long, short], vocabs, with_tags=False), vocabs))
    n = len(short)
    torch.testing.assert_close(together.logits[1, :n], alone.logits[0, :n], rtol=1e-5, atol=1e-6)
    assert together.logits.shape[1] == len(long) > n


@pytest.mark.parametrize("impl", ["fused", "reference"])
def test_every_lstm_implementation_gives_the_same_scores(data, impl: str) -> None:
    train, vocabs = data
    batch = make_batch(encode_sentences(train[:6], vocabs), vocabs)
    auto = build(vocabs).eval()
    other = build(vocabs, dataclasses.replace(TINY, impl=impl)).eval()
    other.load_state_dict(auto.state_dict())
    torch.testing.assert_close(other(batch).logits, auto(batch).logits, rtol=1e-5, atol=1e-5)


def test_the_loss_ignores_padding(data) -> None:
    train, vocabs = data
    model = build(vocabs).eval()
    batch = make_batch(encode_sentences(train[:4], vocabs), vocabs)
    output = model(batch)
    loss = model.loss(output, batch.tags)
    garbage = output.logits.masked_fill(~batch.mask.unsqueeze(-1), 1e4)  # huge scores at padding only
    assert torch.equal(tagging_loss(garbage, batch.tags, batch.mask), loss)
    per_word = [
        F.cross_entropy(output.logits[b, :n], batch.tags[b, :n], reduction="sum")
        for b, n in enumerate(batch.lengths.tolist())
    ]
    torch.testing.assert_close(loss, sum(per_word) / batch.num_tokens)
    loss.backward()
    assert model.word_embedding.weight.grad.abs().sum() > 0 and model.char_embedding.weight.grad.abs().sum() > 0


def test_word_dropout_only_in_training(data) -> None:
    train, vocabs = data
    heavy = dataclasses.replace(TINY, word_dropout=1000.0, dropout=0.0)  # nearly every word becomes <unk>
    model = build(vocabs, heavy)
    batch = make_batch(encode_sentences(train[:4], vocabs), vocabs)
    assert model.word_dropout(batch.word_ids).eq(0).float().mean() > 0.9
    model.eval()
    assert model.word_dropout(batch.word_ids) is batch.word_ids
    torch.testing.assert_close(model(batch).logits, model(batch).logits, rtol=0, atol=0)
    probabilities = model.state_dict()["word_dropout.probabilities"]
    assert probabilities.shape == (len(vocabs.words),)


def test_overfits_a_tiny_treebank_to_full_training_accuracy(data) -> None:
    train, vocabs = data
    model = build(vocabs, dataclasses.replace(TINY, dropout=0.0, word_dropout=0.0))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.02)
    encoded = encode_sentences(train, vocabs)
    plan = batch_plan([len(sentence.word_ids) for sentence in encoded], 10)
    batches = [make_batch([encoded[i] for i in indices], vocabs) for indices in plan]
    total = sum(batch.num_tokens for batch in batches)

    def train_accuracy() -> float:
        model.eval()
        with torch.inference_mode():
            correct = sum(int((model.predict(model(batch)) == batch.tags)[batch.mask].sum()) for batch in batches)
        model.train()
        return correct / total

    for epoch in range(1, 31):
        for batch in batches:
            optimizer.zero_grad()
            model.loss(model(batch), batch.tags).backward()
            optimizer.step()
        if epoch % 5 == 0 and train_accuracy() == 1.0:
            break
    assert train_accuracy() == 1.0, f"not every training word tagged right after {epoch} epochs"
    assert epoch <= 20


def test_config_and_size_checks() -> None:
    with pytest.raises(ValueError, match="dropout"):
        TaggerConfig(dropout=1.0)
    with pytest.raises(ValueError, match="hidden_size must be positive"):
        TaggerConfig(hidden_size=0)
    with pytest.raises(ValueError, match="max_word_chars"):
        TaggerConfig(max_word_chars=1)
    with pytest.raises(ValueError, match="num_tags"):
        Tagger(TINY, num_words=5, num_chars=5, num_tags=1)
    with pytest.raises(ValueError, match="word counts"):
        Tagger(TINY, num_words=5, num_chars=5, num_tags=3, word_counts=[1, 2])
