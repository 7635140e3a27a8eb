"""Training a sentence classifier with the shared loop, the ULMFiT way (Howard and Ruder 2018).

::

    data folder --task_splits--> train / dev / test examples      (SST-2, SST-5 with phrases, or an MR fold)
    --encoder RUN: the (fine-tuned) language model's vocabulary and weights; none: a vocabulary from the training
                   examples and a randomly initialised encoder (the from-scratch baseline)
    ClassifierTask: batches(epoch, position)  sortish batches (length-sorted pools, shuffled; seeded by seed, epoch)
                    train_step                AdamW on cross entropy, gradient clipping, and per step:
                                              - slanted triangular learning rate over the budget (schedule="stlr")
                                              - discriminative learning rates: group g from the top gets lr / decay^g
                                                (off by default: decay 1)
                                              - gradual unfreezing: the top group only, then one more group every
                                                ``unfreeze_every`` of the budget (off by default: 0)
                    evaluate                  dev accuracy (the score) and loss
    lstmkit.train.fit                         budgets, checkpoints, exact resume, metrics, progress

The budget (``train.max_seconds``, ``max_steps`` or ``max_epochs``, whichever is spent first) is the time axis of
the schedule and of unfreezing, so a run of 20 minutes and a run of 5 epochs both warm up, peak and decay once.
Command line: ``lstmkit train-classifier`` (:mod:`lstmkit.commands.train_classifier`).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F

from ..data import EOS, UNK, DataError, Vocab, batch_plan
from ..lm.task import resolve_precision
from ..train.checkpoint import CheckpointError, load_checkpoint, load_model_weights, load_optimizer_state
from ..train.config import ConfigError, check_resume_overrides, config_from_dict, config_to_dict, merge_from_args
from ..train.loop import LAST_CHECKPOINT, LoopConfig, RunDirectoryError, RunResult, StepInfo, TaskState, fit
from ..train.seeding import seed_everything
from .data import LABELS, ClassifierBatch, Example, make_batch, task_splits
from .model import Classifier, ClassifierConfig

__all__ = [
    "TASK_KIND",
    "ClassifierDataConfig",
    "ClassifierOptimConfig",
    "ClassifierRunConfig",
    "ClassifierTask",
    "stlr_factor",
    "train_classifier",
    "read_classifier_info",
    "encode_examples",
]

TASK_KIND = "classifier"


@dataclasses.dataclass(frozen=True)
class ClassifierDataConfig:
    """Which task, which data, and how it is batched."""

    path: str = ""  # the data folder: an SST folder (sst2, sst5) or the MR folder (mr)
    task: Literal["sst2", "sst5", "mr"] = "sst2"  # SST-2 (neutral dropped), SST-5, or MR (cross-validation fold)
    phrases: bool = True  # SST: also train on every labelled phrase of the training trees (Tai et al. 2015)
    fold: int = 0  # MR: the fold held out as the test set
    folds: int = 10  # MR: folds of the cross-validation
    split_seed: int = 0  # MR: seed of the fold assignment (fixed, so every run sees the same folds)
    min_count: int = 1  # from scratch: training tokens seen fewer times become <unk>
    batch_size: int = 64  # examples per training batch
    eval_batch_size: int = 256  # examples per batch when evaluating and classifying

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.eval_batch_size < 1 or self.min_count < 1:
            raise ValueError("batch_size, eval_batch_size and min_count must be positive")
        if self.folds < 2 or not 0 <= self.fold < self.folds:
            raise ValueError(f"need folds >= 2 and 0 <= fold < folds, got fold {self.fold} of {self.folds}")


@dataclasses.dataclass(frozen=True)
class ClassifierOptimConfig:
    """AdamW with ULMFiT's schedule: slanted triangular learning rates, discriminative rates, gradual unfreezing."""

    lr: float = 4e-3  # peak learning rate of the top layer group (the head)
    betas: tuple[float, float] = (0.8, 0.99)  # Adam's moment decay rates (ULMFiT: 0.7-0.8, 0.99)
    weight_decay: float = 0.01  # decoupled weight decay (AdamW)
    clip: float = 1.0  # maximum gradient norm; 0 disables clipping
    schedule: Literal["stlr", "constant"] = "stlr"  # slanted triangular learning rates over the budget, or constant
    stlr_cut_frac: float = 0.1  # STLR: fraction of the budget spent rising to the peak
    stlr_ratio: float = 32.0  # STLR: how much smaller the lowest rate is than the peak
    discriminative_decay: float = 1.0  # group g below the top trains with lr / decay^g (ULMFiT: 2.6); 1: one rate
    unfreeze_every: float = 0.0  # gradual unfreezing: one more group (from the top) per this fraction of the
    # budget, the head alone first (ULMFiT: one group per epoch); 0 trains every group from the start.
    # Both default to off: with minutes of training on a briefly pretrained encoder, SST-2 dev accuracy was
    # 67.66 % with 2.6 / 0.1 and 84.98 % with 1 / 0, MR's 68.15 % and 78.31 % (benchmarks/RESULTS.md).

    def __post_init__(self) -> None:
        if not self.lr > 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
        if self.weight_decay < 0 or self.clip < 0:
            raise ValueError("weight_decay and clip must be >= 0")
        if not 0 < self.stlr_cut_frac < 1 or self.stlr_ratio < 1:
            raise ValueError("stlr_cut_frac must be in (0, 1) and stlr_ratio >= 1")
        if self.discriminative_decay < 1:
            raise ValueError(f"discriminative_decay must be >= 1, got {self.discriminative_decay}")
        if not 0 <= self.unfreeze_every < 1:
            raise ValueError(f"unfreeze_every must be in [0, 1), got {self.unfreeze_every}")


