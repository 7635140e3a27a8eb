"""Training an AWD-LSTM language model: configs and presets, the task :func:`~lstmkit.train.fit` drives, and the
entry point :func:`train_language_model` behind ``lstmkit train-lm``.

One training step (AWD-LSTM's recipe; T is drawn per window, see :func:`lstmkit.data.bptt_windows`)::

    inputs, targets (T, B) ── model(inputs, detached hidden) ── cross entropy + AR + TAR ── backward
        ── clip the gradient norm ── lr = base lr x schedule x T / bptt ── optimizer step ── carry hidden on

After every evaluation (every epoch by default) NT-ASGD compares the validation loss with the best one from more
than ``nonmono`` evaluations earlier and, once it is worse, starts averaging the iterates; evaluation and the best
checkpoint then use the averaged weights.
"""

from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path
from typing import Any, ClassVar, Iterator, Literal, Sequence

import torch
import torch.nn.functional as F

from ..data import BpttWindow, Corpus, Vocab, batchify, bptt_windows, check_length, load_corpus
from ..train.checkpoint import (
    CheckpointError,
    checkpoint_exists,
    load_checkpoint,
    load_model_weights,
    load_optimizer_state,
)
from ..train.config import ConfigError, config_from_dict, config_to_dict, merge_from_args
from ..train.distributed import Distributed, from_environment, single_process
from ..train.loop import LAST_CHECKPOINT, LoopConfig, RunDirectoryError, RunResult, StepInfo, TaskState, fit
from ..train.optim import NTASGD
from ..train.rundir import lock_run_dir
from ..train.seeding import seed_everything
from .model import LanguageModel, LanguageModelConfig, LMHidden, detach_hidden

__all__ = [
    "LMDataConfig",
    "LMOptimConfig",
    "LMRunConfig",
    "PRESETS",
    "preset_config",
    "make_config",
    "LanguageModelTask",
    "evaluate_stream",
    "train_language_model",
    "read_run_config",
    "check_compatible",
    "load_model_weights",
    "TASK_KIND",
    "resolve_precision",
    "cpu_has_native_bfloat16",
]

TASK_KIND = "language_model"
"""The ``kind`` recorded in a language-model checkpoint's task info."""


@dataclasses.dataclass(frozen=True)
class LMDataConfig:
    """Where the corpus is and how it is cut into batches."""

    path: str | None = None  # corpus directory (word level) or text file (char level); None: the built-in corpus
    level: Literal["word", "char"] = "word"  # tokens are words (whitespace-separated, <eos> per line) or characters
    batch_size: int = 20  # B: parallel streams in training
    bptt: int = 70  # mean window length (AWD-LSTM draws N(bptt, 5), or N(bptt/2, 5) with probability 0.05)
    variable_length: bool = True  # draw window lengths (False: every window is bptt long)
    eval_batch_size: int = 10  # streams for validation
    test_batch_size: int = 1  # streams for the test split (AWD-LSTM reports test perplexity with 1)

    def __post_init__(self) -> None:
        for name in ("batch_size", "bptt", "eval_batch_size", "test_batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")


@dataclasses.dataclass(frozen=True)
class LMOptimConfig:
    """The optimizer and its schedule."""

    optimizer: Literal["ntasgd", "sgd", "adam"] = "ntasgd"  # NT-ASGD (AWD-LSTM), plain SGD, or Adam
    lr: float = 30.0  # base learning rate (scaled by window length / bptt every step)
    clip: float = 0.25  # maximum gradient norm; 0 disables clipping
    weight_decay: float = 1.2e-6  # L2 penalty on every weight
    momentum: float = 0.0  # SGD / NT-ASGD momentum
    nonmono: int = 5  # NT-ASGD: evaluations exempt from the "worse than the best before" comparison
    average_from: float | None = None  # NT-ASGD: also start averaging once this fraction of the budget is spent
    schedule: Literal["constant", "linear", "cosine"] = "constant"  # lr multiplier over the spent budget fraction
    final_lr_fraction: float = 0.0  # what the linear / cosine schedule decays to, as a fraction of lr
    betas: tuple[float, float] = (0.9, 0.999)  # Adam's moment decay rates

    def __post_init__(self) -> None:
        if not self.lr > 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
        if self.clip < 0 or self.weight_decay < 0 or self.momentum < 0 or self.nonmono < 0:
            raise ValueError("clip, weight_decay, momentum and nonmono must be >= 0")
        if self.average_from is not None and not 0 <= self.average_from <= 1:
            raise ValueError(f"average_from must be in [0, 1] or None, got {self.average_from}")
        if not 0 <= self.final_lr_fraction <= 1:
            raise ValueError(f"final_lr_fraction must be in [0, 1], got {self.final_lr_fraction}")

    def lr_factor(self, budget_fraction: float | None) -> float:
        """The schedule's multiplier of ``lr`` once ``budget_fraction`` of the budget is spent."""
        if self.schedule == "constant" or budget_fraction is None:
            return 1.0
        floor = self.final_lr_fraction
        if self.schedule == "linear":
            return floor + (1.0 - floor) * (1.0 - budget_fraction)
        return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * budget_fraction))


