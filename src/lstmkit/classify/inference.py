"""A faster inference form of a trained :class:`~lstmkit.classify.model.Classifier`, for ``lstmkit classify``.

Letters as in :mod:`lstmkit.classify.model`: T steps, B examples, V words, E embedding size, H a layer's hidden
size.

::

    float32 (the default of classify_texts; the same function as Classifier.forward in eval mode):
      table = E_w @ W_ih0.T + b_ih0 + b_hh0                  (V, 4H0), once per model (136 MB for 21k words and
                                                             H0 = 400): the first layer's input
                                                             projection of every word, looked up instead of computed
      layer 0: gates_t = table[words_t] + h_{t-1} @ W_hh0.T  only the examples still running at step t
      layer l > 0: all steps' input projections in one GEMM, then the same recurrence
      concat pooling and the head as the model's
    int8 (precision="int8"): the same, with every weight matrix of the LSTM layers but the first layer's table in
      int8 (per output row scales) and activations quantized per step (fbgemm's dynamic int8 linear); the table,
      the gate arithmetic, pooling and head stay float32. Not the same function: see benchmarks/RESULTS.md for
      its accuracy against float32.

What makes it faster than the module (benchmarks/bench_classify.py; 1.17x torch.nn.LSTM's float32, 1.69x with int8,
on 2 threads): the table removes the first layer's input projection (22 % of the arithmetic of the default sizes);
examples come sorted longest first (:func:`lstmkit.data.batch_plan` does it), so step ``t`` runs only the ``n_t``
examples longer than ``t``, never padding (the batch must be in that order: :meth:`FastClassifier.logits` checks
it); one sigmoid covers the four gates (the cell-candidate rows are doubled: tanh z = 2 sigmoid(2z) - 1, within
2e-7); each step's h is written straight into its output row. :func:`lstmkit.classify.classify_texts` adds workers
that take whole batches.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import Tensor

from .model import Classifier, concat_pool

__all__ = ["FastClassifier", "supports_fast_path"]


def supports_fast_path(model: Classifier) -> bool:
    """Whether :class:`FastClassifier` computes what ``model`` does: plain one-layer, one-direction LSTM layers
    with biases (no peepholes, layer norm, zoneout, cell clipping or projections), float32 weights."""
    for layer in model.encoder.layers:
        if (layer.num_layers != 1 or layer.bidirectional or layer.proj_size or not layer.bias
                or getattr(layer, "peephole", False) or getattr(layer, "layer_norm", False)
                or any(getattr(layer, "zoneout", (0.0, 0.0))) or getattr(layer, "cell_clip", None) is not None
                or layer.weight_hh_l0.dtype != torch.float32):
            return False
    return model.encoder.embedding.weight.dtype == torch.float32


def _quantize_rows(weight: Tensor, bias: Tensor | None) -> Any:
    """``weight`` (out, in) as int8 with one symmetric scale per output row, packed for fbgemm's dynamic linear."""
    scale = (weight.abs().amax(dim=1) / 127.0).clamp_min(1e-12).double()
    with warnings.catch_warnings():  # torch marks its quantized tensors deprecated; fbgemm's kernels are current
        warnings.simplefilter("ignore")
        q = torch.quantize_per_channel(weight.detach().float().contiguous(), scale,
                                       torch.zeros(weight.size(0), dtype=torch.long), 0, torch.qint8)
        return torch.ops.quantized.linear_prepack(q, None if bias is None else bias.detach().float())


