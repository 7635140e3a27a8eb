"""Activation penalties from Merity et al. 2017, "Regularizing and Optimizing LSTM Language Models".

AR (activation regularization) discourages large activations; TAR (temporal activation regularization)
discourages fast changes of the hidden state. Both are added to the loss:
``loss = cross_entropy + activation_regularization(dropped_last, alpha)
+ temporal_activation_regularization(last, beta)``, where ``last`` is the last LSTM layer's output and
``dropped_last`` is that output after (locked) dropout.

Shape legend: T time steps, B batch, H features.
"""

from __future__ import annotations

from torch import Tensor, nn


def activation_regularization(output: Tensor, alpha: float) -> Tensor:
    r"""AR: :math:`\alpha \cdot \operatorname{mean}(h^2)` over every element of ``output``.

    Args:
        output: the last layer's output *after* dropout, e.g. ``(T, B, H)``; any shape.
        alpha: weight of the penalty. ``0`` gives a zero (differentiable) scalar.

    Returns:
        A scalar tensor.

    Example::

        >>> activation_regularization(torch.tensor([[1.0, -3.0]]), alpha=2.0)
        tensor(10.)
    """
    return alpha * output.pow(2).mean()


def temporal_activation_regularization(output: Tensor, beta: float, batch_first: bool = False) -> Tensor:
    r"""TAR: :math:`\beta \cdot \operatorname{mean}((h_t - h_{t-1})^2)` over time steps ``t = 1 .. T-1``.

    Args:
        output: the last layer's output *before* dropout: ``(T, B, H)``, ``(B, T, H)`` when
            ``batch_first``, or unbatched ``(T, H)``.
        beta: weight of the penalty.
        batch_first: whether ``output`` is ``(B, T, H)``.

    Returns:
        A scalar tensor; zero when there are fewer than two time steps.

    Example::

        >>> h = torch.tensor([[0.0], [1.0], [3.0]])  # (T=3, H=1)
        >>> temporal_activation_regularization(h, beta=1.0)  # ((1 - 0)^2 + (3 - 1)^2) / 2
        tensor(2.5000)
    """
    time_dim = 1 if (batch_first and output.dim() == 3) else 0
    steps = output.size(time_dim)
    if steps < 2:
        return output.new_zeros(())
    change = output.narrow(time_dim, 1, steps - 1) - output.narrow(time_dim, 0, steps - 1)  # (T-1, B, H)
    return beta * change.pow(2).mean()


class ActivationRegularization(nn.Module):
    r"""Module form of :func:`activation_regularization`.

    Args:
        alpha: weight of the penalty.

    Inputs: output
        - **output**: dropped last-layer output, any shape.

    Outputs: penalty
        - **penalty**: scalar tensor.
    """

    def __init__(self, alpha: float) -> None:
        super().__init__()
        self.alpha = alpha

    def forward(self, output: Tensor) -> Tensor:
        return activation_regularization(output, self.alpha)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}"


class TemporalActivationRegularization(nn.Module):
    r"""Module form of :func:`temporal_activation_regularization`.

    Args:
        beta: weight of the penalty.
        batch_first: whether outputs are ``(B, T, H)``. Default: ``False``

    Inputs: output
        - **output**: undropped last-layer output ``(T, B, H)`` (or ``(B, T, H)``, or ``(T, H)``).

    Outputs: penalty
        - **penalty**: scalar tensor.
    """

    def __init__(self, beta: float, batch_first: bool = False) -> None:
        super().__init__()
        self.beta = beta
        self.batch_first = batch_first

    def forward(self, output: Tensor) -> Tensor:
        return temporal_activation_regularization(output, self.beta, self.batch_first)

    def extra_repr(self) -> str:
        return f"beta={self.beta}, batch_first={self.batch_first}"
