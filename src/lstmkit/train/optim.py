"""NT-ASGD: SGD that starts averaging its iterates once validation stops improving (Merity et al. 2017).

Non-monotonically triggered averaged SGD runs plain SGD and, after every evaluation, compares the validation
loss with the best loss seen *more than* ``nonmono`` evaluations earlier. When the new loss is worse, it starts
keeping the running average of the parameters, and from then on the averaged parameters are the ones to
evaluate and to keep as the final model.

Why a subclass of :class:`torch.optim.SGD` and not ``torch.optim.ASGD``: the AWD-LSTM recipe swaps the
optimizer object for ``torch.optim.ASGD(t0=0, lambd=0)`` at the trigger and reads ``optimizer.state[p]["ax"]``
for evaluation. That means two optimizer classes in one run (the checkpoint must know which one is live, and
SGD's momentum buffers are dropped), an average that is all zeros until the first step after the switch, and
evaluation code that pokes at optimizer internals. :class:`NTASGD` is one optimizer for the whole run: the
trigger, the running average and the swap for evaluation live in it, and ``state_dict`` holds all of it
(averages as per-parameter tensors, the trigger's history as plain numbers), so a checkpoint resumes exactly.
Being an :class:`torch.optim.Optimizer`, it works with learning-rate schedulers and ``param_groups`` edits.
"""

from __future__ import annotations

from typing import Any, Iterable

import torch
from torch import Tensor