@dataclasses.dataclass(frozen=True)
class LMRunConfig:
    """Everything about a language-model run; overridable as ``--section.key=value``."""

    preset: str = "awd"  # the preset these values started from (informational)
    seed: int = 141  # seeds Python, NumPy, torch and the window-length generator
    threads: int = 0  # torch intra-op threads; 0 leaves torch's default
    precision: Literal["auto", "float32", "bfloat16"] = "auto"  # training compute of the LSTMs and the decoder:
    # bfloat16 autocast (float32 weights, softmax and optimizer) or float32; auto = bfloat16 where the CPU has
    # native bfloat16 arithmetic (AVX512-BF16 / AMX), else float32. Evaluation is always float32.
    data: LMDataConfig = dataclasses.field(default_factory=LMDataConfig)
    model: LanguageModelConfig = dataclasses.field(default_factory=LanguageModelConfig)
    optim: LMOptimConfig = dataclasses.field(default_factory=LMOptimConfig)
    train: LoopConfig = dataclasses.field(default_factory=lambda: LoopConfig(max_epochs=750, log_every=200))

    config_aliases: ClassVar[dict[str, str]] = {"loop": "train"}  # the tagger's former name of the section

    def __post_init__(self) -> None:
        if isinstance(self.threads, bool) or not isinstance(self.threads, int) or self.threads < 0:
            raise ValueError(f"threads must be an int >= 0 (0: torch's default), got {self.threads!r}")


def _awd() -> LMRunConfig:
    """The paper's PTB recipe: 400/1150/3, batch 40, bptt 70, dropouts (0.4, 0.3, 0.4, 0.1), weight dropout 0.5,
    AR 2, TAR 1, NT-ASGD lr 30, clip 0.25, weight decay 1.2e-6, nonmono 5, 750 epochs."""
    return LMRunConfig(
        preset="awd",
        data=LMDataConfig(batch_size=40, bptt=70),
        model=LanguageModelConfig(embedding_size=400, hidden_size=1150, num_layers=3),
        optim=LMOptimConfig(),
        train=LoopConfig(max_epochs=750, log_every=200),
    )


def _small() -> LMRunConfig:
    """200/400/2 with bptt 35 and batch 20: AWD-LSTM's regularisers and NT-ASGD, scaled for a model 7x smaller
    trained for minutes rather than days.

    The paper's dropouts (input 0.4, hidden 0.3, output 0.4, embedding 0.1, weight 0.5) were tuned for 24M
    parameters and 750 epochs; this 3.5M-parameter model trained for a few epochs underfits with them. Measured on
    PTB (validation perplexity, averaging from half the steps): 8,000 steps: 138.5 with the paper's values, 112.6
    with (0.25, 0.2, 0.25, 0.05, 0.25); 5,000 steps (what 900 s give here): 127.7 with the latter, 114.2 with these
    (0.15, 0.1, 0.15, 0, 0.15). AR and TAR keep the paper's 2 and 1. Averaging starts once half of the budget
    (time, steps or epochs) is spent, so a run with ``--max-seconds`` ends on averaged weights even when
    validation has not stalled yet (NT-ASGD's trigger still applies earlier when it does).
    """
    return LMRunConfig(
        preset="small",
        data=LMDataConfig(batch_size=20, bptt=35),
        model=LanguageModelConfig(
            embedding_size=200, hidden_size=400, num_layers=2, embedding_dropout=0.0, input_dropout=0.15,
            hidden_dropout=0.1, output_dropout=0.15, weight_dropout=0.15,
        ),
        optim=LMOptimConfig(average_from=0.5),
        train=LoopConfig(max_epochs=750, log_every=200),
    )


