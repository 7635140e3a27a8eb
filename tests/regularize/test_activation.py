import torch

from lstmkit.regularize import (
    ActivationRegularization,
    TemporalActivationRegularization,
    activation_regularization,
    temporal_activation_regularization,
)


def test_activation_regularization_hand_computed():
    output = torch.tensor([[[1.0, -2.0]], [[3.0, 0.0]]])  # (T=2, B=1, H=2): squares 1, 4, 9, 0 -> mean 3.5
    torch.testing.assert_close(activation_regularization(output, 2.0), torch.tensor(7.0))
    torch.testing.assert_close(ActivationRegularization(0.5)(output), torch.tensor(1.75))


def test_temporal_activation_regularization_hand_computed():
    # (T=3, B=2, H=1); differences over time: b0: 1, 2 ; b1: -1, 0 -> squares 1, 4, 1, 0 -> mean 1.5
    output = torch.tensor([[[0.0], [1.0]], [[1.0], [0.0]], [[3.0], [0.0]]])
    torch.testing.assert_close(temporal_activation_regularization(output, 2.0), torch.tensor(3.0))
    batch_first = output.transpose(0, 1)
    penalty = temporal_activation_regularization(batch_first, 2.0, batch_first=True)
    torch.testing.assert_close(penalty, torch.tensor(3.0))
    torch.testing.assert_close(TemporalActivationRegularization(1.0)(output), torch.tensor(1.5))


def test_temporal_activation_regularization_is_zero_for_constant_or_single_step():
    assert temporal_activation_regularization(torch.ones(5, 2, 3), 1.0).item() == 0.0
    assert temporal_activation_regularization(torch.randn(1, 2, 3), 1.0).item() == 0.0


def test_penalties_are_differentiable():
    output = torch.tensor([[1.0], [3.0]], requires_grad=True)  # (T=2, H=1)
    (activation_regularization(output, 1.0) + temporal_activation_regularization(output, 1.0)).backward()
    # AR: d/dh mean(h^2) = h ; TAR: d/dh (h1 - h0)^2 = -4, +4
    torch.testing.assert_close(output.grad, torch.tensor([[1.0 - 4.0], [3.0 + 4.0]]))
