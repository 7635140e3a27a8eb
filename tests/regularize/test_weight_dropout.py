import pytest
import torch
from torch import nn

from lstmkit.regularize import WeightDropout, drop_weight, keep_mask


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
    torch.testing.assert_close(survivors, torch.full_like(survivors, 1 / (1 - p)), rtol=1e-5, atol=0)


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
    with pytest.raises(ValueError, match=r"p must be a probability in \[0, 1\], got -1"):
        drop_weight(torch.ones(2, 2), -1)


@pytest.mark.parametrize("p", [0.1, 0.25, 0.5, 0.65])
def test_keep_mask_is_bernoulli_with_the_right_probability(p):
    generator = torch.Generator().manual_seed(int(p * 100))
    mask = keep_mask(torch.empty(400, 500), p, generator)
    assert mask.dtype == torch.bool and mask.shape == (400, 500)
    n = mask.numel()
    # the dropped count is Binomial(n, p): stay within 5 standard deviations
    assert abs((~mask).sum().item() - n * p) < 5 * (n * p * (1 - p)) ** 0.5
    # neighbouring entries are independent: pairs (even, odd) drop together with probability p^2
    both = (~mask[:, 0::2] & ~mask[:, 1::2]).float().mean().item()
    assert abs(both - p * p) < 5 * (p * p * (1 - p * p) / (n / 2)) ** 0.5


def test_keep_mask_follows_the_generator():
    a = keep_mask(torch.empty(30, 30), 0.5, torch.Generator().manual_seed(5))
    b = keep_mask(torch.empty(30, 30), 0.5, torch.Generator().manual_seed(5))
    c = keep_mask(torch.empty(30, 30), 0.5, torch.Generator().manual_seed(6))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_float64_weights_keep_their_dtype():
    weight = torch.ones(8, 8, dtype=torch.float64)
    assert drop_weight(weight, 0.5).dtype == torch.float64
