"""Training a part-of-speech tagger on a CoNLL-U treebank with the shared loop, and loading the result.

::

    treebank/*-train.conllu --TaggingVocabs.build--> vocabularies ; Tagger.from_vocabs
    TaggingTask: batches(epoch, position)  length-sorted pools, shuffled by a generator seeded with (seed, epoch)
                 train_step                Adam on the mean cross-entropy of the real words, gradient clipping,
                                           learning rate lr * lr_decay ** epoch, a moving average of the weights
                 evaluate                  accuracy and loss of the averaged weights on *-dev.conllu (the score)
    lstmkit.train.fit                      budgets, early stopping, checkpoints, exact resume, metrics, progress

A run directory holds ``checkpoint/`` (to resume: the trained weights, Adam's state and the averaged weights),
``best/`` (the averaged weights of the best dev accuracy, with config and vocabularies: what
:func:`lstmkit.tagger.api.load_tagger` reads) and ``metrics.jsonl``.

Command line: ``lstmkit train-tagger`` (:mod:`lstmkit.commands.train_tagger`).
"""

from __future__ import annotations

import copy
import dataclasses
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

import torch

from ..data import Sentence, batch_plan, find_conllu_splits, read_conllu
from ..train.checkpoint import CheckpointError, checkpoint_exists, load_checkpoint
from ..train.config import ConfigError, check_resume_overrides, config_from_dict, config_to_dict, merge_from_args
from ..train.distributed import Distributed, from_environment, single_process
from ..train.loop import LAST_CHECKPOINT, LoopConfig, RunResult, StepInfo, TaskState, fit
from ..train.rundir import RunDirectoryError, lock_run_dir
from ..train.seeding import seed_everything
from .data import EncodedSentence, TaggingVocabs, encode_sentences, make_batch
from .model import Tagger, TaggerConfig

__all__ = ["TaggerOptimConfig", "TrainTaggerConfig", "TaggingTask", "train_tagger", "read_tagger_info"]

TASK_KIND = "tagger"


@dataclasses.dataclass(frozen=True)
class TaggerOptimConfig:
    """Adam and gradient clipping."""

    lr: float = 2e-3  # Adam's learning rate
    beta1: float = 0.9  # Adam's first-moment decay
    beta2: float = 0.9  # Adam's second-moment decay (0.9 rather than 0.999, as in Dozat and Manning 2017)
    weight_decay: float = 0.0  # L2 penalty added to the gradient
    clip: float = 5.0  # rescale the gradient to at most this norm; 0 disables
    lr_decay: float = 0.95  # the learning rate of epoch e (0-based) is lr * lr_decay ** e; 1 keeps it constant
    average: float = 0.999  # evaluate and keep an exponential moving average of the weights with this decay; 0: off

    def __post_init__(self) -> None:
        if self.lr <= 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
        for name in ("beta1", "beta2"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)}")
        if self.clip < 0 or self.weight_decay < 0:
            raise ValueError("clip and weight_decay must be non-negative")
        if not 0 < self.lr_decay <= 1:
            raise ValueError(f"lr_decay must be in (0, 1], got {self.lr_decay}")
        if not 0 <= self.average < 1:
            raise ValueError(f"average must be in [0, 1), got {self.average}")


def _default_loop() -> LoopConfig:
    return LoopConfig(max_epochs=40, max_seconds=None, eval_every=0, log_every=50, patience=5)