PRESETS = {"small": _small, "awd": _awd}
"""Preset name -> function returning its :class:`LMRunConfig`."""


def preset_config(name: str) -> LMRunConfig:
    """The :class:`LMRunConfig` of preset ``name``.

    Raises:
        ConfigError: an unknown preset (the message lists the known ones).
    """
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; choose from {', '.join(PRESETS)}")
    return PRESETS[name]()


def make_config(preset: str = "small", overrides: Sequence[str] = ()) -> LMRunConfig:
    """A preset with ``--section.key=value`` overrides applied (see :func:`lstmkit.train.merge_from_args`)."""
    return merge_from_args(preset_config(preset), list(overrides))


# ------------------------------------------------------------------------------------------------------ the task


def cpu_has_native_bfloat16() -> bool:
    """Whether this CPU has bfloat16 matrix units (x86 AMX-BF16; read from /proc/cpuinfo), where bfloat16 training
    pays. AVX512-BF16 alone does not: on such a host (Xeon family 6 model 207 without AMX exposed) the language model
    trained at 0.58x its float32 speed in bfloat16 (benchmarks/RESULTS.md, "The wait policy's cost")."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as file:
            for line in file:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return "amx_bf16" in flags
    except OSError:
        pass
    return False


def resolve_precision(precision: str) -> torch.dtype:
    """The training compute dtype for a config's ``precision``."""
    if precision == "auto":
        return torch.bfloat16 if cpu_has_native_bfloat16() else torch.float32
    return torch.bfloat16 if precision == "bfloat16" else torch.float32


def evaluate_stream(model: LanguageModel, data: torch.Tensor, bptt: int) -> tuple[float, int]:
    """Mean cross entropy (nats per token) of ``model`` on batchified ``data`` (R, B) in fixed windows of
    ``bptt``, carrying the state across windows; returns ``(loss, number of target tokens)``."""
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    hidden: LMHidden | None = None
    try:
        with torch.inference_mode():
            for window in bptt_windows(data, bptt, variable=False):
                out = model(window.inputs, hidden)
                logits = model.logits(out.output).reshape(-1, model.vocab_size)
                total += F.cross_entropy(logits, window.targets.reshape(-1), reduction="sum").item()
                count += window.targets.numel()
                hidden = out.hidden
    finally:
        model.train(was_training)
    if count == 0:
        raise ValueError("nothing to evaluate: the data has fewer than two rows")
    return total / count, count


def _tokenizer_name(config: LMRunConfig) -> str:
    """How prompts are split into tokens so they match the corpus: characters, the built-in corpus' word and
    punctuation runs, or whitespace (PTB, WikiText)."""
    if config.data.level == "char":
        return "char"
    return "builtin" if config.data.path is None else "whitespace"


