"""A sentence classifier on the AWD-LSTM encoder of a language model, with ULMFiT's concat pooling head
(Howard and Ruder 2018).

Letters: T time steps (the longest example of the batch), B examples, D the last LSTM layer's size, F the head's
hidden size, K classes.

::

    words (T, B) ── LanguageModel (embedding, LSTM layers, dropouts; its decoder unused) ──▶ out (T, B, D)
    pooled = [out at each example's last token, max over its tokens, mean over its tokens]            # (B, 3D)
    logits = Linear(Dropout(BatchNorm(ReLU(Linear(Dropout(BatchNorm(pooled)))))))                 # (B, K)

The encoder runs forwards only, so padding after an example's end never reaches that example's real positions;
the pooling ignores the padding through the mask.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import torch
from torch import Tensor, nn

from ..lm.model import LanguageModel, LanguageModelConfig

__all__ = ["ClassifierConfig", "ClassifierOutput", "Classifier", "concat_pool"]


@dataclasses.dataclass(frozen=True)
class ClassifierConfig:
    """Sizes and regularisation of a :class:`Classifier`; the encoder's are a language model's."""

    encoder: LanguageModelConfig = dataclasses.field(default_factory=lambda: LanguageModelConfig(
        embedding_size=200, hidden_size=400, num_layers=2, embedding_dropout=0.05, input_dropout=0.25,
        hidden_dropout=0.15, output_dropout=0.2, weight_dropout=0.25))  # the small LM preset's sizes
    head_hidden: int = 50  # F: the head's hidden layer (ULMFiT: 50)
    head_dropout: tuple[float, float] = (0.2, 0.1)  # dropout before the head's first and second linear layer

    def __post_init__(self) -> None:
        if self.head_hidden < 1:
            raise ValueError(f"head_hidden must be positive, got {self.head_hidden}")
        for p in self.head_dropout:
            if not 0 <= p < 1:
                raise ValueError(f"head_dropout values must be in [0, 1), got {self.head_dropout}")


class ClassifierOutput(NamedTuple):
    """What :class:`Classifier` returns: ``logits`` (B, K) and the ``pooled`` features (B, 3D)."""

    logits: Tensor
    pooled: Tensor


def concat_pool(outputs: Tensor, lengths: Tensor) -> Tensor:
    """``[h_last, max_t h_t, mean_t h_t]`` over each example's real time steps.

    Args:
        outputs: ``(T, B, D)`` per-step outputs; steps at or after an example's length are padding.
        lengths: ``(B,)`` real steps per example, each in 1 .. T.

    Returns:
        ``(B, 3D)``.
    """
    steps, batch, _ = outputs.shape
    if lengths.shape != (batch,):
        raise ValueError(f"lengths must have shape ({batch},), got {tuple(lengths.shape)}")
    lengths = lengths.to(outputs.device)
    mask = (torch.arange(steps, device=outputs.device).unsqueeze(1) < lengths.unsqueeze(0)).unsqueeze(-1)  # (T, B, 1)
    last = outputs[lengths - 1, torch.arange(batch, device=outputs.device)]  # (B, D)
    largest = outputs.masked_fill(~mask, float("-inf")).amax(dim=0)  # (B, D)
    mean = (outputs * mask).sum(dim=0) / lengths.unsqueeze(1).to(outputs.dtype)  # (B, D)
    return torch.cat([last, largest, mean], dim=1)  # (B, 3D)


class Classifier(nn.Module):
    r"""AWD-LSTM encoder + concat pooling + a two-layer head with batch norm and dropout.

    .. math::
        \begin{array}{ll}
        h_{1:n} = \mathrm{AWD\text{-}LSTM}(w_{1:n}) \\
        z = [h_n;\ \max_t h_t;\ \tfrac{1}{n} \textstyle\sum_t h_t] \\
        a = \mathrm{ReLU}(W_1\, \mathrm{drop}_1(\mathrm{BN}_1(z)) + b_1) \\
        \mathrm{logits} = W_2\, \mathrm{drop}_2(\mathrm{BN}_2(a)) + b_2
        \end{array}

    Args:
        vocab_size: V, the encoder's vocabulary.
        num_classes: K (at least 2).
        config: :class:`ClassifierConfig`.

    Inputs: words, lengths
        - words: ``(T, B)`` token ids, padded after each example.
        - lengths: ``(B,)`` real tokens per example.

    Outputs: :class:`ClassifierOutput` ``(logits (B, K), pooled (B, 3D))``.

    Attributes:
        encoder: a :class:`~lstmkit.lm.LanguageModel` (its ``embedding`` and ``layers``; a pretrained language
            model's state_dict loads into it as is).
        head: ``nn.Sequential`` of BatchNorm1d, Dropout, Linear(3D, F), ReLU, BatchNorm1d, Dropout, Linear(F, K).

    Example::

        >>> model = Classifier(1000, 2)
        >>> words, lengths = torch.randint(1000, (12, 4)), torch.tensor([12, 7, 3, 1])
        >>> model(words, lengths).logits.shape
        torch.Size([4, 2])
    """

    def __init__(self, vocab_size: int, num_classes: int, config: ClassifierConfig | None = None) -> None:
        super().__init__()
        config = config or ClassifierConfig()
        if num_classes < 2:
            raise ValueError(f"num_classes must be at least 2, got {num_classes}")
        self.config = config
        self.num_classes = num_classes
        self.encoder = LanguageModel(vocab_size, config.encoder)
        features = 3 * config.encoder.layer_sizes()[-1][1]
        first, second = config.head_dropout
        self.head = nn.Sequential(
            nn.BatchNorm1d(features), nn.Dropout(first), nn.Linear(features, config.head_hidden), nn.ReLU(),
            nn.BatchNorm1d(config.head_hidden), nn.Dropout(second), nn.Linear(config.head_hidden, num_classes),
        )

    def forward(self, words: Tensor, lengths: Tensor) -> ClassifierOutput:
        if words.dim() != 2 or lengths.shape != (words.size(1),):
            raise ValueError(f"words must be (T, B) and lengths (B,), got {tuple(words.shape)} and "
                             f"{tuple(lengths.shape)}")
        if lengths.numel() and (int(lengths.min()) < 1 or int(lengths.max()) > words.size(0)):
            raise ValueError(f"lengths must be in 1 .. T = {words.size(0)}, got {lengths.tolist()[:8]}")
        out = self.encoder(words).output.float()  # (T, B, D)
        pooled = concat_pool(out, lengths)  # (B, 3D)
        return ClassifierOutput(self.head(pooled), pooled)

    def layer_groups(self) -> list[list[nn.Parameter]]:
        """Parameters by depth, bottom first, for discriminative learning rates and gradual unfreezing: the
        embedding, each LSTM layer, the head. (The language model's unused decoder bias is in no group.)"""
        groups = [[self.encoder.embedding.weight]]
        groups += [list(layer.parameters()) for layer in self.encoder.layers]
        groups.append(list(self.head.parameters()))
        return groups

    def num_parameters(self) -> int:
        return sum(p.numel() for group in self.layer_groups() for p in group)
