import pytest
import torch
from torch import nn

from lstmkit.ops.masks import realised_probability
from lstmkit.regularize import EmbeddingDropout, embedding_dropout


def test_whole_words_dropped_and_survivors_scaled():
    torch.manual_seed(0)
    weight = torch.rand(30, 6) + 0.5
    words = torch.randint(30, (12, 5))
    p = 0.4
    y = embedding_dropout(weight, words, p)  # (12, 5, 6)
    ratio = y / weight[words]
    row_dropped = (ratio == 0).all(dim=-1)
    assert torch.equal(row_dropped, (ratio == 0).any(dim=-1))  # a vector is dropped whole or not at all
    for word in words.unique():
        fates = row_dropped[words == word]
        assert fates.all() or not fates.any()  # every occurrence of a word shares one fate
    kept = ratio[~row_dropped]
    # 1/(1-p) with p rounded to a multiple of 2**-16 as the mask draws it (lstmkit.ops.masks)
    torch.testing.assert_close(kept, torch.full_like(kept, 1 / (1 - realised_probability(p))))


def test_identity_in_eval():
    weight = torch.randn(10, 3)
    words = torch.tensor([[1, 2], [3, 1]])
    assert torch.equal(embedding_dropout(weight, words, 0.5, training=False), weight[words])
    assert torch.equal(embedding_dropout(weight, words, 0.0), weight[words])


def test_scale_multiplies_the_weight():
    weight = torch.randn(10, 3)
    words = torch.tensor([0, 4])
    y = embedding_dropout(weight, words, 0.5, training=False, scale=2.0)
    torch.testing.assert_close(y, 2.0 * weight[words])


def test_weight_untouched_and_gradient_zero_for_dropped_words():
    weight = nn.Parameter(torch.rand(40, 4) + 0.5)
    before = weight.detach().clone()
    words = torch.arange(40)
    y = embedding_dropout(weight, words, 0.5, generator=torch.Generator().manual_seed(1))
    y.sum().backward()
    assert torch.equal(weight.detach(), before)
    dropped = (y == 0).all(dim=-1)
    assert dropped.any() and not dropped.all()
    assert torch.equal(weight.grad[dropped], torch.zeros_like(weight.grad[dropped]))
    torch.testing.assert_close(weight.grad[~dropped], torch.full_like(weight.grad[~dropped], 2.0))


def test_fresh_mask_per_call():
    torch.manual_seed(0)
    weight, words = torch.ones(100, 2), torch.arange(100)
    assert not torch.equal(embedding_dropout(weight, words, 0.5), embedding_dropout(weight, words, 0.5))


def test_expectation_preserved():
    generator = torch.Generator().manual_seed(0)
    weight = torch.ones(20000, 3)
    y = embedding_dropout(weight, torch.arange(20000), 0.3, generator=generator)
    assert abs(y.mean().item() - 1.0) < 0.02


def test_module_wraps_embedding_and_respects_padding_idx():
    embedding = nn.Embedding(12, 5, padding_idx=0)
    encoder = EmbeddingDropout(embedding, p=0.2)
    words = torch.tensor([[0, 3], [5, 0]])
    encoder.eval()
    assert torch.equal(encoder(words), embedding(words))
    encoder.train()
    encoder(words).sum().backward()
    assert torch.equal(embedding.weight.grad[0], torch.zeros(5))
    assert encoder.embedding is embedding
    assert list(dict(encoder.named_parameters())) == ["embedding.weight"]


def test_module_rejects_max_norm_and_bad_probability():
    with pytest.raises(ValueError, match="max_norm"):
        EmbeddingDropout(nn.Embedding(3, 2, max_norm=1.0))
    with pytest.raises(ValueError, match=r"p must be a probability in \[0, 1\], got "):
        EmbeddingDropout(nn.Embedding(3, 2), p=2.0)