@dataclasses.dataclass(frozen=True)
class TrainTaggerConfig:
    """Everything a tagger run is configured by; stored in its checkpoints."""

    data: str = ""  # treebank folder with *train*.conllu and *dev*.conllu (and *test*.conllu for eval-tagger)
    tagset: Literal["upos", "xpos"] = "upos"  # the CoNLL-U column to learn
    seed: int = 1  # seed of the initial weights, dropout and batch order
    batch_size: int = 32  # sentences per training batch
    eval_batch_size: int = 256  # sentences per batch when evaluating and tagging
    threads: int = 0  # torch CPU threads; 0 keeps torch's default
    model: TaggerConfig = dataclasses.field(default_factory=TaggerConfig)
    optim: TaggerOptimConfig = dataclasses.field(default_factory=TaggerOptimConfig)
    train: LoopConfig = dataclasses.field(default_factory=_default_loop)  # the loop: budgets, evaluation, checkpoints

    config_aliases: ClassVar[dict[str, str]] = {"loop": "train"}  # the section's name before issue 14

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.eval_batch_size < 1:
            raise ValueError("batch sizes must be positive")
        if isinstance(self.threads, bool) or not isinstance(self.threads, int) or self.threads < 0:
            raise ValueError(f"threads must be an int >= 0 (0: torch's default), got {self.threads!r}")

    @property
    def loop(self) -> LoopConfig:
        """The loop's settings under their former name (read-only; the field is :attr:`train`)."""
        return self.train


def _batches_of(
    sentences: Sequence[EncodedSentence], plan: Sequence[Sequence[int]], vocabs: TaggingVocabs, max_chars: int
) -> list:
    return [make_batch([sentences[index] for index in indices], vocabs, max_chars) for indices in plan]


