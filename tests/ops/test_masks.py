"""lstmkit.ops.masks: Bernoulli masks from 16-bit slices of 64-bit random words."""

from __future__ import annotations

import pytest
import torch

from lstmkit.ops.masks import bernoulli_mask, realised_probability, survivor_scale
from lstmkit.regularize import drop_weight


@pytest.mark.parametrize("p", [0.05, 0.3, 0.5, 0.85])
def test_each_of_the_four_lanes_of_a_word_is_bernoulli(p):
    mask = bernoulli_mask((1_000_000,), p, generator=torch.Generator().manual_seed(int(p * 100)))
    lanes = mask.view(-1, 4).double()  # entry k of every word: the k-th 16-bit slice
    n = lanes.shape[0]
    tolerance = 5 * (p * (1 - p) / n) ** 0.5
    for k in range(4):
        assert abs(lanes[:, k].mean().item() - p) < tolerance, f"lane {k}"
    # lanes are independent: two lanes of the same word are both True with probability p^2
    assert abs((lanes[:, 0] * lanes[:, 3]).mean().item() - p * p) < 5 * (p * p * (1 - p * p) / n) ** 0.5


def test_probability_is_p_rounded_to_two_to_the_minus_16():
    assert realised_probability(0.5) == 0.5 and realised_probability(0.25) == 0.25
    assert realised_probability(0.3) == round(0.3 * 65536) / 65536
    assert abs(realised_probability(0.3) - 0.3) <= 2**-17
    for keep in (0.3, 0.7, 0.85, 1.0):
        assert realised_probability(keep) * survivor_scale(keep) == pytest.approx(1.0, abs=1e-15)
    assert survivor_scale(0.0) == 0.0


def test_extremes_shape_and_generator():
    assert bernoulli_mask((3, 5), 1.0).all() and not bernoulli_mask((3, 5), 0.0).any()
    odd = bernoulli_mask((7, 3), 0.5)  # 21 entries: not a multiple of four
    assert odd.shape == (7, 3) and odd.dtype == torch.bool
    a = bernoulli_mask((64,), 0.5, generator=torch.Generator().manual_seed(1))
    b = bernoulli_mask((64,), 0.5, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b)
    with pytest.raises(ValueError, match="probability must be in \\[0, 1\\], got 1.5"):
        bernoulli_mask((2,), 1.5)


def test_survivors_are_scaled_by_the_realised_keep_probability():
    weight = torch.ones(300, 300, dtype=torch.float64)
    dropped = drop_weight(weight, 0.3, generator=torch.Generator().manual_seed(0))
    kept = dropped[dropped != 0]
    assert torch.all(kept == survivor_scale(0.7))
    assert torch.all(drop_weight(weight, 1.0) == 0), "p = 1 drops everything (no division by zero)"
