"""Using a trained language model: load it, evaluate it, generate text, list the likely next words.

The Python forms of ``lstmkit eval-lm``, ``lstmkit generate`` and ``lstmkit next-word``::

    from lstmkit.lm import evaluate_lm, generate, load_language_model, next_words

    lm = load_language_model("runs/ptb-small")                  # the best checkpoint, in eval mode
    evaluate_lm(lm, "test")                                     # LMEvaluation(split, loss, ppl, bpc, tokens)
    generate(lm, "the company said", words=20, seed=1)          # the continuation, as text
    next_words(lm, "the company said", k=5)                     # [(word, probability), ...], most likely first

Every function takes a run directory or an already loaded :class:`TrainedLM`. Loading reads only safetensors and
JSON (never pickle) and checks the files against the checkpoint's manifest.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import NamedTuple

import torch

from ..data import SPLITS, Vocab, batchify, check_length, load_corpus
from ..data.corpus import _BUILTIN_TOKEN
from ..train.checkpoint import CheckpointError, load_checkpoint
from ..train.loop import chosen_checkpoint
from .model import LanguageModel
from .task import LMRunConfig, evaluate_stream, load_model_weights, read_run_config

__all__ = ["TrainedLM", "LMEvaluation", "load_language_model", "evaluate_lm", "generate", "next_words",
           "tokenize_prompt"]


class TrainedLM(NamedTuple):
    """A language model loaded from a run directory, with what is needed to use it.

    Attributes:
        model: the :class:`~lstmkit.lm.LanguageModel`, in eval mode.
        vocab: its vocabulary.
        config: the run's configuration.
        level: ``"word"`` or ``"char"``.
        tokenizer: how prompts are split: ``"whitespace"``, ``"builtin"`` (word and punctuation runs) or ``"char"``.
        path: the checkpoint directory it came from.
    """

    model: LanguageModel
    vocab: Vocab
    config: LMRunConfig
    level: str
    tokenizer: str
    path: Path


class LMEvaluation(NamedTuple):
    """Result of :func:`evaluate_lm`: mean loss in nats per token, its perplexity, bits per character (char
    level; ``None`` otherwise), the number of target tokens, and how many tokens of the split were unseen in
    training (they count as ``<unk>``)."""

    split: str
    loss: float
    ppl: float
    bpc: float | None
    tokens: int
    unknown: int = 0

    def to_dict(self) -> dict:
        out = {"split": self.split, "loss": self.loss, "ppl": self.ppl, "tokens": self.tokens, "unknown": self.unknown}
        if self.bpc is not None:
            out["bpc"] = self.bpc
        return out


def load_language_model(run_dir: str | os.PathLike, checkpoint: str = "best") -> TrainedLM:
    """Load the model of a ``lstmkit train-lm`` run.

    Args:
        run_dir: the run directory.
        checkpoint: ``"best"`` (the best validation score; the last checkpoint if there is no best yet) or
            ``"last"`` (the latest checkpoint, e.g. of an interrupted run).

    Raises:
        CheckpointError: no checkpoint, a damaged or incomplete one, or one that is not a language model's.
        FileNotFoundError: ``run_dir`` does not exist.
    """
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise CheckpointError(f"{run_dir} is a file, not a run directory")
    if not run_dir.is_dir():
        raise FileNotFoundError(f"{run_dir}: no such run directory")
    name = chosen_checkpoint(run_dir, checkpoint)
    loaded = load_checkpoint(run_dir, name=name)
    config = read_run_config(loaded.extra, loaded.path)
    info = loaded.extra["task"]
    try:
        vocab = Vocab.from_dict(info["vocab"])
    except (KeyError, ValueError, TypeError) as error:
        raise CheckpointError(f"{loaded.path}: the stored vocabulary is damaged: {error}") from None
    model = LanguageModel(len(vocab), config.model)
    load_model_weights(model, loaded.model_state, loaded.path)
    model.eval()
    level = config.data.level
    tokenizer = info.get("tokenizer", "char" if level == "char" else "whitespace")
    return TrainedLM(model, vocab, config, level, tokenizer, loaded.path)


def _as_lm(model: TrainedLM | str | os.PathLike) -> TrainedLM:
    return model if isinstance(model, TrainedLM) else load_language_model(model)


def evaluate_lm(
    model: TrainedLM | str | os.PathLike,
    split: str = "test",
    *,
    data: str | os.PathLike | None = None,
    batch_size: int | None = None,
) -> LMEvaluation:
    """Loss and perplexity of a trained model on a split of its corpus.

    Args:
        model: a run directory or a :class:`TrainedLM`.
        split: ``"train"``, ``"valid"`` or ``"test"``.
        data: the corpus to read (default: the one the run was trained on); its vocabulary must be the run's.
        batch_size: parallel streams (default: the run's ``test_batch_size`` for test, else ``eval_batch_size``).

    Raises:
        DataError: the corpus is missing, damaged or too short. CheckpointError: its vocabulary is not the run's.
    """
    lm = _as_lm(model)
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    path = data if data is not None else lm.config.data.path
    corpus = load_corpus(path, lm.level)
    if corpus.vocab != lm.vocab:
        raise CheckpointError(
            f"{lm.path} was trained on another vocabulary ({len(lm.vocab)} tokens) than the corpus at "
            f"{path if path is not None else 'the built-in corpus'} has ({len(corpus.vocab)} tokens)"
        )
    if batch_size is None:
        batch_size = lm.config.data.test_batch_size if split == "test" else lm.config.data.eval_batch_size
    ids = corpus.split(split)
    check_length(ids, batch_size, 1, split)
    loss, tokens = evaluate_stream(lm.model, batchify(ids, batch_size), lm.config.data.bptt)
    bpc = loss / math.log(2) if lm.level == "char" else None
    return LMEvaluation(split, loss, math.exp(min(loss, 700.0)), bpc, tokens, int(corpus.unknown_counts[split]))


def tokenize_prompt(text: str, tokenizer: str) -> list[str]:
    """Split ``text`` the way the model's corpus was split (see :attr:`TrainedLM.tokenizer`)."""
    if tokenizer == "char":
        return list(text)
    if tokenizer == "builtin":
        return _BUILTIN_TOKEN.findall(text)
    return text.split()


def _prompt_ids(lm: TrainedLM, prompt: str) -> list[int]:
    tokens = tokenize_prompt(prompt, lm.tokenizer)
    if not tokens:  # start as if at the beginning of a line
        start = lm.vocab.eos_id if lm.vocab.eos_id is not None else lm.vocab.stoi.get("\n")
        if start is None:
            raise ValueError("the prompt is empty and the vocabulary has no line-end token to start from")
        return [start]
    return lm.vocab.encode(tokens)


def _last_log_probs(lm: TrainedLM, ids: list[int]):
    """Log-probabilities (V,) of the token after ``ids`` and the state after them."""
    words = torch.tensor(ids, dtype=torch.long).unsqueeze(1)  # (T, 1)
    out = lm.model(words)
    return lm.model.log_probs(out.output[-1, 0]), out.hidden


def _detokenize(lm: TrainedLM, tokens: list[str]) -> str:
    if lm.level == "char":
        return "".join(tokens)
    text = " ".join("\n" if token == "<eos>" else token for token in tokens)
    return text.replace(" \n ", "\n").replace(" \n", "\n").replace("\n ", "\n")


def generate(
    model: TrainedLM | str | os.PathLike,
    prompt: str = "",
    words: int = 50,
    temperature: float = 1.0,
    top_k: int | None = None,
    seed: int | None = None,
) -> str:
    """Sample a continuation of ``prompt``, one token at a time.

    Args:
        model: a run directory or a :class:`TrainedLM`.
        prompt: the text to continue (tokenised like the corpus; unknown words read as ``<unk>``). Empty: start
            at a line start.
        words: how many tokens (words, or characters for a character model) to generate.
        temperature: divides the logits; below 1 sharpens, above 1 flattens. Must be > 0.
        top_k: sample only among the k most likely tokens (``None``: all).
        seed: seed for sampling; the same seed gives the same text. ``None`` uses torch's global generator.

    Returns:
        The generated continuation (without the prompt); ``<eos>`` becomes a line break.
    """
    if words < 0:
        raise ValueError(f"words must be >= 0, got {words}")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if top_k is not None and top_k < 1:
        raise ValueError(f"top_k must be >= 1, got {top_k}")
    lm = _as_lm(model)
    generator = torch.Generator().manual_seed(seed) if seed is not None else None
    produced: list[str] = []
    with torch.inference_mode():
        log_probs, hidden = _last_log_probs(lm, _prompt_ids(lm, prompt))
        for _ in range(words):
            scores = log_probs / temperature  # (V,)
            if top_k is not None and top_k < scores.numel():
                kth = torch.topk(scores, top_k).values[-1]
                scores = scores.masked_fill(scores < kth, float("-inf"))
            choice = int(torch.multinomial(torch.softmax(scores, dim=0), 1, generator=generator))
            produced.append(lm.vocab.itos[choice])
            out = lm.model(torch.tensor([[choice]]), hidden)
            log_probs, hidden = lm.model.log_probs(out.output[-1, 0]), out.hidden
    return _detokenize(lm, produced)


def next_words(model: TrainedLM | str | os.PathLike, prompt: str, k: int = 5) -> list[tuple[str, float]]:
    """The ``k`` most likely next tokens after ``prompt`` with their probabilities, most likely first."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    lm = _as_lm(model)
    with torch.inference_mode():
        log_probs, _ = _last_log_probs(lm, _prompt_ids(lm, prompt))
        top = torch.topk(log_probs.exp(), min(k, log_probs.numel()))
    return [(lm.vocab.itos[int(i)], float(p)) for p, i in zip(top.values, top.indices)]