def _default_loop() -> LoopConfig:
    return LoopConfig(max_epochs=10, eval_every=0, log_every=50)


@dataclasses.dataclass(frozen=True)
class ClassifierRunConfig:
    """Everything a classifier run is configured by; stored in its checkpoints."""

    encoder: str | None = None  # a train-lm / finetune-lm run directory whose best model is the encoder; None:
    # train from scratch with a vocabulary from the training examples
    seed: int = 1  # seed of the initial weights, dropout and batch order
    threads: int = 0  # torch CPU threads; 0 keeps torch's default
    precision: Literal["float32", "bfloat16", "auto"] = "float32"  # training compute: float32, bfloat16 autocast,
    # or auto (bfloat16 where the CPU has native bfloat16). float32 by default: on this project's Xeon bfloat16
    # autocast trained the language model at 0.64x the float32 speed (benchmarks/RESULTS.md). Eval is float32.
    data: ClassifierDataConfig = dataclasses.field(default_factory=ClassifierDataConfig)
    model: ClassifierConfig = dataclasses.field(default_factory=ClassifierConfig)
    optim: ClassifierOptimConfig = dataclasses.field(default_factory=ClassifierOptimConfig)
    train: LoopConfig = dataclasses.field(default_factory=_default_loop)  # the loop: budgets, evaluation, checkpoints

    config_aliases: ClassVar[dict[str, str]] = {"loop": "train"}  # the section's name in runs before the layout move

    def __post_init__(self) -> None:
        if self.threads < 0:
            raise ValueError(f"threads must be >= 0, got {self.threads}")

    @property
    def loop(self) -> LoopConfig:
        """The loop's settings under their former name (read-only; the field is :attr:`train`)."""
        return self.train


def stlr_factor(fraction: float, cut_frac: float, ratio: float) -> float:
    """Slanted triangular learning rate (Howard and Ruder 2018, eq. 3) as a multiplier of the peak rate: a linear
    rise from ``1 / ratio`` to 1 over the first ``cut_frac`` of training, then a linear fall back to ``1 / ratio``."""
    fraction = min(max(fraction, 0.0), 1.0)
    p = fraction / cut_frac if fraction < cut_frac else 1 - (fraction - cut_frac) / (1 - cut_frac)
    return (1 + p * (ratio - 1)) / ratio


def encode_examples(examples: Sequence[Example] | Sequence[Sequence[str]], vocab: Vocab) -> list[list[int]]:
    """Token ids of each example, ``<eos>`` first when the vocabulary has it: the language model read every line
    after the ``<eos>`` of the one before, so it marks the start of a text."""
    start = [vocab.eos_id] if vocab.eos_id is not None else []
    return [start + vocab.encode(e.tokens if isinstance(e, Example) else e) for e in examples]