class TaggingTask:
    """The tagger as a :class:`~lstmkit.train.Task` of the shared loop.

    Args:
        config: the run's configuration.
        train: training sentences; dev: development sentences (the early-stopping score is their accuracy).
        vocabs: vocabularies; built from ``train`` when ``None`` (a resumed run passes the stored ones).
        distributed: this process' rank in a DDP run: it trains on every N-th batch of the epoch's plan
            (:meth:`~lstmkit.train.distributed.Distributed.shard_batches`), its loss weighted by its share of the
            step's words so that the averaged gradient is that of the mean over all ranks' words; the dev batches are
            shared out and the sums all-reduced. ``None``: one process.
    """

    score_name = "accuracy"
    higher_is_better = True
    show_perplexity = False

    def __init__(
        self,
        config: TrainTaggerConfig,
        train: Sequence[Sentence],
        dev: Sequence[Sentence],
        vocabs: TaggingVocabs | None = None,
        distributed: Distributed | None = None,
    ) -> None:
        ddp = self.distributed = distributed or single_process()
        self.config = config
        self.vocabs = vocabs if vocabs is not None else TaggingVocabs.build(train, config.tagset)
        seed_everything(config.seed)
        self.model = Tagger.from_vocabs(config.model, self.vocabs)
        optim = config.optim
        self.optimizer = torch.optim.Adam(
            self.model.parameters(), lr=optim.lr, betas=(optim.beta1, optim.beta2), weight_decay=optim.weight_decay
        )
        # the weights that are evaluated and kept: an exponential moving average of the trained ones, or themselves
        self.averaged = copy.deepcopy(self.model).eval() if optim.average else self.model
        ddp.seed_streams(config.seed)  # after the initial weights: dropout masks differ across ranks
        self.train_model = ddp.wrap(self.model)  # what training calls: DDP all-reduces the gradients
        self.averaged_steps = 0
        self.train_sentences = encode_sentences(train, self.vocabs)
        self.train_lengths = [len(sentence.word_ids) for sentence in self.train_sentences]
        dev_sentences = encode_sentences(dev, self.vocabs)
        dev_plan = batch_plan([len(sentence.word_ids) for sentence in dev_sentences], config.eval_batch_size)
        dev_plan = dev_plan[ddp.rank::ddp.world_size]  # this rank's share of the dev batches
        self.dev_batches = _batches_of(dev_sentences, dev_plan, self.vocabs, config.model.max_word_chars)

    # ------------------------------------------------------------------------------------------- the Task API

    def epoch_plan(self, epoch: int) -> list[list[int]]:
        """The batches of ``epoch``: a function of the seed and the epoch only, so a resume finds the same plan."""
        generator = torch.Generator().manual_seed(self.config.seed * 100_003 + epoch)
        return batch_plan(self.train_lengths, self.config.batch_size, generator)

    def batches_per_epoch(self) -> int:
        return len(self.distributed.shard_batches(self.epoch_plan(0)))

    def batches(self, epoch: int, position: Any) -> Iterator[tuple[Any, int]]:
        plan = self.distributed.shard_batches(self.epoch_plan(epoch))
        for index in range(int(position or 0), len(plan)):
            batch = make_batch(
                [self.train_sentences[i] for i in plan[index]], self.vocabs, self.config.model.max_word_chars
            )
            yield batch, index + 1

    def learning_rate(self, epoch: int) -> float:
        """The learning rate of ``epoch``: a function of the epoch only, so a resumed run uses the same."""
        return self.config.optim.lr * self.config.optim.lr_decay**epoch

    def train_step(self, batch: Any, info: StepInfo) -> Mapping[str, float]:
        lr = self.learning_rate(info.epoch)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.model.train()
        output = self.train_model(batch)
        loss = self.model.loss(output, batch.tags)
        self.optimizer.zero_grad(set_to_none=True)
        if self.distributed.enabled:  # DDP averages over ranks: weight each by its share of the step's words
            words = self.distributed.sum([batch.num_tokens])[0]
            (loss * (self.distributed.world_size * batch.num_tokens / words)).backward()
        else:
            loss.backward()
        if self.config.optim.clip > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.optim.clip)
        self.optimizer.step()
        if self.averaged is not self.model:
            self._update_average()
        return {"loss": loss.item(), "tokens": batch.num_tokens, "lr": lr}

    @torch.no_grad()
    def _update_average(self) -> None:
        """averaged <- averaged + (1 - d) (trained - averaged), with d = min(average, (1 + n) / (10 + n)) after n
        updates, so that the first evaluations are not dominated by the initial weights."""
        n = self.averaged_steps
        decay = min(self.config.optim.average, (1 + n) / (10 + n))
        for averaged, trained in zip(self.averaged.parameters(), self.model.parameters()):
            averaged.lerp_(trained, 1.0 - decay)
        self.averaged_steps = n + 1

    @torch.inference_mode()
    def evaluate(self) -> Mapping[str, float]:
        model = self.averaged.eval()
        loss_sum, correct, tokens = 0.0, 0, 0
        for batch in self.dev_batches:
            output = model(batch)
            n = batch.num_tokens
            loss_sum += model.loss(output, batch.tags).item() * n
            correct += int((model.predict(output) == batch.tags)[output.mask].sum())
            tokens += n
        if self.distributed.enabled:
            loss_sum, correct, tokens = self.distributed.sum([loss_sum, correct, tokens])
        return {"accuracy": correct / tokens, "loss": loss_sum / tokens}

    def info(self) -> dict[str, Any]:
        return {"kind": TASK_KIND, "config": config_to_dict(self.config), "vocabs": self.vocabs.to_dict()}

    def state_dict(self) -> TaskState:
        training: dict[str, Any] = {"optimizer": self.optimizer.state_dict()}
        if self.averaged is not self.model:
            training.update(averaged=self.averaged.state_dict(), averaged_steps=self.averaged_steps)
        return TaskState(self.model.state_dict(), training, self.info())

    def export_state(self) -> TaskState:
        """The evaluated weights (the moving average when there is one): what ``best/`` keeps."""
        return TaskState(self.averaged.state_dict(), None, self.info())

    def load_state_dict(self, state: TaskState) -> None:
        try:
            self.model.load_state_dict(state.model)
            if state.training is not None:
                self.optimizer.load_state_dict(state.training["optimizer"])
                if self.averaged is not self.model:
                    self.averaged.load_state_dict(state.training["averaged"])
                    self.averaged_steps = int(state.training["averaged_steps"])
        except (RuntimeError, KeyError, ValueError) as error:
            first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise CheckpointError(f"the checkpoint does not fit this tagger: {first}") from None


# -------------------------------------------------------------------------------------------------- training


def _read_splits(config: TrainTaggerConfig) -> tuple[list[Sentence], list[Sentence]]:
    if not config.data:
        raise ConfigError("no treebank given: pass --data DIR (a folder with *-train.conllu and *-dev.conllu)")
    files = find_conllu_splits(config.data, required=("train", "dev"))
    return read_conllu(files["train"]), read_conllu(files["dev"])


