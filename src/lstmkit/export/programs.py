"""Export forms of the models: plain tensors in and out, variable lengths as a (B,) tensor instead of a
PackedSequence, so that torch.export can trace them with a symbolic length and batch.

Letters as in :mod:`lstmkit.ops.reference` (T, B, I, H, P); D directions.

Why not PackedSequence: packing sorts the batch by length and sizes its data by the sum of the lengths, shapes
that depend on the values of the lengths. :func:`lstm_with_lengths` computes the same thing on the padded batch
with the operator ``lstmkit::lstm_layer`` (impl auto and fused) or the reference step looped by torch's scan
(impl reference and native; :func:`lstmkit.ops.reference.lstm_layer_scan`):

- a sequence's state stops changing after its last step: the operator's zoneout masks (the weight of the previous
  state in ``lerp(new, previous, mask)``) are 1 past each sequence's end, and the module's eval-mode zoneout
  probability before it;
- the reverse direction runs forward over each sequence reversed within its own length (a gather whose index
  is built from the lengths, shape (T, B) whatever their values), and its output is reversed back the same way;
- outputs past a sequence's end are zeros, as ``pad_packed_sequence`` gives.

Only inference (eval mode) is exported.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..tagger.data import PAD_TAG
from ..nn import LSTM
from ..ops.layer_op import lstm_layer_fused
from ..ops.reference import lstm_layer_ref, lstm_layer_scan
from .onnx_graph import ExportError

__all__ = ["lstm_with_lengths", "LSTMWithLengths", "LanguageModelProgram", "TaggerProgram"]


def _time_index(steps: int, lengths: Tensor) -> tuple[Tensor, Tensor]:
    """(T, B) ``real``: step t is one of sequence b's; (T, B) ``flip``: the step that reverses each sequence
    within its own length (t -> length - 1 - t for real steps, t itself past the end; its own inverse)."""
    t = torch.arange(steps, device=lengths.device).unsqueeze(1)  # (T, 1)
    real = t < lengths.unsqueeze(0)  # (T, B)
    flip = torch.where(real, lengths.unsqueeze(0) - 1 - t, t)  # (T, B)
    return real, flip


def _gather_time(x: Tensor, index: Tensor) -> Tensor:
    """``x[index[t, b], b]`` for a (T, B, F) ``x``."""
    return x.gather(0, index.unsqueeze(-1).expand(-1, -1, x.shape[-1]))


def _layer_function(impl: str):
    """The layer computation for the module's ``impl``: the operator for auto and fused; the reference equations
    for reference and native (torch's kernel has no frozen steps; its equations are the reference's), looped by
    torch's scan under torch.export so that T stays symbolic."""
    if impl in ("auto", "fused"):
        return lstm_layer_fused
    return lstm_layer_scan if torch.compiler.is_exporting() else lstm_layer_ref


def lstm_with_lengths(
    module: LSTM, x: Tensor, lengths: Tensor, hx: tuple[Tensor, Tensor] | None = None
) -> tuple[Tensor, tuple[Tensor, Tensor]]:
    """``module`` (eval mode) over the time-major padded ``x`` (T, B, I) whose sequence b has ``lengths[b]``
    steps: what the module computes for the PackedSequence of those sequences, without packing.

    Returns ``output`` (T, B, D*P), zeros past each sequence's end, and ``(h_n, c_n)`` (L*D, B, P / H), each
    sequence's state after its own last step.
    """
    if module.training:
        raise ExportError("export computes inference: call .eval() on the model first")
    directions = 2 if module.bidirectional else 1
    proj = module.proj_size or module.hidden_size
    steps, batch = x.shape[0], x.shape[1]
    if hx is None:
        hx = (x.new_zeros(module.num_layers * directions, batch, proj),
              x.new_zeros(module.num_layers * directions, batch, module.hidden_size))
    real, flip = _time_index(steps, lengths)
    past_end = (~real).unsqueeze(-1).to(x.dtype)  # (T, B, 1): 1 where the state must stay as it is
    weights, variants = module.layer_weights(), module.variants()
    layer_fn = _layer_function(module.impl)
    h_n, c_n = [], []
    layer_input = x
    for layer in range(module.num_layers):
        outputs = []
        for direction in range(directions):
            k = layer * directions + direction
            v = variants[k]
            # keep the previous state past the end; the eval-mode zoneout probability before it
            keep_h = (past_end + (1 - past_end) * v.zoneout_h).expand(steps, batch, proj)
            keep_c = (past_end + (1 - past_end) * v.zoneout_c).expand(steps, batch, module.hidden_size)
            source = _gather_time(layer_input, flip) if direction == 1 else layer_input
            held = v._replace(zoneout_h=keep_h, zoneout_c=keep_c)
            out, (h, c) = layer_fn(source.contiguous(), (hx[0][k], hx[1][k]), *weights[k], variant=held)
            outputs.append(_gather_time(out, flip) if direction == 1 else out)
            h_n.append(h)
            c_n.append(c)
        layer_input = outputs[0] if directions == 1 else torch.cat(outputs, dim=-1)
    output = layer_input * real.unsqueeze(-1).to(x.dtype)  # zeros past the end
    return output, (torch.stack(h_n), torch.stack(c_n))