class ClassifierTask:
    """The classifier as a :class:`~lstmkit.train.Task` of the shared loop.

    Args:
        config: the run's configuration.
        splits: ``{"train": [...], "dev": [...]}`` examples.
        vocab: the encoder's vocabulary.
        labels: the label names, id order.
    """

    score_name = "accuracy"
    higher_is_better = True
    show_perplexity = False

    def __init__(self, config: ClassifierRunConfig, splits: Mapping[str, Sequence[Example]], vocab: Vocab,
                 labels: Sequence[str]) -> None:
        self.config = config
        self.vocab = vocab
        self.labels = list(labels)
        seed_everything(config.seed)
        self.model = Classifier(len(vocab), len(labels), config.model)
        self.groups = self.model.layer_groups()
        o = config.optim
        self.optimizer = torch.optim.AdamW(
            [{"params": group, "lr": o.lr} for group in self.groups], lr=o.lr, betas=o.betas,
            weight_decay=o.weight_decay,
        )
        self.compute_dtype = resolve_precision(config.precision)
        self.train_ids = encode_examples(splits["train"], vocab)
        self.train_labels = [example.label for example in splits["train"]]
        self.train_lengths = [len(ids) for ids in self.train_ids]
        dev = splits["dev"]
        dev_ids = encode_examples(dev, vocab)
        plan = batch_plan([len(ids) for ids in dev_ids], config.data.eval_batch_size)
        self.dev_batches = [make_batch([dev_ids[i] for i in indices], [dev[i].label for i in indices], vocab.unk_id)
                            for indices in plan]
        self.steps_per_epoch = len(self.epoch_plan(0))

    # ------------------------------------------------------------------------------------------- schedule

    def budget_fraction(self, info: StepInfo) -> float:
        """How much of the budget is spent: the largest of steps, seconds and epochs (counted in steps, so the
        schedule moves every step); every classifier run needs one of the three."""
        loop = self.config.train
        parts = []
        if loop.max_steps:
            parts.append(info.step / loop.max_steps)
        if loop.max_seconds:
            parts.append(info.train_seconds / loop.max_seconds)
        if loop.max_epochs:
            parts.append(info.step / (loop.max_epochs * self.steps_per_epoch))
        if not parts:
            raise ConfigError("a classifier run needs a budget (--max-seconds, --max-epochs or --train.max_steps): "
                              "the learning-rate schedule and unfreezing are laid out over it")
        return min(1.0, max(parts))

    def trainable_groups(self, fraction: float) -> int:
        """How many layer groups, counted from the top, train at ``fraction`` of the budget."""
        every = self.config.optim.unfreeze_every
        if every == 0:
            return len(self.groups)
        return min(len(self.groups), 1 + int(fraction / every + 1e-9))

    def group_rates(self, fraction: float) -> list[float]:
        """The learning rate of each layer group (bottom first) at ``fraction`` of the budget."""
        o = self.config.optim
        peak = o.lr * (stlr_factor(fraction, o.stlr_cut_frac, o.stlr_ratio) if o.schedule == "stlr" else 1.0)
        top = len(self.groups) - 1
        return [peak / o.discriminative_decay ** (top - index) for index in range(len(self.groups))]

    # ------------------------------------------------------------------------------------------- the Task API

    def epoch_plan(self, epoch: int) -> list[list[int]]:
        """Sortish batches of ``epoch``: a function of the seed and the epoch only, so a resume finds the same.
        Batches of one example (batch norm cannot train on them) join the last batch."""
        generator = torch.Generator().manual_seed(self.config.seed * 100_003 + epoch)
        plan = batch_plan(self.train_lengths, self.config.data.batch_size, generator)
        singles = [batch[0] for batch in plan if len(batch) == 1]
        plan = [batch for batch in plan if len(batch) > 1]
        if singles:
            plan.append(plan.pop() + singles if plan else singles)
        return plan

    def batches_per_epoch(self) -> int:
        return self.steps_per_epoch

    def batches(self, epoch: int, position: Any) -> Iterator[tuple[ClassifierBatch, int]]:
        plan = self.epoch_plan(epoch)
        for index in range(int(position or 0), len(plan)):
            indices = plan[index]
            batch = make_batch([self.train_ids[i] for i in indices], [self.train_labels[i] for i in indices],
                               self.vocab.unk_id)
            yield batch, index + 1

    def train_step(self, batch: ClassifierBatch, info: StepInfo) -> Mapping[str, float]:
        fraction = self.budget_fraction(info)
        trainable = self.trainable_groups(fraction)
        first_trainable = len(self.groups) - trainable
        for index, (group, rate) in enumerate(zip(self.groups, self.group_rates(fraction))):
            for parameter in group:
                parameter.requires_grad_(index >= first_trainable)
            self.optimizer.param_groups[index]["lr"] = rate
        self.model.train()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.compute_dtype == torch.bfloat16):
            output = self.model(batch.words, batch.lengths)
        loss = F.cross_entropy(output.logits.float(), batch.labels)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.config.optim.clip:
            torch.nn.utils.clip_grad_norm_([p for p in self.model.parameters() if p.grad is not None],
                                           self.config.optim.clip)
        self.optimizer.step()
        accuracy = (output.logits.argmax(dim=1) == batch.labels).float().mean().item()
        return {"loss": loss.item(), "tokens": int(batch.labels.numel()), "accuracy": accuracy,
                "lr": self.optimizer.param_groups[-1]["lr"], "trainable_groups": float(trainable)}

    @torch.inference_mode()
    def evaluate(self) -> Mapping[str, float]:
        self.model.eval()
        loss_sum, correct, count = 0.0, 0, 0
        for batch in self.dev_batches:
            logits = self.model(batch.words, batch.lengths).logits
            loss_sum += F.cross_entropy(logits, batch.labels, reduction="sum").item()
            correct += int((logits.argmax(dim=1) == batch.labels).sum())
            count += batch.labels.numel()
        return {"accuracy": correct / count, "loss": loss_sum / count, "examples": float(count)}

    def info(self) -> dict[str, Any]:
        return {"kind": TASK_KIND, "config": config_to_dict(self.config), "vocab": self.vocab.to_dict(),
                "labels": list(self.labels), "num_parameters": self.model.num_parameters()}

    def state_dict(self) -> TaskState:
        return TaskState(self.model.state_dict(), {"optimizer": self.optimizer.state_dict()}, self.info())

    def export_state(self) -> TaskState:
        return TaskState({k: v.detach().clone() for k, v in self.model.state_dict().items()}, None, self.info())

    def load_state_dict(self, state: TaskState) -> None:
        load_model_weights(self.model, state.model, "checkpoint")
        load_optimizer_state(self.optimizer, state.training)


