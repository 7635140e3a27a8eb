"""AWD-LSTM language model (Merity, Keskar and Socher 2017, "Regularizing and Optimizing LSTM Language Models").

Letters: T time steps, B batch, V vocabulary size, E embedding size, H hidden size, L layers; ``H_l`` is the size
of layer l (H for every layer but the last, whose size is E so the decoder can share the embedding's weights).

::

    words (T, B) ─ embedding (embedding_dropout: whole words) ─ locked dropout (input_dropout) ─▶ x (T, B, E)
    for l in 0 .. L-1:   x, (h_l, c_l) = LSTM_l(x, (h_l, c_l))        # one lstmkit.LSTM per layer,
                                                                      # DropConnect on its w_hh (weight_dropout)
                         raw_outputs[l] = x                           # (T, B, H_l)
                         x = locked dropout (hidden_dropout, or output_dropout after the last layer)
                         dropped_outputs[l] = x
    logits = x @ embedding.weight.T + bias                            # (T, B, V), tied decoder
    loss = cross entropy + ar_alpha * mean(dropped_outputs[-1]^2)
                         + tar_beta * mean((raw_outputs[-1][t] - raw_outputs[-1][t-1])^2)

Every LSTM layer runs on ``lstmkit.LSTM``, whose ``weight_dropout`` draws a fresh mask over w_hh per forward call
and hands the dropped copy to the kernel (torch's native one on CPU and GPU), leaving the parameter untouched.

Mixed precision: under ``torch.autocast`` (bfloat16 on CPU) the LSTMs and the decoder's GEMMs compute in bfloat16
while activations between layers, the recurrent state, the softmax and the loss stay in the parameters' dtype.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import torch
from torch import Tensor, nn

from .._checks import check_field_types
from ..nn import LSTM
from ..ops import IMPLS, linear_cross_entropy
from ..regularize import (
    activation_regularization,
    embedding_dropout,
    locked_dropout,
    temporal_activation_regularization,
)

__all__ = ["LanguageModelConfig", "LanguageModel", "LMOutput", "LMLoss", "LMHidden", "detach_hidden"]

LMHidden = tuple[tuple[Tensor, Tensor], ...]
"""The recurrent state: one ``(h, c)`` per layer, each of shape ``(1, B, H_l)``."""


@dataclasses.dataclass(frozen=True)
class LanguageModelConfig:
    """Sizes and regularisation of a :class:`LanguageModel`. Defaults: the AWD-LSTM PTB model (24M parameters
    with a 10,000-word vocabulary)."""

    embedding_size: int = 400  # E: word vector size, and the last LSTM layer's size when tied
    hidden_size: int = 1150  # H: size of every LSTM layer but the last
    num_layers: int = 3  # L: stacked single-layer LSTMs
    tie_weights: bool = True  # the decoder uses the embedding matrix (Press & Wolf 2017; Inan et al. 2017)
    embedding_dropout: float = 0.1  # probability of dropping a word (all its occurrences) from the embedding
    input_dropout: float = 0.4  # locked dropout on the embedded words
    hidden_dropout: float = 0.3  # locked dropout between LSTM layers
    output_dropout: float = 0.4  # locked dropout on the last layer's output, before the decoder
    weight_dropout: float = 0.5  # DropConnect on each layer's recurrent weights w_hh
    ar_alpha: float = 2.0  # activation regularisation: alpha * mean(dropped last output^2)
    tar_beta: float = 1.0  # temporal activation regularisation: beta * mean((h_t - h_{t-1})^2)
    init_range: float = 0.1  # embedding weights from U(-init_range, init_range)
    impl: str = "auto"  # lstmkit.LSTM implementation ("auto": torch's native kernel for float32)

    def __post_init__(self) -> None:
        check_field_types(self)
        for name in ("embedding_size", "hidden_size", "num_layers"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in ("embedding_dropout", "input_dropout", "hidden_dropout", "output_dropout", "weight_dropout"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise ValueError(f"{name} must be a probability in [0, 1), got {value}")
        for name in ("ar_alpha", "tar_beta", "init_range"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.impl not in IMPLS:
            raise ValueError(f"impl must be one of {', '.join(IMPLS)}, got {self.impl!r}")

    def layer_sizes(self) -> list[tuple[int, int]]:
        """(input size, hidden size) of each layer."""
        last = self.embedding_size if self.tie_weights else self.hidden_size
        sizes = []
        for layer in range(self.num_layers):
            inputs = self.embedding_size if layer == 0 else self.hidden_size
            sizes.append((inputs, last if layer == self.num_layers - 1 else self.hidden_size))
        return sizes


class LMOutput(NamedTuple):
    """What :meth:`LanguageModel.forward` returns.

    Attributes:
        output: (T, B, D) the last layer's output after output dropout: the decoder's input. Logits are
            :meth:`LanguageModel.logits` of it; the loss fuses decoder and softmax (:meth:`LanguageModel.loss`).
        hidden: the final state, one ``(h, c)`` per layer, to pass to the next window (detached).
        raw_outputs: each layer's output before dropout, (T, B, H_l); TAR uses the last.
        dropped_outputs: each layer's output after locked dropout; AR uses the last (``== output``).
    """

    output: Tensor
    hidden: LMHidden
    raw_outputs: tuple[Tensor, ...]
    dropped_outputs: tuple[Tensor, ...]


class LMLoss(NamedTuple):
    """The training objective and its parts (scalars).

    Attributes:
        loss: ``cross_entropy + ar + tar``, the value to differentiate.
        cross_entropy: mean negative log-likelihood per target token (nats).
        ar, tar: the activation penalties (zero in eval mode or when their weight is 0).
    """

    loss: Tensor
    cross_entropy: Tensor
    ar: Tensor
    tar: Tensor


def detach_hidden(hidden: LMHidden) -> LMHidden:
    """The same state cut from the graph that produced it (truncated BPTT between windows)."""
    return tuple((h.detach(), c.detach()) for h, c in hidden)


class LanguageModel(nn.Module):
    r"""An AWD-LSTM word or character language model.

    Embedding, ``num_layers`` single-layer :class:`lstmkit.LSTM` s (layer sizes H, ..., H, E), and a decoder tied
    to the embedding, with every regulariser of AWD-LSTM as a named option of :class:`LanguageModelConfig`
    (embedding, input, hidden and output dropout, weight dropout on w_hh, AR and TAR). See the module docstring
    for the data flow. All dropouts act only in training mode.

    Args:
        vocab_size: V.
        config: sizes and regularisation. Default: the AWD-LSTM PTB configuration.

    Inputs: words, hidden
        - words: (T, B) integer token ids.
        - hidden: the state from the previous window (:attr:`LMOutput.hidden`) or ``None`` for zeros.

    Outputs: :class:`LMOutput` ``(output, hidden, raw_outputs, dropped_outputs)``.

    Attributes:
        embedding: ``nn.Embedding(V, E)``, initialised from U(-init_range, init_range).
        layers: ``nn.ModuleList`` of single-layer LSTMs.
        decoder: ``nn.Linear(E, V)`` whose weight *is* ``embedding.weight`` when tied; bias initialised to 0.

    Example::

        >>> model = LanguageModel(10000, LanguageModelConfig(embedding_size=200, hidden_size=400, num_layers=2))
        >>> words, targets = torch.randint(10000, (35, 20)), torch.randint(10000, (35, 20))
        >>> out = model(words)                                   # out.output: (35, 20, 200)
        >>> losses = model.loss(out, targets)                    # LMLoss(loss, cross_entropy, ar, tar)
        >>> losses.loss.backward()
        >>> out = model(words, detach_hidden(out.hidden))        # the next window continues the state
    """

    def __init__(self, vocab_size: int, config: LanguageModelConfig | None = None) -> None:
        super().__init__()
        config = config or LanguageModelConfig()
        if vocab_size < 1:
            raise ValueError(f"vocab_size must be at least 1, got {vocab_size}")
        self.vocab_size = vocab_size
        self.config = config
        self.embedding = nn.Embedding(vocab_size, config.embedding_size)
        self.layers = nn.ModuleList(
            LSTM(inputs, hidden, weight_dropout=config.weight_dropout, impl=config.impl)
            for inputs, hidden in config.layer_sizes()
        )
        output_size = config.layer_sizes()[-1][1]
        self.decoder = nn.Linear(output_size, vocab_size)
        if config.tie_weights:
            self.decoder.weight = self.embedding.weight
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Embedding from U(-init_range, init_range), decoder bias 0, LSTMs as torch initialises them."""
        r = self.config.init_range
        nn.init.uniform_(self.embedding.weight, -r, r)
        if not self.config.tie_weights:
            nn.init.uniform_(self.decoder.weight, -r, r)
        nn.init.zeros_(self.decoder.bias)
        for layer in self.layers:
            layer.reset_parameters()

    def init_hidden(self, batch_size: int) -> LMHidden:
        """Zero state for ``batch_size`` sequences."""
        weight = self.embedding.weight
        return tuple(
            (weight.new_zeros(1, batch_size, layer.hidden_size), weight.new_zeros(1, batch_size, layer.hidden_size))
            for layer in self.layers
        )

    def forward(self, words: Tensor, hidden: LMHidden | None = None) -> LMOutput:
        config = self.config
        if words.dim() != 2:
            raise ValueError(f"words must be (T, B) token ids, got shape {tuple(words.shape)}")
        if hidden is None:
            hidden = self.init_hidden(words.size(1))
        elif len(hidden) != len(self.layers):
            raise ValueError(f"hidden must hold one (h, c) per layer ({len(self.layers)}), got {len(hidden)}")
        x = embedding_dropout(self.embedding.weight, words, config.embedding_dropout, self.training)  # (T, B, E)
        x = locked_dropout(x, config.input_dropout, self.training)
        new_hidden, raw_outputs, dropped_outputs = [], [], []
        last = len(self.layers) - 1
        dtype = self.embedding.weight.dtype
        for index, (layer, state) in enumerate(zip(self.layers, hidden)):
            x, (h, c) = layer(x, state)  # (T, B, H_l)
            x, state = x.to(dtype), (h.to(dtype), c.to(dtype))  # autocast computes in bf16; keep float32 between
            raw_outputs.append(x)
            new_hidden.append(state)
            x = locked_dropout(x, config.output_dropout if index == last else config.hidden_dropout, self.training)
            dropped_outputs.append(x)
        return LMOutput(x, tuple(new_hidden), tuple(raw_outputs), tuple(dropped_outputs))

    def logits(self, output: Tensor) -> Tensor:
        """Decoder scores ``output @ W.T + b``: (..., D) -> (..., V)."""
        return self.decoder(output)

    def log_probs(self, output: Tensor) -> Tensor:
        """Log-probabilities of the next token: (..., D) -> (..., V)."""
        return torch.log_softmax(self.logits(output), dim=-1)

    def loss(self, out: LMOutput, targets: Tensor) -> LMLoss:
        """Cross entropy of the next-token predictions plus AR and TAR (training mode only).

        The decoder and the softmax run as one fused operation
        (:func:`lstmkit.ops.linear_cross_entropy`) over the flattened (T * B, D) outputs.

        Args:
            out: this model's :class:`LMOutput` for the window.
            targets: (T, B) the next token at every position.
        """
        if tuple(targets.shape) != tuple(out.output.shape[:2]):
            raise ValueError(f"targets must be (T, B) = {tuple(out.output.shape[:2])}, got {tuple(targets.shape)}")
        features = out.output.size(-1)
        cross_entropy = linear_cross_entropy(
            out.output.reshape(-1, features), self.decoder.weight, self.decoder.bias, targets.reshape(-1)
        )
        zero = cross_entropy.new_zeros(())
        ar = tar = zero
        if self.training and self.config.ar_alpha:
            ar = activation_regularization(out.dropped_outputs[-1], self.config.ar_alpha)
        if self.training and self.config.tar_beta:
            tar = temporal_activation_regularization(out.raw_outputs[-1], self.config.tar_beta)
        return LMLoss(cross_entropy + ar + tar, cross_entropy, ar, tar)

    def num_parameters(self) -> int:
        """Distinct parameters (a tied weight counts once)."""
        return sum(p.numel() for p in self.parameters())

    def extra_repr(self) -> str:
        c = self.config
        return (f"vocab_size={self.vocab_size}, embedding_dropout={c.embedding_dropout}, input_dropout="
                f"{c.input_dropout}, hidden_dropout={c.hidden_dropout}, output_dropout={c.output_dropout}, "
                f"weight_dropout={c.weight_dropout}, ar_alpha={c.ar_alpha}, tar_beta={c.tar_beta}")
