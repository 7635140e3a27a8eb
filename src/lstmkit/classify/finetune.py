"""Fine-tuning a pretrained language model on the target task's text (ULMFiT's second stage).

::

    pretrained run (best checkpoint) ──▶ vocabulary V_old, weights
    target text (target_text: SST train / dev sentences, MR lines, or plain text), tokenized as the classifier does
    V_new = V_old + the target's training words V_old lacks (by count)          # every pretrained row is kept
    map_embeddings: row of each V_new word = its V_old row, else the row of the most frequent V_old word that
                    differs only in case, else the mean of all V_old rows (decoder bias alike)
    LanguageModelTask on the target corpus, starting from the mapped weights ──▶ lstmkit.train.fit

The run directory is an ordinary language-model run (``eval-lm``, ``generate``, ``next-word`` read it; its stored
``data.path`` is the target, which they can read only through ``--data`` when it is not a word-level corpus folder),
and ``train-classifier --encoder RUN`` takes its best checkpoint.
"""

from __future__ import annotations

import dataclasses
import os
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import torch

from ..data import Corpus, Vocab
from ..lm.task import LanguageModelTask, LMOptimConfig, LMRunConfig, read_run_config
from ..train.checkpoint import CheckpointError, load_checkpoint
from ..train.config import check_resume_overrides, merge_from_args
from ..train.loop import LAST_CHECKPOINT, LoopConfig, RunDirectoryError, RunResult, fit
from ..train.seeding import seed_everything
from .data import target_text

__all__ = ["MappedRows", "extend_vocab", "map_embeddings", "finetune_config", "FinetuneTask",
           "finetune_language_model"]


class MappedRows(NamedTuple):
    """Where the rows of a mapped embedding came from: the same word, the same word in another case, the mean."""

    exact: int
    case: int
    mean: int


def extend_vocab(vocab: Vocab, lines: Sequence[Sequence[str]], min_count: int = 1) -> Vocab:
    """``vocab`` followed by the words of ``lines`` it lacks (seen at least ``min_count`` times), most frequent
    first (ties: first seen). The old ids keep their meaning."""
    counts = Counter(token for line in lines for token in line)
    new = sorted((t for t, c in counts.items() if c >= min_count and t not in vocab), key=lambda t: -counts[t])
    return Vocab([*vocab.itos, *new], unk_token=vocab.unk_token)


def map_embeddings(old_vocab: Vocab, old_rows: torch.Tensor, new_vocab: Vocab) -> tuple[torch.Tensor, MappedRows]:
    """Rows for ``new_vocab`` from ``old_rows`` (``(V_old, ...)``, one per ``old_vocab`` id): the word's own row,
    else the row of the most frequent old word equal to it up to case, else the mean old row.

    Returns:
        ``(V_new, ...)`` rows and how many came from each source.
    """
    if old_rows.size(0) != len(old_vocab):
        raise ValueError(f"{old_rows.size(0)} rows for a vocabulary of {len(old_vocab)}")
    by_lower: dict[str, int] = {}
    for index, token in enumerate(old_vocab.itos):  # ids are by descending count: keep the first (most frequent)
        by_lower.setdefault(token.lower(), index)
    sources, exact, case = [], 0, 0
    stoi = old_vocab.stoi
    for token in new_vocab.itos:
        index = stoi.get(token)
        if index is not None:
            exact += 1
        else:
            index = by_lower.get(token.lower())
            case += index is not None
        sources.append(-1 if index is None else index)
    source = torch.tensor(sources)
    rows = old_rows.new_empty((len(new_vocab), *old_rows.shape[1:]))
    found = source >= 0
    rows[found] = old_rows[source[found]]
    rows[~found] = old_rows.mean(dim=0)
    return rows, MappedRows(exact, case, int((~found).sum()))


def finetune_config(pretrained: LMRunConfig, data: str) -> LMRunConfig:
    """The fine-tuning run's configuration: the pretrained model's, on ``data``, trained with Adam and a cosine
    schedule for 10 epochs (the target text is small: minutes, not hours). Overrides apply on top."""
    return dataclasses.replace(
        pretrained,
        data=dataclasses.replace(pretrained.data, path=str(data), level="word"),
        optim=LMOptimConfig(optimizer="adam", lr=2e-3, betas=(0.8, 0.99), clip=0.25, weight_decay=1.2e-6,
                            schedule="cosine", final_lr_fraction=0.05),
        train=LoopConfig(max_epochs=10, eval_every=0, log_every=50),
    )


class FinetuneTask(LanguageModelTask):
    """The language-model task, with what it was fine-tuned from recorded in the checkpoint's info."""

    def __init__(self, config: LMRunConfig, corpus: Corpus, origin: dict[str, Any]) -> None:
        super().__init__(config, corpus)
        self.origin = origin

    def info(self) -> dict[str, Any]:
        return {**super().info(), "finetune": self.origin}