# -------------------------------------------------------------------------------------------------- entry point


def read_classifier_info(info: Any, where: Path | str) -> tuple[ClassifierRunConfig, Vocab, list[str]]:
    """The configuration, vocabulary and label names a checkpoint's task info describes.

    Raises:
        CheckpointError: the info is not a classifier's, or is damaged.
    """
    if not isinstance(info, dict) or info.get("kind") != TASK_KIND:
        raise CheckpointError(f"{where} is not a classifier run directory (its checkpoint holds no classifier)")
    try:
        config = config_from_dict(ClassifierRunConfig, info["config"])
        return config, Vocab.from_dict(info["vocab"]), [str(label) for label in info["labels"]]
    except (KeyError, ValueError, TypeError) as error:
        raise CheckpointError(f"{where}: damaged classifier description: {error}") from None


_SIZE_FIELDS = ("embedding_size", "hidden_size", "num_layers", "tie_weights")


def _load_encoder(path: str) -> tuple[Vocab, Any, dict[str, torch.Tensor]]:
    """The vocabulary, model config and weights of a language-model run's best checkpoint."""
    from ..lm.api import load_language_model

    lm = load_language_model(path)
    if lm.level != "word":
        raise ConfigError(f"--encoder {path}: a {lm.level}-level language model cannot encode words")
    return lm.vocab, lm.config.model, lm.model.state_dict()


