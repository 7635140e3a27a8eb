"""Softmax cross entropy of a linear layer's output, fused: the language model's decoder and loss in one Function.

Letters: N rows (time steps x batch), D features, V classes (the vocabulary).

In a word-level language model this is most of the work: for the small PTB model (D = 200, V = 10,000) the
(N, V) logits are 50 times larger than everything the LSTM produces. The unfused composition
``F.cross_entropy(F.linear(x, W, b), y)`` walks that (N, V) matrix many times: log-softmax writes a second one,
the backward of the loss writes a third (zeros with one entry per row) and log-softmax's backward reads two and
writes a fourth. Here the backward turns the saved log-probabilities into the gradient *in place*::

    forward : logits = x @ W.T + b                       # (N, V)  one GEMM
              logp = log_softmax(logits)                 # (N, V)  logits are freed
              loss = -mean(logp[n, y_n])
    backward: G = exp(logp) ; G[n, y_n] -= 1 ; G *= g/N  # in place in logp's buffer
              dx = G @ W ; dW = G.T @ x ; db = sum_n G    # two GEMMs and a row sum

Same result as the unfused composition up to float rounding (the reference in the tests).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd.function import once_differentiable

__all__ = ["LinearCrossEntropyFunction", "linear_cross_entropy", "linear_cross_entropy_ref"]


def _check(x: Tensor, weight: Tensor, bias: Tensor | None, target: Tensor, reduction: str) -> None:
    if x.dim() != 2:
        raise ValueError(f"x must be 2-D (N, D), got shape {tuple(x.shape)}")
    if weight.dim() != 2 or weight.size(1) != x.size(1):
        raise ValueError(f"weight must be (V, D) with D = {x.size(1)}, got shape {tuple(weight.shape)}")
    if bias is not None and tuple(bias.shape) != (weight.size(0),):
        raise ValueError(f"bias must have shape ({weight.size(0)},), got {tuple(bias.shape)}")
    if target.dim() != 1 or target.size(0) != x.size(0):
        raise ValueError(f"target must be 1-D with N = {x.size(0)} entries, got shape {tuple(target.shape)}")
    if target.dtype not in (torch.int64, torch.int32):
        raise ValueError(f"target must hold integer class indices, got dtype {target.dtype}")
    if reduction not in ("mean", "sum"):
        raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
    if x.size(0) == 0:
        raise ValueError("x has no rows: nothing to compute a loss over")


class LinearCrossEntropyFunction(torch.autograd.Function):
    """Autograd Function behind :func:`linear_cross_entropy` (see the module docstring for the data flow).

    ``compute_dtype`` is the precision of the three GEMMs (e.g. bfloat16 under autocast); the softmax, the loss
    and the gradient of the logits are at least float32, and each gradient comes back in its input's dtype.
    """

    @staticmethod
    def forward(ctx, x, weight, bias, target, reduction: str, compute_dtype: torch.dtype):
        with torch.autocast(x.device.type, enabled=False):
            xc, wc = x.to(compute_dtype), weight.to(compute_dtype)
            logits = F.linear(xc, wc, None if bias is None else bias.to(compute_dtype))  # (N, V)
            logp = torch.log_softmax(logits, dim=1, dtype=torch.promote_types(compute_dtype, torch.float32))
        del logits
        target = target.long()
        picked = logp.gather(1, target.unsqueeze(1)).squeeze(1)  # (N,)
        loss = -picked.sum()
        if reduction == "mean":
            loss = loss / x.size(0)
        ctx.save_for_backward(xc, wc, logp, target)
        ctx.has_bias = bias is not None
        ctx.reduction = reduction
        ctx.dtypes = (x.dtype, weight.dtype, None if bias is None else bias.dtype)
        return loss

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_loss: Tensor):
        xc, wc, logp, target = ctx.saved_tensors
        x_dtype, w_dtype, b_dtype = ctx.dtypes
        scale = grad_loss.to(logp.dtype) / (xc.size(0) if ctx.reduction == "mean" else 1)  # ()
        grad = logp.exp_()  # (N, V) softmax, in the saved buffer (nothing else reads it)
        rows = torch.arange(grad.size(0), device=grad.device)
        grad[rows, target] -= 1.0
        grad.mul_(scale)
        grad_c = grad.to(xc.dtype)  # (N, V) in the GEMMs' precision (no copy in float32)
        grad_x = (grad_c @ wc).to(x_dtype) if ctx.needs_input_grad[0] else None  # (N, D)
        grad_weight = (grad_c.t() @ xc).to(w_dtype) if ctx.needs_input_grad[1] else None  # (V, D)
        grad_bias = grad.sum(0).to(b_dtype) if ctx.has_bias and ctx.needs_input_grad[2] else None  # (V,)
        return grad_x, grad_weight, grad_bias, None, None, None


def linear_cross_entropy(
    x: Tensor, weight: Tensor, bias: Tensor | None, target: Tensor, reduction: str = "mean"
) -> Tensor:
    r"""Cross entropy of ``softmax(x @ weight.T + bias)`` against ``target``, with a fused backward.

    .. math::
        \ell = \frac{1}{N} \sum_n \Big( \log \sum_v e^{z_{n,v}} - z_{n, y_n} \Big), \qquad z = x W^\top + b

    Args:
        x: (N, D) features (for a language model, the last layer's output flattened over time and batch).
        weight: (V, D) decoder weight (tied to the embedding in AWD-LSTM).
        bias: (V,) decoder bias or ``None``.
        target: (N,) class indices.
        reduction: ``"mean"`` (default) or ``"sum"`` over the N rows.

    Returns:
        A scalar tensor (at least float32). Without gradients needed it takes the plain path (no saved buffers).

    Under ``torch.autocast`` the three GEMMs run in the autocast dtype (bfloat16 on CPU) and the softmax in
    float32, as autocast runs ``F.linear`` and ``F.cross_entropy``; otherwise everything runs in ``x``'s dtype.

    Example::

        >>> x, w, b = torch.randn(6, 4, requires_grad=True), torch.randn(10, 4), torch.zeros(10)
        >>> loss = linear_cross_entropy(x, w, b, torch.tensor([1, 2, 3, 4, 5, 6]))
        >>> loss.backward()
    """
    _check(x, weight, bias, target, reduction)
    needs_grad = torch.is_grad_enabled() and any(
        t is not None and t.requires_grad for t in (x, weight, bias)
    )
    device = x.device.type
    compute_dtype = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else x.dtype
    if not needs_grad:
        return linear_cross_entropy_ref(x, weight, bias, target, reduction)
    return LinearCrossEntropyFunction.apply(x, weight, bias, target, reduction, compute_dtype)


def linear_cross_entropy_ref(
    x: Tensor, weight: Tensor, bias: Tensor | None, target: Tensor, reduction: str = "mean"
) -> Tensor:
    """The unfused reference: ``F.cross_entropy(F.linear(x, weight, bias), target)``, the softmax in at least
    float32."""
    logits = F.linear(x, weight, bias)
    if logits.dtype in (torch.float16, torch.bfloat16):
        logits = logits.float()
    return F.cross_entropy(logits, target.long(), reduction=reduction)
