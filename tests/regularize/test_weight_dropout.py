import pytest
import torch
from torch import nn

from lstmkit.regularize import WeightDropout, drop_weight


def test_raw_weight_untouched_and_survivors_scaled():
    weight = nn.Parameter(torch.rand(16, 4) + 0.5)
    before = weight.detach().clone()
    p = 0.3
    dropped = drop_weight(weight, p)
    assert dropped is not weight
    assert torch.equal(weight.detach(), before)
    ratio = dropped.detach() / before
    assert (ratio == 0).any()
    survivors = ratio[ratio != 0]
    torch.testing.assert_close(survivors, torch.full_like(survivors, 1 / (1 - p)))


def test_gradient_reaches_raw_weight_and_is_zero_where_dropped():
    weight = nn.Parameter(torch.rand(32, 8) + 0.5)
    dropped = drop_weight(weight, 0.5)
    x = torch.randn(3, 8)
    (x @ dropped.T).sum().backward()
    was_dropped = dropped.detach() == 0
    assert torch.equal(weight.grad[was_dropped], torch.zeros_like(weight.grad[was_dropped]))
    expected = 2.0 * x.sum(0).expand_as(weight)  # d/dW of sum(x W^T) scaled by 1/(1-p) where kept
    torch.testing.assert_close(weight.grad[~was_dropped], expected[~was_dropped])


def test_fresh_mask_per_call():
    torch.manual_seed(0)
    weight = torch.ones(20, 20)
    assert not torch.equal(drop_weight(weight, 0.5), drop_weight(weight, 0.5))


def test_identity_in_eval_and_at_zero_probability():
    weight = torch.randn(4, 4)
    assert drop_weight(weight, 0.5, training=False) is weight
    assert drop_weight(weight, 0.0) is weight


def test_expectation_preserved():
    generator = torch.Generator().manual_seed(0)
    dropped = drop_weight(torch.ones(400, 400), 0.6, generator=generator)
    assert abs(dropped.mean().item() - 1.0) < 0.02


def test_module_holds_no_parameters_and_follows_training_flag():
    weight_dropout = WeightDropout(0.5)
    assert list(weight_dropout.parameters()) == []
    weight = torch.ones(10, 10)
    assert (weight_dropout(weight) == 0).any()
    weight_dropout.eval()
    assert weight_dropout(weight) is weight


def test_bad_probability():
    with pytest.raises(ValueError, match="dropout probability has to be between 0 and 1, but got -1"):
        drop_weight(torch.ones(2, 2), -1)