def train_classifier(
    config: ClassifierRunConfig | None,
    run_dir: str | os.PathLike,
    *,
    resume: bool = False,
    overrides: Sequence[str] = (),
    echo=None,
) -> RunResult:
    """Train a classifier into ``run_dir`` (or continue the run there); the Python form of
    ``lstmkit train-classifier``.

    With ``config.encoder`` the encoder's sizes, vocabulary and weights come from that language-model run (its
    dropouts stay the classifier's own, ``model.encoder.*``); without it the encoder starts from random weights.

    Args:
        config: the new run's configuration (ignored with ``resume``).
        run_dir: the run directory; a new run needs one without a checkpoint.
        resume: continue from ``RUN_DIR/checkpoint`` exactly where it stopped.
        overrides: ``--section.key=value`` changes to ``config``; with ``resume``, to the stored configuration,
            where only the loop's settings (``--train.key=value``: budgets; ``--loop.`` is accepted too) can
            change.
        echo: called with progress lines (e.g. ``print``).

    Raises:
        DataError, ConfigError, CheckpointError, RunDirectoryError: bad input, before the run directory changes.
    """
    run_dir = Path(run_dir)
    checkpoint = None
    if resume:
        checkpoint = load_checkpoint(run_dir, name=LAST_CHECKPOINT)
        config, vocab, labels = read_classifier_info(checkpoint.extra.get("task"), run_dir)
        overrides = check_resume_overrides(overrides, ("--train.", "--loop."), "--train.* settings (budgets)")
        config = merge_from_args(config, overrides)
    else:
        if config is None:
            raise ValueError("a new run needs a config")
        config = merge_from_args(config, list(overrides))
        if (run_dir / LAST_CHECKPOINT).exists():
            raise RunDirectoryError(f"{run_dir} already holds a run; resume it or choose a new run directory")
        if not config.data.path:
            raise ConfigError("no data given: pass --data DIR (an SST folder or the MR folder)")
        loop = config.train
        if not (loop.max_seconds or loop.max_steps or loop.max_epochs):
            raise ConfigError("a classifier run needs a budget (--max-seconds, --max-epochs or --train.max_steps): "
                              "the learning-rate schedule and unfreezing are laid out over it")
    if config.threads:
        torch.set_num_threads(config.threads)
    d = config.data
    splits = task_splits(d.path, d.task, phrases=d.phrases, fold=d.fold, folds=d.folds, seed=d.split_seed)
    if len(splits["train"]) < 2 or not splits["dev"]:
        raise DataError(f"{d.path}: task {d.task} needs at least 2 training examples and 1 dev example, got "
                        f"{len(splits['train'])} and {len(splits['dev'])}")
    weights = None
    if checkpoint is None:
        labels = list(LABELS[d.task])
        if config.encoder:
            vocab, lm_model, weights = _load_encoder(config.encoder)
            sizes = {name: getattr(lm_model, name) for name in _SIZE_FIELDS}
            encoder = dataclasses.replace(config.model.encoder, **sizes)
            config = dataclasses.replace(config, model=dataclasses.replace(config.model, encoder=encoder))
        else:
            tokens = (token for example in splits["train"] for token in example.tokens)
            vocab = Vocab.build(tokens, specials=(UNK, EOS), min_count=d.min_count)
    task = ClassifierTask(config, splits, vocab, labels)
    if weights is not None:
        load_model_weights(task.model.encoder, weights, config.encoder)
    if echo is not None:
        known = sum(token in vocab for e in splits["train"] for token in e.tokens)
        total = sum(len(e.tokens) for e in splits["train"])
        echo(f"task {d.task}: train {len(splits['train'])} / dev {len(splits['dev'])} / test "
             f"{len(splits['test'])} examples; vocabulary {len(vocab)} ({100 * known / max(total, 1):.1f}% of "
             f"training tokens known); encoder {config.encoder or 'from scratch'}")
        echo(f"model: {task.model.num_parameters():,} parameters, {len(task.groups)} layer groups, "
             f"{task.steps_per_epoch} batches per epoch; run directory {run_dir}")
    return fit(task, run_dir, config.train, checkpoint=checkpoint, echo=echo)