class _Layer:
    """One LSTM layer's inference weights: the input side (a table, float32 (W.T, b) or packed int8) and the
    recurrent side (float32 W_hh.T or packed int8). The cell-candidate rows (g, the third quarter) are doubled, so
    that one sigmoid covers all four gates: tanh(z) = 2 sigmoid(2z) - 1."""

    def __init__(self, layer: torch.nn.Module, embedding: Tensor | None, int8: bool) -> None:
        hidden = layer.weight_hh_l0.size(1)
        scale = torch.ones(4 * hidden, 1)
        scale[2 * hidden : 3 * hidden] = 2.0
        w_ih, w_hh = layer.weight_ih_l0.detach() * scale, layer.weight_hh_l0.detach() * scale
        bias = (layer.bias_ih_l0 + layer.bias_hh_l0).detach() * scale[:, 0]
        self.hidden = hidden
        self.int8 = int8
        self.table = torch.addmm(bias, embedding, w_ih.t()) if embedding is not None else None  # (V, 4H)
        if self.table is not None:
            self.input = None
        elif int8:
            self.input = _quantize_rows(w_ih, bias)
        else:
            self.input = (w_ih.t().contiguous(), bias)
        self.recurrent = _quantize_rows(w_hh, None) if int8 else w_hh.t().contiguous()

    def project(self, x: Tensor) -> Tensor:
        """Input projections (plus both biases) of ``x`` (N, I): (N, 4H)."""
        if self.int8:
            return torch.ops.quantized.linear_dynamic(x, self.input, True)
        weight, bias = self.input
        return torch.addmm(bias, x, weight)

    def run(self, inputs: Tensor, running: list[int]) -> Tensor:
        """The recurrence from zero states over ``inputs``: for the table layer the words (T, B), else the input
        projections (T, B, 4H). ``running[t]`` examples (the first ones) are still running at step t. Returns
        (T, B, H); rows past an example's end stay zero. Each step's h is written straight into its output row
        and read back from there at the next step; the cell state is the previous step's, cut to the running
        examples."""
        steps, batch = inputs.shape[:2]
        out = torch.zeros(steps, batch, self.hidden)
        cell = None
        for t in range(steps):
            n = running[t]
            if self.table is not None:  # this step's rows of the table: gathered now, while they stay in cache
                gates = torch.nn.functional.embedding(inputs[t, :n], self.table)
            else:
                gates = inputs[t, :n]
            if t:
                if self.int8:
                    gates = torch.ops.quantized.linear_dynamic(out[t - 1, :n], self.recurrent, True).add_(gates)
                elif self.table is not None:
                    gates = gates.addmm_(out[t - 1, :n], self.recurrent)
                else:
                    gates = torch.addmm(gates, out[t - 1, :n], self.recurrent)
            i, f, g, o = torch.sigmoid(gates).chunk(4, dim=1)  # g holds sigmoid(2z): tanh(z) = 2 g - 1
            candidate = torch.addcmul(i, i, g, value=-2.0).neg_()  # i * tanh(z) = 2 i g - i
            cell = candidate if cell is None else candidate.addcmul_(f, cell[:n])
            torch.mul(o, torch.tanh(cell), out=out[t, :n])
        return out


class FastClassifier:
    """Inference-only form of a classifier (see the module docstring); build it once per model.

    Args:
        model: a trained classifier (put in eval mode; its weights are read now, so later changes to the model
            are not seen).
        int8: int8 weights for the LSTM layers' matrices (not the same function as the model).

    Raises:
        ValueError: a model :func:`supports_fast_path` refuses.
    """

    def __init__(self, model: Classifier, int8: bool = False) -> None:
        if not supports_fast_path(model):
            raise ValueError("the fast path needs plain one-layer float32 LSTM layers (no peepholes, layer norm, "
                             "zoneout, cell clipping or projections)")
        model.eval()
        self.int8 = int8
        embedding = model.encoder.embedding.weight.detach()
        with torch.no_grad():
            self.layers = [_Layer(layer, embedding if index == 0 else None, int8)
                           for index, layer in enumerate(model.encoder.layers)]
        self.head = model.head

    @torch.inference_mode()
    def logits(self, words: Tensor, lengths: Tensor) -> Tensor:
        """``(B, K)`` logits of a batch whose ``lengths`` do not increase (longest first).

        Raises:
            ValueError: lengths out of order or outside 1 .. T.
        """
        steps, batch = words.shape
        if lengths.shape != (batch,) or (batch and (int(lengths.min()) < 1 or int(lengths.max()) > steps)):
            raise ValueError(f"lengths must be (B,) = ({batch},) values in 1 .. T = {steps}")
        if batch > 1 and bool((lengths[1:] > lengths[:-1]).any()):
            raise ValueError("the fast path needs the batch sorted longest first (lengths must not increase)")
        running = (lengths.unsqueeze(0) > torch.arange(steps).unsqueeze(1)).sum(dim=1).tolist()  # length > t
        x = None
        for layer in self.layers:
            if layer.table is not None:
                x = layer.run(words, running)
            else:
                x = layer.run(layer.project(x.reshape(steps * batch, -1)).view(steps, batch, -1), running)
        return self.head(concat_pool(x, lengths))
