import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lstmkit.ops.masks import realised_probability
from lstmkit.regularize import LockedDropout, locked_dropout


@settings(max_examples=30, deadline=None)
@given(
    steps=st.integers(1, 6),
    batch=st.integers(1, 4),
    features=st.integers(1, 5),
    p=st.floats(0.05, 0.95),
    batch_first=st.booleans(),
)
def test_mask_constant_over_time_and_survivors_scaled(steps, batch, features, p, batch_first):
    shape = (batch, steps, features) if batch_first else (steps, batch, features)
    x = torch.rand(shape) + 0.5  # no zeros, so a zero in y means "dropped"
    y = locked_dropout(x, p, training=True, batch_first=batch_first)
    ratio = y / x
    time_dim = 1 if batch_first else 0
    first = ratio.narrow(time_dim, 0, 1)
    assert torch.equal(ratio == 0, (first == 0).expand_as(ratio))  # same positions dropped at every step
    survivors = ratio[ratio != 0]
    # 1/(1-p) with p rounded to a multiple of 2**-16 as the mask draws it (lstmkit.ops.masks)
    torch.testing.assert_close(survivors, torch.full_like(survivors, 1 / (1 - realised_probability(p))))


def test_unbatched_input_has_one_mask_per_feature():
    x = torch.ones(7, 50)
    y = locked_dropout(x, 0.5)
    assert torch.equal(y, y[:1].expand_as(y))


def test_fresh_mask_per_call():
    torch.manual_seed(0)
    x = torch.ones(3, 8, 64)
    assert not torch.equal(locked_dropout(x, 0.5), locked_dropout(x, 0.5))


@pytest.mark.parametrize("p", [0.0, 0.5])
def test_identity_in_eval_and_at_zero_probability(p):
    x = torch.randn(4, 3, 5)
    assert locked_dropout(x, p, training=False) is x
    assert locked_dropout(x, 0.0, training=True) is x


def test_probability_one_drops_everything():
    y = locked_dropout(torch.randn(4, 3, 5), 1.0)
    assert torch.equal(y, torch.zeros_like(y))


def test_expectation_preserved():
    generator = torch.Generator().manual_seed(0)
    x = torch.ones(2, 200, 500)
    y = locked_dropout(x, 0.4, generator=generator)
    assert abs(y.mean().item() - 1.0) < 0.02


def test_generator_makes_masks_reproducible():
    x = torch.ones(3, 4, 5)
    a = locked_dropout(x, 0.5, generator=torch.Generator().manual_seed(3))
    b = locked_dropout(x, 0.5, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


def test_gradient_is_zero_where_dropped():
    x = torch.ones(5, 3, 20, requires_grad=True)
    y = locked_dropout(x, 0.5)
    y.sum().backward()
    assert torch.equal(x.grad, y.detach())  # d y / d x is the scaled mask


def test_module_follows_training_flag():
    drop = LockedDropout(0.5, batch_first=True)
    x = torch.ones(2, 6, 40)
    y = drop(x)
    assert torch.equal(y, y[:, :1].expand_as(y))
    drop.eval()
    assert drop(x) is x
    assert "p=0.5" in repr(drop)


@pytest.mark.parametrize("p", [-0.1, 1.5])
def test_bad_probability(p):
    with pytest.raises(ValueError, match=r"p must be a probability in \[0, 1\], got "):
        locked_dropout(torch.ones(2, 2, 2), p)
    with pytest.raises(ValueError, match=r"p must be a probability in \[0, 1\], got "):
        LockedDropout(p)


def test_bad_rank():
    with pytest.raises(ValueError, match="expected a 2-D"):
        locked_dropout(torch.ones(2, 2, 2, 2), 0.5)