class LanguageModelTask:
    """The language-model :class:`~lstmkit.train.Task`: AWD-LSTM training on a :class:`~lstmkit.data.Corpus`.

    Args:
        config: the run's configuration.
        corpus: the loaded corpus (its vocabulary defines the model's output size).
        distributed: this process' rank in a DDP run: the training stream is batchified into
            ``N * batch_size`` columns and this rank trains on its ``batch_size`` of them (the global batch of one
            process with ``N * batch_size``); validation columns are shared out and the sums all-reduced.
            ``None``: one process.

    Raises:
        DataError: the training split is too short for one ``batch_size`` x ``bptt`` window, or the validation
            split for one window of ``eval_batch_size`` streams.
    """

    score_name = "loss"
    higher_is_better = False
    show_perplexity = True

    def __init__(self, config: LMRunConfig, corpus: Corpus, distributed: Distributed | None = None) -> None:
        data = config.data
        ddp = self.distributed = distributed or single_process()
        streams = data.batch_size * ddp.world_size
        check_length(corpus.train, streams, data.bptt, "train")
        check_length(corpus.valid, data.eval_batch_size, 1, "valid")
        self.config = config
        self.corpus = corpus
        self.vocab: Vocab = corpus.vocab
        self.train_data = batchify(corpus.train, streams)[:, ddp.shard(streams)].contiguous()  # (R, B)
        self.valid_data = batchify(corpus.valid, data.eval_batch_size)[:, ddp.shard(data.eval_batch_size)]
        self.model = LanguageModel(len(self.vocab), config.model)
        ddp.seed_streams(config.seed)  # after the initial weights: dropout masks differ across ranks
        self.train_model = ddp.wrap(self.model)  # what training calls: DDP all-reduces the gradients
        self.optimizer = self._make_optimizer()
        self.compute_dtype = resolve_precision(config.precision)
        self.windows = torch.Generator().manual_seed(config.seed)  # window lengths: saved with the checkpoint
        self.hidden: LMHidden | None = None  # carried from one window to the next within an epoch

    def _make_optimizer(self) -> torch.optim.Optimizer:
        o = self.config.optim
        params = list(self.model.parameters())
        if o.optimizer == "adam":
            return torch.optim.Adam(params, lr=o.lr, betas=o.betas, weight_decay=o.weight_decay)
        if o.optimizer == "sgd":
            return torch.optim.SGD(params, lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay)
        return NTASGD(params, lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay, nonmono=o.nonmono)

    # -------------------------------------------------------------------------------------------- Task protocol

    def batches(self, epoch: int, position: Any) -> Iterator[tuple[BpttWindow, int]]:
        if position is None:
            self.hidden = None  # every epoch starts from a zero state, as in AWD-LSTM
        data = self.config.data
        for window in bptt_windows(self.train_data, data.bptt, data.variable_length, self.windows,
                                   start=int(position or 0)):
            yield window, window.next_start

    def batches_per_epoch(self) -> int:
        return max(1, (self.train_data.size(0) - 1) // self.config.data.bptt)

    def train_step(self, window: BpttWindow, info: StepInfo) -> dict[str, float]:
        model, optimizer, o = self.model, self.optimizer, self.config.optim
        if (isinstance(optimizer, NTASGD) and o.average_from is not None and not optimizer.averaging
                and info.budget_fraction is not None and info.budget_fraction >= o.average_from):
            optimizer.start_averaging()
        model.train()
        hidden = detach_hidden(self.hidden) if self.hidden is not None else None
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.compute_dtype == torch.bfloat16):
            out = self.train_model(window.inputs, hidden)
            losses = model.loss(out, window.targets)
        optimizer.zero_grad(set_to_none=True)
        losses.loss.backward()
        if o.clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), o.clip)
        base = o.lr * o.lr_factor(info.budget_fraction)
        for group in optimizer.param_groups:
            group["lr"] = base * window.lr_scale
        optimizer.step()
        for group in optimizer.param_groups:
            group["lr"] = base
        weights = model.embedding.weight.dtype  # float32 also after bf16 autocast (float64 in the DDP parity test)
        self.hidden = tuple((h.detach().to(weights), c.detach().to(weights)) for h, c in out.hidden)
        return {"loss": losses.cross_entropy.item(), "tokens": window.targets.numel(), "lr": base,
                "ar": losses.ar.item(), "tar": losses.tar.item()}

    def evaluate(self) -> dict[str, float]:
        """Validation loss with the averaged weights once NT-ASGD averages; feeds NT-ASGD's trigger."""
        optimizer = self.optimizer
        if isinstance(optimizer, NTASGD):
            with optimizer.swap_to_average():
                loss, tokens = self._valid_loss()
            optimizer.step_validation(loss)
        else:
            loss, tokens = self._valid_loss()
        result = {"loss": loss, "ppl": _exp(loss), "tokens": float(tokens)}
        if self.corpus.level == "char":
            result["bpc"] = loss / math.log(2)
        if isinstance(optimizer, NTASGD):
            result["averaging"] = float(optimizer.averaging)
        return result

    def _valid_loss(self) -> tuple[float, int]:
        """``evaluate_stream`` on the validation columns; under DDP each rank takes its share of the columns and
        the sums are added up, so the figure is the one-process figure of the same weights."""
        if not self.distributed.enabled:
            return evaluate_stream(self.model, self.valid_data, self.config.data.bptt)
        loss, tokens = 0.0, 0
        if self.valid_data.size(1):
            loss, tokens = evaluate_stream(self.model, self.valid_data, self.config.data.bptt)
        total, count = self.distributed.sum([loss * tokens, tokens])
        return total / count, int(count)

    def info(self) -> dict[str, Any]:
        """What a checkpoint needs besides tensors to rebuild and use the model."""
        return {
            "kind": TASK_KIND,
            "config": config_to_dict(self.config),
            "vocab": self.vocab.to_dict(),
            "level": self.corpus.level,
            "tokenizer": _tokenizer_name(self.config),
            "unknown_counts": dict(self.corpus.unknown_counts),
            "num_parameters": self.model.num_parameters(),
        }

    def state_dict(self) -> TaskState:
        gather = self.distributed.gather_columns  # under DDP: every rank's columns, (1, N * B, H)
        hidden = None if self.hidden is None else [[gather(h, 1), gather(c, 1)] for h, c in self.hidden]
        training = {"optimizer": self.optimizer.state_dict(), "hidden": hidden}
        return TaskState(self.model.state_dict(), training, self.info())

    def export_state(self) -> TaskState:
        """The weights to keep as the best model: the NT-ASGD average once averaging, else the raw weights."""
        if isinstance(self.optimizer, NTASGD):
            with self.optimizer.swap_to_average():
                weights = {key: value.detach().clone() for key, value in self.model.state_dict().items()}
        else:
            weights = self.model.state_dict()
        return TaskState(weights, None, self.info())

    def load_state_dict(self, state: TaskState) -> None:
        check_compatible(state.info, self.vocab, "the checkpoint")
        load_model_weights(self.model, state.model, "checkpoint")
        load_optimizer_state(self.optimizer, state.training)
        hidden = state.training.get("hidden")
        streams = self.config.data.batch_size * self.distributed.world_size
        if hidden is not None and any(h.size(1) != streams or c.size(1) != streams for h, c in hidden):
            raise CheckpointError(f"the checkpoint's carried state has {hidden[0][0].size(1)} streams; this run "
                                  f"trains {streams} (processes x data.batch_size)")
        mine = self.distributed.shard(streams)
        self.hidden = None if hidden is None else tuple((h[:, mine].contiguous(), c[:, mine].contiguous())
                                                        for h, c in hidden)

    def accept_world_size(self, saved: int, now: int, info: dict[str, Any]) -> None:
        """A resume with another number of processes continues the same run when the global batch (processes x
        ``data.batch_size``) is unchanged: the same batchify layout and carried state, and NT-ASGD, the optimizer and
        the window lengths as saved; only the dropout streams of the ranks differ. Otherwise it is refused."""
        try:
            saved_batch = int(info["config"]["data"]["batch_size"])
        except (KeyError, TypeError, ValueError):
            raise CheckpointError("the checkpoint's configuration has no data.batch_size") from None
        batch = self.config.data.batch_size
        if saved * saved_batch == now * batch:
            return
        hint = f"torchrun --nproc_per_node {saved}"
        if (saved * saved_batch) % now == 0:
            hint += f", or --data.batch_size={saved * saved_batch // now} with {now}"
        raise CheckpointError(
            f"this run was trained with {saved} process(es) x data.batch_size {saved_batch} = {saved * saved_batch} "
            f"streams; {now} x {batch} = {now * batch} would change the data layout; keep the global batch ({hint})"
        )

    def generators(self) -> dict[str, torch.Generator]:
        return {"windows": self.windows}