class LSTMWithLengths(nn.Module):
    """An :class:`lstmkit.LSTM` taking ``(input, lengths, h0, c0)``: padded input in the module's layout (batch
    first or not) and the real length of each sequence, for export. Outputs ``(output, h_n, c_n)``."""

    def __init__(self, lstm: LSTM) -> None:
        super().__init__()
        self.lstm = lstm

    def forward(self, input: Tensor, lengths: Tensor, h0: Tensor, c0: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        x = input.transpose(0, 1) if self.lstm.batch_first else input
        output, (h_n, c_n) = lstm_with_lengths(self.lstm, x, lengths, (h0, c0))
        return (output.transpose(0, 1) if self.lstm.batch_first else output), h_n, c_n


class LanguageModelProgram(nn.Module):
    """A :class:`~lstmkit.lm.LanguageModel` as ``(words (T, B), h0_0, c0_0, h0_1, ...) -> (logits (T, B, V),
    h_n_0, c_n_0, ...)``: the state entering and leaving each layer, (1, B, H_k) each, flattened."""

    def __init__(self, model) -> None:
        super().__init__()
        self.model = model

    def forward(self, words: Tensor, *states: Tensor) -> tuple[Tensor, ...]:
        hidden = tuple((states[2 * k], states[2 * k + 1]) for k in range(len(self.model.layers)))
        out = self.model(words, hidden)
        return (self.model.logits(out.output), *(t for pair in out.hidden for t in pair))


class TaggerProgram(nn.Module):
    """A :class:`~lstmkit.tagger.Tagger` as ``(word_ids (B, T), lengths (B,), char_ids (U, C), char_lengths (U,),
    word_index (B, T)) -> (logits (B, T, K), tags (B, T))``: the tensors of a
    :class:`~lstmkit.data.TaggingBatch` in, the scores and the best tag of each word out (never ``<unk>``,
    -100 at padding), computed as :meth:`Tagger.forward` does with the packing replaced by lengths."""

    def __init__(self, tagger) -> None:
        super().__init__()
        self.tagger = tagger

    def forward(self, word_ids: Tensor, lengths: Tensor, char_ids: Tensor, char_lengths: Tensor,
                word_index: Tensor) -> tuple[Tensor, Tensor]:
        tagger = self.tagger
        chars = tagger.char_embedding(char_ids).transpose(0, 1)  # (C, U, Ec)
        _, (h_n, _) = lstm_with_lengths(tagger.char_lstm, chars, char_lengths)  # (2, U, Hc)
        spellings = torch.cat([h_n[0], h_n[1]], dim=-1)  # (U, 2Hc)
        words = tagger.word_embedding(tagger.word_dropout(word_ids))  # (B, T, E)
        x = torch.cat([words, spellings[word_index]], dim=-1).transpose(0, 1)  # (T, B, E + 2Hc)
        hidden, _ = lstm_with_lengths(tagger.sentence_lstm, x, lengths)  # (T, B, 2H)
        logits = tagger.output(hidden.transpose(0, 1))  # (B, T, K)
        best = logits[..., 1:].argmax(dim=-1) + 1  # (B, T)
        real = torch.arange(word_ids.shape[1], device=word_ids.device).unsqueeze(0) < lengths.unsqueeze(1)
        return logits, best.masked_fill(~real, PAD_TAG)