def _target_corpus(data: str, vocab: Vocab, seed: int) -> Corpus:
    train_lines, valid_lines = target_text(data, seed)

    def ids(lines: Sequence[Sequence[str]]) -> tuple[torch.Tensor, int]:
        tokens = [token for line in lines for token in (*line, "<eos>")]
        encoded = vocab.encode_counting_unknown(tokens)
        return encoded.ids, encoded.unknown_count

    train, _ = ids(train_lines)
    valid, unknown = ids(valid_lines)
    path = Path(data)
    return Corpus(vocab, train, valid, valid, {"train": 0, "valid": unknown, "test": unknown},
                  {"train": path, "valid": path, "test": path}, "word")


def finetune_language_model(
    pretrained: str | os.PathLike | None,
    data: str | os.PathLike | None,
    run_dir: str | os.PathLike,
    *,
    resume: bool = False,
    overrides: Sequence[str] = (),
    min_count: int = 1,
    echo=None,
) -> RunResult:
    """Fine-tune the best model of the language-model run ``pretrained`` on the text at ``data`` into ``run_dir``
    (or continue that run); the Python form of ``lstmkit finetune-lm``.

    Args:
        pretrained: a ``train-lm`` run directory (ignored with ``resume``).
        data: the target text (see :func:`~lstmkit.classify.data.target_text`; ignored with ``resume``).
        run_dir: the new run directory.
        resume: continue the fine-tuning run in ``run_dir``.
        overrides: ``--section.key=value`` changes (on resume: the budgets ``--train.*``).
        min_count: target words seen fewer times are not added to the vocabulary.
        echo: called with progress lines.

    Raises:
        DataError, ConfigError, CheckpointError, RunDirectoryError: bad input, before the run directory changes.
    """
    from ..lm.api import load_language_model
    from ..train.config import ConfigError

    run_dir = Path(run_dir)
    checkpoint = None
    if resume:
        checkpoint = load_checkpoint(run_dir, name=LAST_CHECKPOINT)
        info = checkpoint.extra.get("task", {})
        origin = info.get("finetune") if isinstance(info, dict) else None
        if not isinstance(origin, dict):
            raise CheckpointError(f"{run_dir} is not a finetune-lm run directory")
        overrides = check_resume_overrides(overrides, ("--train.", "--loop."), "--train.* settings (budgets)")
        config = merge_from_args(read_run_config(checkpoint.extra, checkpoint.path), overrides)
        vocab = Vocab.from_dict(info["vocab"])
        weights = None
    else:
        if pretrained is None or data is None:
            raise ConfigError("fine-tuning needs the pretrained run directory and --data")
        if (run_dir / LAST_CHECKPOINT).exists():
            raise RunDirectoryError(f"{run_dir} already holds a run; resume it or choose a new run directory")
        lm = load_language_model(pretrained)
        if lm.level != "word":
            raise ConfigError(f"{pretrained}: fine-tuning needs a word-level language model, not {lm.level}-level")
        config = merge_from_args(finetune_config(lm.config, str(data)), list(overrides))
        train_lines, _ = target_text(config.data.path, config.seed)
        vocab = extend_vocab(lm.vocab, train_lines, min_count)
        state = lm.model.state_dict()
        embedding, mapped = map_embeddings(lm.vocab, state["embedding.weight"], vocab)
        bias, _ = map_embeddings(lm.vocab, state["decoder.bias"], vocab)
        weights = {**state, "embedding.weight": embedding, "decoder.weight": embedding, "decoder.bias": bias}
        origin = {"pretrained": str(pretrained), "pretrained_vocab_size": len(lm.vocab), "data": str(data),
                  "rows": mapped._asdict()}
    if config.threads > 0:
        torch.set_num_threads(config.threads)
    seed_everything(config.seed)
    corpus = _target_corpus(config.data.path, vocab, config.seed)
    task = FinetuneTask(config, corpus, origin)
    if weights is not None:
        task.model.load_state_dict(weights)
    if echo is not None:
        rows = origin["rows"]
        echo(f"fine-tuning {origin['pretrained']} on {origin['data']}: vocabulary {origin['pretrained_vocab_size']} "
             f"-> {len(vocab)} (new rows: {rows['case']} from another case, {rows['mean']} the mean embedding); "
             f"train {corpus.train.numel()} / valid {corpus.valid.numel()} tokens "
             f"({corpus.unknown_counts['valid']} unknown in valid)")
    return fit(task, run_dir, config.train, checkpoint=checkpoint, echo=echo)