def _exp(loss: float) -> float:
    try:
        return math.exp(loss)
    except OverflowError:
        return math.inf


def check_compatible(info: dict[str, Any], vocab: Vocab, where: Path | str) -> None:
    """Raise :class:`CheckpointError` unless a checkpoint's task info is a language model over ``vocab``."""
    if info.get("kind") != TASK_KIND:
        raise CheckpointError(f"{where} is not a language-model checkpoint (kind {info.get('kind')!r})")
    try:
        saved = Vocab.from_dict(info["vocab"])
    except (KeyError, ValueError, TypeError) as error:
        raise CheckpointError(f"{where}: the stored vocabulary is damaged: {error}") from None
    if saved != vocab:
        differ = sum(1 for a, b in zip(saved.itos, vocab.itos) if a != b) + abs(len(saved) - len(vocab))
        raise CheckpointError(
            f"{where} was trained on another vocabulary ({len(saved)} tokens) than this corpus has ({len(vocab)} "
            f"tokens, {differ} positions differ); use the corpus the run was trained on"
        )


# --------------------------------------------------------------------------------------------------- entry point


def read_run_config(checkpoint_extra: dict[str, Any], where: Path | str) -> LMRunConfig:
    """The :class:`LMRunConfig` stored in a checkpoint's ``state.json``."""
    info = checkpoint_extra.get("task")
    if not isinstance(info, dict) or info.get("kind") != TASK_KIND or "config" not in info:
        raise CheckpointError(f"{where} is not a language-model checkpoint")
    return config_from_dict(LMRunConfig, info["config"])


