"""A BiLSTM part-of-speech tagger over word embeddings and a character BiLSTM (Plank, Søgaard and Goldberg 2016).

Letters: B sentences, T words of the longest sentence, U distinct word forms in the batch, C characters of the longest
form, E word embedding size, Ec character embedding size, Hc character LSTM hidden size (per direction), H sentence
LSTM hidden size (per direction), K tags.

::

    word_ids (B, T) --word dropout--> embedding ------------------------------> (B, T, E)
    char_ids (U, C) --embedding--> BiLSTM --last states of both directions--> (U, 2Hc) --[word_index]--> (B, T, 2Hc)
    concat (B, T, E + 2Hc) --dropout--> 2-layer BiLSTM (packed by length) --dropout--> linear --> logits (B, T, K)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Literal, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from .._checks import check_field_types
from ..nn import LSTM
from ..regularize.word_dropout import WordDropout
from .data import PAD_TAG, TaggingBatch, TaggingVocabs

__all__ = ["TaggerConfig", "TaggerOutput", "Tagger", "tagging_loss"]


@dataclasses.dataclass(frozen=True)
class TaggerConfig:
    """Sizes and regularisation of a :class:`Tagger` (defaults near Plank et al. 2016)."""

    word_embedding_size: int = 100  # E: the vector of each known word form
    char_embedding_size: int = 50  # Ec: the vector of each character
    char_hidden_size: int = 64  # Hc: per direction; a word's spelling vector has 2 * Hc features
    hidden_size: int = 150  # H: per direction of the sentence BiLSTM
    num_layers: int = 2  # layers of the sentence BiLSTM
    dropout: float = 0.33  # on the sentence BiLSTM's input, between its layers and on its output
    word_dropout: float = 0.25  # alpha: a training word seen c times becomes <unk> with probability alpha / (alpha + c)
    max_word_chars: int = 32  # characters the character BiLSTM reads per form (longer forms: head and tail)
    forget_bias: float = 1.0  # added to the forget-gate bias of every LSTM at initialisation
    impl: Literal["auto", "native", "fused", "reference"] = "auto"  # lstmkit.LSTM implementation

    def __post_init__(self) -> None:
        check_field_types(self)
        for name in ("word_embedding_size", "char_embedding_size", "char_hidden_size", "hidden_size", "num_layers"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.word_dropout < 0:
            raise ValueError(f"word_dropout must be non-negative, got {self.word_dropout}")
        if self.max_word_chars < 2:
            raise ValueError(f"max_word_chars must be at least 2, got {self.max_word_chars}")


class TaggerOutput(NamedTuple):
    """What :class:`Tagger` returns.

    Attributes:
        logits: ``(B, T, K)`` unnormalised tag scores; rows at padding positions are meaningless.
        mask: ``(B, T)`` bool, True at real words.
    """

    logits: Tensor
    mask: Tensor


def tagging_loss(logits: Tensor, tags: Tensor, mask: Tensor) -> Tensor:
    """Mean cross-entropy over the real words of a batch; padding positions contribute nothing.

    Args:
        logits: ``(B, T, K)``.
        tags: ``(B, T)`` gold tag ids (any value at padding).
        mask: ``(B, T)`` bool, True at real words.
    """
    # every position's loss, then the mean over the real ones: the same value as selecting them first
    # (logits[mask]), without a shape that depends on the data, so torch.compile traces it whole
    per_word = F.cross_entropy(logits.flatten(0, 1), tags.masked_fill(~mask, 0).flatten(), reduction="none")  # (B T,)
    weights = mask.flatten().to(per_word.dtype)
    return (per_word * weights).sum() / weights.sum()


class Tagger(nn.Module):
    r"""Bidirectional LSTM tagger over word embeddings concatenated with a character BiLSTM encoding of each word.

    For a sentence of words :math:`w_1 \dots w_n` with characters :math:`c_{t,1} \dots c_{t,m}`:

    .. math::
        \begin{array}{ll}
        s_t = [\overrightarrow{\mathrm{LSTM}}_c(c_{t,1:m});\ \overleftarrow{\mathrm{LSTM}}_c(c_{t,1:m})] \\
        x_t = [e(\tilde w_t);\ s_t], \quad \tilde w_t = \text{<unk>} \text{ with probability }
              \alpha / (\alpha + \mathrm{count}(w_t)) \text{ in training} \\
        h_{1:n} = \mathrm{BiLSTM}^{(L)}(\mathrm{dropout}(x_{1:n})) \\
        \mathrm{logits}_t = W\, \mathrm{dropout}(h_t) + b
        \end{array}

    Sentences of a batch are packed by length, so a sentence's scores do not depend on its neighbours or on padding.
    The character BiLSTM runs once per distinct form of the batch.

    Args:
        config: sizes and regularisation (:class:`TaggerConfig`).
        num_words: V, size of the word vocabulary (id 0 is ``<unk>``).
        num_chars: size of the character vocabulary.
        num_tags: K, size of the tag vocabulary; id 0 (``<unk>``) is never predicted.
        word_counts: training count of each word id, for word dropout; ``None`` for zeros (weights are then
            usually loaded from a checkpoint, whose state_dict carries the probabilities).

    Inputs: batch
        - batch: a :class:`~lstmkit.data.TaggingBatch` (``word_ids`` (B, T), ``lengths`` (B,), ``char_ids`` (U, C),
          ``char_lengths`` (U,), ``word_index`` (B, T)); ``tags`` are not used.

    Outputs: :class:`TaggerOutput` (``logits`` (B, T, K), ``mask`` (B, T)).

    Attributes:
        word_embedding (V, E), char_embedding, char_lstm, sentence_lstm (lstmkit.LSTM), output (linear 2H -> K),
        word_dropout (its ``probabilities`` buffer is part of the state_dict).

    Example::

        >>> vocabs = TaggingVocabs.build(read_conllu("train.conllu"))            # doctest: +SKIP
        >>> tagger = Tagger.from_vocabs(TaggerConfig(), vocabs)                   # doctest: +SKIP
        >>> output = tagger(make_batch(encode_sentences(sentences, vocabs), vocabs))  # doctest: +SKIP
        >>> output.logits.shape                                                   # doctest: +SKIP
        torch.Size([B, T, K])
    """

    def __init__(
        self,
        config: TaggerConfig,
        num_words: int,
        num_chars: int,
        num_tags: int,
        word_counts: Sequence[int] | Tensor | None = None,
    ) -> None:
        super().__init__()
        for name, value in (("num_words", num_words), ("num_chars", num_chars), ("num_tags", num_tags)):
            if value < 1:
                raise ValueError(f"{name} must be positive, got {value}")
        if num_tags < 2:
            raise ValueError(f"num_tags must be at least 2 (<unk> and one tag), got {num_tags}")
        counts = [0] * num_words if word_counts is None else word_counts
        if len(counts) != num_words:
            raise ValueError(f"{len(counts)} word counts for {num_words} words")
        self.config = config
        self.num_tags = num_tags
        self.word_dropout = WordDropout(counts, config.word_dropout, unk_id=0)
        self.word_embedding = nn.Embedding(num_words, config.word_embedding_size)
        self.char_embedding = nn.Embedding(num_chars, config.char_embedding_size)
        self.char_lstm = LSTM(
            config.char_embedding_size,
            config.char_hidden_size,
            batch_first=True,
            bidirectional=True,
            impl=config.impl,
            forget_bias=config.forget_bias,
        )
        self.sentence_lstm = LSTM(
            config.word_embedding_size + 2 * config.char_hidden_size,
            config.hidden_size,
            num_layers=config.num_layers,
            batch_first=True,
            bidirectional=True,
            dropout=config.dropout if config.num_layers > 1 else 0.0,
            impl=config.impl,
            forget_bias=config.forget_bias,
        )
        self.dropout = nn.Dropout(config.dropout)
        self.output = nn.Linear(2 * config.hidden_size, num_tags)
        nn.init.normal_(self.word_embedding.weight, std=0.1)
        nn.init.normal_(self.char_embedding.weight, std=0.1)

    @classmethod
    def from_vocabs(cls, config: TaggerConfig, vocabs: TaggingVocabs) -> Tagger:
        """A tagger sized for ``vocabs``, with word dropout from their training counts."""
        return cls(config, len(vocabs.words), len(vocabs.chars), len(vocabs.tags), vocabs.word_counts)

    def encode_words(self, char_ids: Tensor, char_lengths: Tensor) -> Tensor:
        """The spelling vector of each form: last states of the character BiLSTM, ``(U, 2Hc)``."""
        chars = self.char_embedding(char_ids)  # (U, C, Ec)
        if torch.compiler.is_compiling():  # padded, states frozen past each length: no graph break
            _, (h_n, _) = self.char_lstm(chars, lengths=char_lengths)
        else:
            packed = pack_padded_sequence(chars, char_lengths.cpu(), batch_first=True, enforce_sorted=False)
            _, (h_n, _) = self.char_lstm(packed)  # h_n: (2, U, Hc), each form's own last step per direction
        return torch.cat([h_n[0], h_n[1]], dim=-1)  # (U, 2Hc)

    def forward(self, batch: TaggingBatch) -> TaggerOutput:
        if batch.word_ids.dim() != 2 or batch.word_index.shape != batch.word_ids.shape:
            raise ValueError(
                f"word_ids and word_index must both be (B, T), got {tuple(batch.word_ids.shape)} and "
                f"{tuple(batch.word_index.shape)}"
            )
        steps = batch.word_ids.size(1)
        spellings = self.encode_words(batch.char_ids, batch.char_lengths)  # (U, 2Hc)
        words = self.word_embedding(self.word_dropout(batch.word_ids))  # (B, T, E)
        x = torch.cat([words, spellings[batch.word_index]], dim=-1)  # (B, T, E + 2Hc)
        x = self.dropout(x)
        if torch.compiler.is_compiling():
            # the same result as packing, computed on the padded tensor (lstmkit.LSTM's lengths=): torch.compile
            # cannot trace pack_padded_sequence. Eager code keeps packing, which computes only the real steps.
            hidden, _ = self.sentence_lstm(x, lengths=batch.lengths)  # (B, T, 2H), zeros at padding
        else:
            packed = pack_padded_sequence(x, batch.lengths.cpu(), batch_first=True, enforce_sorted=False)
            hidden, _ = self.sentence_lstm(packed)
            hidden, _ = pad_packed_sequence(hidden, batch_first=True, total_length=steps)  # (B, T, 2H), zeros at padding
        logits = self.output(self.dropout(hidden))  # (B, T, K)
        return TaggerOutput(logits, batch.mask.to(logits.device))

    def loss(self, output: TaggerOutput, tags: Tensor) -> Tensor:
        """Mean cross-entropy over the real words (:func:`tagging_loss`)."""
        return tagging_loss(output.logits, tags, output.mask)

    @staticmethod
    def predict(output: TaggerOutput) -> Tensor:
        """Best tag id per word, ``(B, T)``: never ``<unk>`` (id 0); :data:`~lstmkit.data.PAD_TAG` at padding."""
        best = output.logits[..., 1:].argmax(dim=-1) + 1  # (B, T)
        return best.masked_fill(~output.mask, PAD_TAG)