def train_tagger(
    config: TrainTaggerConfig | None,
    run_dir: str | os.PathLike,
    *,
    resume: bool = False,
    overrides: Sequence[str] = (),
    echo=None,
    distributed: Distributed | None = None,
) -> RunResult:
    """Train a tagger into ``run_dir``, or continue the run there.

    Args:
        config: the run's configuration (ignored with ``resume``: the stored one is used).
        run_dir: the run directory; a new run needs one without a checkpoint.
        resume: continue from ``RUN_DIR/checkpoint`` exactly where it stopped.
        overrides: ``--section.key=value`` changes to ``config``; with ``resume``, to the stored configuration, where
            only the loop's settings (``--train.key=value``, e.g. a larger ``max_seconds``; ``--loop.`` is accepted
            too), ``--data=DIR`` (the treebank has moved) and ``--threads=N`` can change.
        echo: called with a line per evaluation (e.g. ``print``).
        distributed: the rank of this process in a DDP run; ``None`` takes it from the environment (torchrun's
            variables: joins the process group, and leaves it at the end), which is one process without them.
            A resume needs the number of processes the run was trained with.

    Returns:
        The loop's :class:`~lstmkit.train.RunResult`.

    Raises:
        DataError: a missing or malformed treebank. CheckpointError: ``resume`` without a usable checkpoint.
        RunDirectoryError: a new run in a used directory. ConfigError: a bad override.
    """
    ddp = distributed or from_environment()
    try:
        with ddp.failures_as_errors(), ddp.hold_on_main(lambda: lock_run_dir(run_dir)):
            # rank 0 holds the run directory from before it reads the checkpoint: no other writer meanwhile
            return _train_tagger_locked(config, Path(run_dir), resume, overrides,
                                        echo if ddp.is_main else None, ddp)
    finally:
        if distributed is None:
            ddp.close()


def _train_tagger_locked(config, run_dir: Path, resume: bool, overrides, echo, ddp: Distributed) -> RunResult:
    checkpoint = None
    if resume:
        checkpoint = ddp.run_on_main(lambda: load_checkpoint(run_dir, name=LAST_CHECKPOINT))
        config, vocabs = read_tagger_info(checkpoint.extra.get("task"), run_dir)
        overrides = check_resume_overrides(overrides, ("--train.", "--loop.", "--data=", "--threads="),
                                           "--train.* settings (budgets), --data and --threads")
        config = merge_from_args(config, overrides)
    else:
        if config is None:
            raise ValueError("a new run needs a config")
        config = merge_from_args(config, list(overrides))
        if ddp.run_on_main(lambda: checkpoint_exists(run_dir, LAST_CHECKPOINT)):
            raise RunDirectoryError(f"{run_dir} already holds a run; resume it or choose a new run directory")
        vocabs = None
    if config.data:  # stored absolute: eval-tagger and --resume work from any folder
        config = dataclasses.replace(config, data=os.path.abspath(config.data))
    threads = ddp.set_threads(config.threads)
    if ddp.enabled and echo is not None:
        echo(ddp.describe(threads))
    train, dev = _read_splits(config)
    task = TaggingTask(config, train, dev, vocabs, ddp)
    if echo is not None:
        echo(f"treebank {config.data}: {len(train)} training and {len(dev)} dev sentences, tagset "
             f"{config.tagset.upper()}; run directory {run_dir}")
    return fit(task, run_dir, config.train, checkpoint=checkpoint, echo=echo, distributed=ddp)



def read_tagger_info(info: Any, where: Path | str) -> tuple[TrainTaggerConfig, TaggingVocabs]:
    """The configuration and vocabularies a checkpoint's task info describes.

    Raises:
        CheckpointError: the info is not a tagger's, or is damaged.
    """
    if not isinstance(info, dict) or info.get("kind") != TASK_KIND:
        raise CheckpointError(f"{where} is not a tagger run directory (its checkpoint holds no tagger)")
    try:
        return config_from_dict(TrainTaggerConfig, info["config"]), TaggingVocabs.from_dict(info["vocabs"])
    except (KeyError, ValueError) as error:
        raise CheckpointError(f"{where}: damaged tagger description: {error}") from None