def train_language_model(
    config: LMRunConfig | None = None,
    run_dir: str | os.PathLike = "runs/lm",
    *,
    resume: bool = False,
    overrides: Sequence[str] = (),
    echo=None,
    on_checkpoint=None,
    distributed: Distributed | None = None,
) -> RunResult:
    """Train (or resume) a language model in ``run_dir``; the Python form of ``lstmkit train-lm``.

    Args:
        config: the run's configuration for a new run (default: the small preset). Ignored when resuming.
        run_dir: the run directory.
        resume: continue the run in ``run_dir`` from its checkpoint, with its stored configuration.
        overrides: ``--section.key=value`` changes applied to the stored configuration when resuming (e.g. a
            larger ``--train.max_epochs``, or ``--data.path`` when the corpus has moved).
        echo: called with progress lines (e.g. ``print``); ``None`` is silent.
        on_checkpoint: passed to :func:`lstmkit.train.fit`.
        distributed: the rank of this process in a DDP run; ``None`` takes it from the environment (torchrun's
            variables: joins the process group, and leaves it at the end), which is one process without them.
            Every rank calls this function; rank 0 reads the checkpoint and writes the run directory.

    Returns:
        The :class:`~lstmkit.train.RunResult`.

    Raises:
        DataError, ConfigError, CheckpointError, RunDirectoryError: bad input, before the run directory changes.
    """
    ddp = distributed or from_environment()
    try:
        with ddp.failures_as_errors(), ddp.hold_on_main(lambda: lock_run_dir(run_dir)):
            # rank 0 holds the run directory from before it reads the checkpoint: no other writer meanwhile
            return _train_language_model_locked(config, Path(run_dir), resume, overrides,
                                                echo if ddp.is_main else None, on_checkpoint, ddp)
    finally:
        if distributed is None:
            ddp.close()


def _train_language_model_locked(config, run_dir: Path, resume: bool, overrides, echo, on_checkpoint,
                                 ddp: Distributed) -> RunResult:
    checkpoint = None
    if resume:
        checkpoint = ddp.run_on_main(lambda: load_checkpoint(run_dir, name=LAST_CHECKPOINT))
        config = merge_from_args(read_run_config(checkpoint.extra, checkpoint.path), list(overrides))
    else:
        config = merge_from_args(config or preset_config("small"), list(overrides))
        if ddp.run_on_main(lambda: checkpoint_exists(run_dir, LAST_CHECKPOINT)):
            raise RunDirectoryError(f"{run_dir} already holds a run; resume it or choose a new run directory")
    if config.data.path is not None:  # stored absolute: eval-lm and --resume work from any folder
        config = dataclasses.replace(config, data=dataclasses.replace(config.data,
                                                                      path=os.path.abspath(config.data.path)))
    threads = ddp.set_threads(config.threads)
    if ddp.enabled and echo is not None:
        echo(ddp.describe(threads))
    seed_everything(config.seed)
    corpus = load_corpus(config.data.path, config.data.level)
    if checkpoint is not None:
        check_compatible(checkpoint.extra["task"], corpus.vocab, checkpoint.path)
    task = LanguageModelTask(config, corpus, ddp)
    if echo is not None:
        unknown = ", ".join(f"{name} {count}" for name, count in corpus.unknown_counts.items() if count)
        echo(f"corpus: {corpus.level} level, vocabulary {len(corpus.vocab)}, train {corpus.train.numel()} / valid "
             f"{corpus.valid.numel()} / test {corpus.test.numel()} tokens; unseen in train -> <unk>: "
             f"{unknown or 'none'}")
        echo(f"model: {task.model.num_parameters():,} parameters, preset {config.preset}; run directory {run_dir}")
    return fit(task, run_dir, config.train, checkpoint=checkpoint, echo=echo, on_checkpoint=on_checkpoint,
               distributed=ddp)