class NTASGD(torch.optim.SGD):
    r"""SGD with a non-monotonically triggered switch to iterate averaging.

    Before the switch it is exactly :class:`torch.optim.SGD`. Evaluation ``k`` (0-based) with validation loss
    :math:`v_k` triggers the switch when

    .. math::
        k > n \quad\text{and}\quad v_k > \min_{j < k - n} v_j \qquad (n = \text{nonmono})

    i.e. the loss is worse than the best one from before the last ``nonmono`` evaluations. At the switch the
    current parameters :math:`w_0` start an average, and each later step's parameters :math:`w_1, w_2, \dots`
    join it:

    .. math::
        \bar w_m = \frac{1}{m + 1} \sum_{i=0}^{m} w_i, \qquad
        \bar w_m = \bar w_{m-1} + \frac{w_m - \bar w_{m-1}}{m + 1}

    SGD keeps updating the raw parameters (with momentum, if set); the average is read through
    :meth:`swap_to_average`.

    Args:
        params: parameters or parameter groups, as for :class:`torch.optim.SGD`.
        lr: learning rate.
        momentum, dampening, weight_decay, nesterov: as for :class:`torch.optim.SGD`.
        nonmono: how many recent evaluations are exempt from the comparison. Default: 5

    Attributes:
        averaging: whether the switch has happened.
        validation_losses: every loss passed to :meth:`step_validation`, in order.
        num_steps: optimizer steps taken so far.
        averaging_since: ``num_steps`` at the switch, or ``None``.
        num_averaged: how many iterates the average holds (the one at the switch included).

    Example::

        >>> optimizer = NTASGD(model.parameters(), lr=30.0, nonmono=5)  # doctest: +SKIP
        >>> for epoch in range(epochs):  # doctest: +SKIP
        ...     train_one_epoch(model, optimizer)
        ...     with optimizer.swap_to_average():  # the average once averaging, else the raw weights
        ...         val_loss = evaluate(model)
        ...     optimizer.step_validation(val_loss)
    """

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        lr: float,
        momentum: float = 0.0,
        dampening: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
        nonmono: int = 5,
    ) -> None:
        if nonmono < 0:
            raise ValueError(f"Invalid nonmono value: {nonmono}")
        super().__init__(
            params, lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay, nesterov=nesterov
        )
        self.nonmono = nonmono
        self.validation_losses: list[float] = []
        self.averaging = False
        self.num_steps = 0
        self.averaging_since: int | None = None
        self.num_averaged = 0
        self._stashed: list[Tensor] | None = None  # raw parameters while the average is swapped in

    def _parameters(self) -> list[Tensor]:
        return [p for group in self.param_groups for p in group["params"]]

    def step(self, closure=None):  # type: ignore[override]
        """One SGD step; once averaging, the new parameters join the average."""
        if self._stashed is not None:
            raise RuntimeError("NTASGD.step() called while the averaged parameters are swapped in; call swap_back()")
        loss = super().step(closure)
        self.num_steps += 1
        if self.averaging:
            self.num_averaged += 1
            weight = 1.0 / self.num_averaged
            with torch.no_grad():
                for p in self._parameters():
                    self.state[p]["average"].lerp_(p, weight)  # average += (p - average) / m
        return loss

    def start_averaging(self) -> None:
        """Switch to averaging now (no-op when already averaging); the current parameters start the average."""
        if self.averaging:
            return
        with torch.no_grad():
            for p in self._parameters():
                self.state[p]["average"] = p.detach().clone()
        self.averaging = True
        self.averaging_since = self.num_steps
        self.num_averaged = 1

    def step_validation(self, loss: float | Tensor) -> bool:
        """Record a validation loss and start averaging if the non-monotone criterion holds.

        Returns:
            ``True`` when this call started averaging.
        """
        loss = float(loss)
        history = self.validation_losses
        stalled = len(history) > self.nonmono and loss > min(history[: len(history) - self.nonmono])
        history.append(loss)
        if stalled and not self.averaging:
            self.start_averaging()
            return True
        return False

    def swap_to_average(self) -> "_SwapBack":
        """Put the averaged parameters into the model (in place) until :meth:`swap_back`.

        Before averaging starts this swaps nothing, so evaluation code can use it unconditionally. The return
        value is a context manager that calls :meth:`swap_back` on exit::

            with optimizer.swap_to_average():
                val_loss = evaluate(model)

        Raises:
            RuntimeError: when the average is already swapped in.
        """
        if self._stashed is not None:
            raise RuntimeError("NTASGD.swap_to_average() called twice without swap_back()")
        params = self._parameters() if self.averaging else []
        with torch.no_grad():
            self._stashed = [p.detach().clone() for p in params]
            for p in params:
                p.copy_(self.state[p]["average"])
        return _SwapBack(self)

    def swap_back(self) -> None:
        """Put the raw (SGD) parameters back after :meth:`swap_to_average`.

        Raises:
            RuntimeError: when the average is not swapped in.
        """
        if self._stashed is None:
            raise RuntimeError("NTASGD.swap_back() called without swap_to_average()")
        params = self._parameters() if self.averaging else []
        with torch.no_grad():
            for p, raw in zip(params, self._stashed):
                p.copy_(raw)
        self._stashed = None

    def state_dict(self) -> dict[str, Any]:
        """SGD's state dict (per-parameter ``"average"`` tensors included) plus an ``"ntasgd"`` dict of numbers.

        Raises:
            RuntimeError: while the average is swapped in (the model would then hold the wrong weights).
        """
        if self._stashed is not None:
            raise RuntimeError("NTASGD.state_dict() called while the averaged parameters are swapped in")
        state = super().state_dict()
        state["ntasgd"] = {
            "nonmono": self.nonmono,
            "validation_losses": list(self.validation_losses),
            "averaging": self.averaging,
            "num_steps": self.num_steps,
            "averaging_since": self.averaging_since,
            "num_averaged": self.num_averaged,
        }
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Inverse of :meth:`state_dict`.

        Raises:
            ValueError: when ``state_dict`` did not come from an :class:`NTASGD`.
        """
        state_dict = dict(state_dict)
        trigger = state_dict.pop("ntasgd", None)
        if trigger is None:
            raise ValueError("NTASGD.load_state_dict: the state dict has no 'ntasgd' entry; it is not from NTASGD")
        if self._stashed is not None:
            raise RuntimeError("NTASGD.load_state_dict() called while the averaged parameters are swapped in")
        super().load_state_dict(state_dict)
        self.nonmono = int(trigger["nonmono"])
        self.validation_losses = [float(loss) for loss in trigger["validation_losses"]]
        self.averaging = bool(trigger["averaging"])
        self.num_steps = int(trigger["num_steps"])
        self.averaging_since = trigger["averaging_since"]
        self.num_averaged = int(trigger["num_averaged"])


class _SwapBack:
    """Returned by :meth:`NTASGD.swap_to_average`; calls :meth:`NTASGD.swap_back` when the ``with`` block ends."""

    def __init__(self, optimizer: NTASGD) -> None:
        self.optimizer = optimizer

    def __enter__(self) -> NTASGD:
        return self.optimizer

    def __exit__(self, *exc_info: object) -> None:
        self.optimizer.swap_back()
