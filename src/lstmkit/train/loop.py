"""A model-agnostic training runner: budgets, evaluation, checkpoints, resume, signals, metrics, progress.

The runner knows nothing about models, data or losses. A *task* (the language model, the tagger, a test's toy
regression) owns all of that and offers a small interface, :class:`Task`. :func:`fit` drives it::

    run directory ──▶ (resume from RUN_DIR/checkpoint) ──▶ for each epoch:
        for batch, position in task.batches(epoch, position):      # resumable iteration
            metrics = task.train_step(batch, info)                 # timed: counts against max_seconds
            every log_every steps   -> a "train" record in metrics.jsonl
            every eval_every steps  -> evaluate, track the best, checkpoint (evaluation is not timed)
            checkpoint_seconds      -> checkpoint (wall clock since the last one), so a crash loses little
            SIGINT / SIGTERM        -> checkpoint, return (interrupted)
            a budget is spent       -> evaluate, checkpoint, return
            patience is spent       -> (after an evaluation) checkpoint, return: early stopping
        end of epoch                -> evaluate + checkpoint when eval_every == 0

The run directory is locked for the whole run (:mod:`lstmkit.train.rundir`: one writer), metrics.jsonl is cut
back to the checkpoint on resume, and checkpoints (see :mod:`lstmkit.train.checkpoint`: immutable versions behind
an atomically replaced link) are written atomically:

- ``RUN_DIR/checkpoint``: everything needed to continue exactly: the task's :class:`TaskState` (model tensors,
  training tensors such as the optimizer state, JSON info), the loop's counters and position in the epoch, and
  every random generator (Python, NumPy, torch, plus the task's own :meth:`Task.generators`).
- ``RUN_DIR/best``: the model at the best evaluation so far (:meth:`Task.export_state`), for later use.

Resuming exactly: a run of N steps and a run stopped after step N/2 (even by SIGKILL once its checkpoint was
written) and then resumed end with identical parameters, provided the task draws all its randomness from the
generators that are saved and its ``batches`` honours ``position``.

The checkpoint's ``state.json`` holds ``{"task": <TaskState.info>, "loop": <LoopState>}``; the training tensors
go where :func:`~lstmkit.train.save_checkpoint` puts an optimizer's state (``optimizer.safetensors`` + ``.json``).
"""

from __future__ import annotations

import dataclasses
import math
import os
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, NamedTuple, Protocol, runtime_checkable

import torch

from .checkpoint import Checkpoint, CheckpointError, checkpoint_exists, save_checkpoint
from .distributed import Distributed, single_process
from .metrics import METRICS_FILE, MetricsLogger, set_aside_metrics, truncate_metrics
from .progress import TrainingProgress
from .rundir import RunDirectoryError, lock_run_dir
from .seeding import ExplicitGenerator, set_rng_state

__all__ = [
    "LoopConfig",
    "StepInfo",
    "TaskState",
    "Task",
    "LoopState",
    "RunResult",
    "RunDirectoryError",
    "fit",
    "LAST_CHECKPOINT",
    "BEST_CHECKPOINT",
    "chosen_checkpoint",
]

LAST_CHECKPOINT = "checkpoint"
"""Name of the checkpoint written at every evaluation and on interruption (resume from it)."""

BEST_CHECKPOINT = "best"
"""Name of the checkpoint holding the model of the best evaluation so far."""


def chosen_checkpoint(run_dir: str | os.PathLike, checkpoint: str) -> str:
    """The checkpoint a loader reads when asked for ``checkpoint``: ``"best"`` is :data:`BEST_CHECKPOINT` when the
    run has one and :data:`LAST_CHECKPOINT` otherwise (a run stopped before its first evaluation), ``"last"`` is
    :data:`LAST_CHECKPOINT`; anything else is a ValueError. Whether that checkpoint exists is the caller's check."""
    if checkpoint not in ("best", "last"):
        raise ValueError(f"checkpoint must be 'best' or 'last', got {checkpoint!r}")
    if checkpoint == "best" and checkpoint_exists(run_dir, BEST_CHECKPOINT):
        return BEST_CHECKPOINT
    return LAST_CHECKPOINT


@dataclasses.dataclass(frozen=True)
class LoopConfig:
    """When to stop, evaluate and log. Budgets count across resumes; ``None`` means no limit."""

    max_epochs: int | None = None  # stop after this many passes over the training batches
    max_steps: int | None = None  # stop after this many training steps in total
    max_seconds: float | None = None  # stop after this much training time (evaluation and checkpoints excluded)
    eval_every: int = 0  # evaluate and checkpoint every this many steps; 0: at the end of every epoch
    patience: int | None = None  # early stopping: stop after this many evaluations in a row without a new best
    log_every: int = 100  # append a "train" record to metrics.jsonl every this many steps
    progress: bool | None = None  # progress bar: True/False, or None to show it only on a terminal
    checkpoint_seconds: float | None = 120.0  # also checkpoint after this many seconds (wall clock) without one,
    # so that a crash or SIGKILL loses at most that much; None: only at evaluations, the end and on signals

    def __post_init__(self) -> None:
        for name in ("max_epochs", "max_steps"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ValueError(f"{name} must be >= 0 or None, got {value}")
        if self.max_seconds is not None and not self.max_seconds >= 0:
            raise ValueError(f"max_seconds must be >= 0 or None, got {self.max_seconds}")
        if self.eval_every < 0:
            raise ValueError(f"eval_every must be >= 0 (0: every epoch), got {self.eval_every}")
        if self.log_every < 1:
            raise ValueError(f"log_every must be >= 1, got {self.log_every}")
        if self.patience is not None and self.patience < 1:
            raise ValueError(f"patience must be >= 1 or None, got {self.patience}")
        if self.checkpoint_seconds is not None and not self.checkpoint_seconds > 0:
            raise ValueError(f"checkpoint_seconds must be > 0 or None, got {self.checkpoint_seconds}")


class StepInfo(NamedTuple):
    """What the loop tells :meth:`Task.train_step` about where the run is.

    Attributes:
        step: steps completed before this one (0 for the first step of a run).
        epoch: the current epoch, 0-based.
        train_seconds: training time spent before this step.
        budget_fraction: the largest fraction of a set budget already spent (steps, seconds or epochs, epochs
            counted whole), in [0, 1]; ``None`` when no budget is set. A task may anneal a learning rate with it.
    """

    step: int
    epoch: int
    train_seconds: float
    budget_fraction: float | None


class TaskState(NamedTuple):
    """A task's state, in the three forms a checkpoint stores without pickle.

    Attributes:
        model: name -> tensor, e.g. ``model.state_dict()`` (written to ``model.safetensors``).
        training: a nested structure of tensors, numbers, strings, lists and dicts, e.g.
            ``{"optimizer": optimizer.state_dict(), "hidden": [...]}``; ``None`` when there is none (the best
            checkpoint needs none).
        info: JSON-able facts needed to rebuild the task and use its model: config, vocabulary, ...
    """

    model: dict[str, torch.Tensor]
    training: Any
    info: dict[str, Any]


@runtime_checkable
class Task(Protocol):
    """What :func:`fit` needs from a task. Methods marked optional may be left out.

    Attributes:
        score_name: the key of :meth:`evaluate`'s result that decides the best checkpoint, e.g. ``"loss"``.
        higher_is_better: ``False`` for a loss, ``True`` for an accuracy.
    """

    score_name: str
    higher_is_better: bool

    def batches(self, epoch: int, position: Any) -> Iterable[tuple[Any, Any]]:
        """The training batches of ``epoch`` as ``(batch, position)`` pairs.

        ``position`` is ``None`` at the start of an epoch. Each yielded ``position`` (JSON-able) says where the
        *following* batch starts: ``batches(epoch, position)`` must continue right after that batch. Draw any
        randomness lazily, batch by batch, from generators listed in :meth:`generators`, so that the saved
        generator states match the saved position.
        """
        ...

    def train_step(self, batch: Any, info: StepInfo) -> Mapping[str, float]:
        """Train on one batch. Returns numbers to log: ``"loss"`` (mean per item) is required; ``"tokens"``
        (items in the batch) weights the loss and gives the throughput; anything else is averaged and logged."""
        ...

    def evaluate(self) -> Mapping[str, float]:
        """Evaluate on the validation data; must include :attr:`score_name`. Called in the loop's order, so
        a task may update state here (e.g. NT-ASGD's trigger)."""
        ...

    def state_dict(self) -> TaskState:
        """Everything needed to continue training exactly (model, optimizer, carried state, info)."""
        ...

    def load_state_dict(self, state: TaskState) -> None:
        """Inverse of :meth:`state_dict`."""
        ...

    # optional: generators() -> Mapping[str, ExplicitGenerator]  (explicit generators to save; default none)
    # optional: export_state() -> TaskState  (the model to keep as "best", e.g. averaged weights; default
    #           state_dict() without its training part)
    # optional: batches_per_epoch() -> int | None  (length of the progress bar)
    # optional: show_perplexity: bool  (progress bar shows exp(loss); default True)
    # optional: accept_world_size(saved: int, now: int, info: dict) -> None  (a resume with another number of
    #           processes than the checkpoint's: raise CheckpointError to refuse; without it, it is refused)


@dataclasses.dataclass
class LoopState:
    """The loop's counters, stored in the checkpoint's ``state.json`` under ``"loop"``."""

    step: int = 0  # training steps completed
    epoch: int = 0  # current epoch (0-based); incremented when an epoch's batches run out
    position: Any = None  # where the next batch of the current epoch starts (None: at the beginning)
    train_seconds: float = 0.0  # training time so far
    tokens: int = 0  # items trained on so far (the sum of train_step's "tokens", 1 per step without it)
    evaluations: int = 0  # evaluations done
    best_score: float | None = None  # best value of the task's score_name
    best_step: int | None = None  # step of the best evaluation
    evaluations_since_best: int = 0  # evaluations in a row that did not improve on the best score
    last_eval_step: int | None = None  # step of the last evaluation
    last_metrics: dict[str, float] | None = None  # result of the last evaluation

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "LoopState":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise CheckpointError(f"checkpoint loop state has unknown key {unknown[0]!r}")
        return cls(**data)


class RunResult(NamedTuple):
    """What :func:`fit` returns.

    Attributes:
        state: the loop's final counters (step, epoch, training time, best score, last evaluation).
        stop_reason: ``"max_steps"``, ``"max_seconds"``, ``"max_epochs"``, ``"patience"`` (early stopping),
            ``"signal"`` or ``"finished"``.
        signal: the signal number that interrupted the run, else ``None``.
        run_dir: the run directory.
    """

    state: LoopState
    stop_reason: str
    signal: int | None
    run_dir: Path

    @property
    def interrupted(self) -> bool:
        return self.signal is not None


class _SignalCatcher:
    """Turn SIGINT / SIGTERM into a flag the loop checks between steps (a second SIGINT raises at once, or after
    ``repeat_grace`` seconds: under torchrun every rank gets Ctrl-C from the terminal and again from torchrun)."""

    def __init__(self, repeat_grace: float = 0.0) -> None:
        self.received: int | None = None
        self.repeat_grace = repeat_grace
        self._since = 0.0
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        if (self.received is not None and signum == signal.SIGINT
                and time.monotonic() - self._since >= self.repeat_grace):
            raise KeyboardInterrupt
        self.note(signum)

    def note(self, signum: int | None) -> None:
        """Record ``signum`` as the signal that stops the run (the first one counts)."""
        if signum is not None and self.received is None:
            self.received, self._since = signum, time.monotonic()

    def __enter__(self) -> "_SignalCatcher":
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc_info: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)


def _is_better(score: float, best: float | None, higher_is_better: bool) -> bool:
    if best is None:
        return not math.isnan(score)
    return score > best if higher_is_better else score < best


class _TrainWindow:
    """Accumulates the training numbers between two log records."""

    def __init__(self) -> None:
        self.sums: dict[str, float] = {}
        self.weights: dict[str, float] = {}
        self.tokens = 0.0
        self.seconds = 0.0
        self.steps = 0

    def add(self, metrics: Mapping[str, float], seconds: float) -> None:
        tokens = float(metrics.get("tokens", 1.0))
        self.tokens += tokens
        self.seconds += seconds
        self.steps += 1
        for key, value in metrics.items():
            if key == "tokens":
                continue
            weight = tokens if key == "loss" else 1.0
            self.sums[key] = self.sums.get(key, 0.0) + float(value) * weight
            self.weights[key] = self.weights.get(key, 0.0) + weight

    def record(self) -> dict[str, float]:
        out = {key: self.sums[key] / self.weights[key] for key in self.sums}
        out["tokens_per_second"] = self.tokens / self.seconds if self.seconds > 0 else 0.0
        return out


def fit(
    task: Task,
    run_dir: str | os.PathLike,
    config: LoopConfig,
    *,
    checkpoint: Checkpoint | None = None,
    echo: Callable[[str], None] | None = None,
    on_checkpoint: Callable[[Path, LoopState], None] | None = None,
    distributed: Distributed | None = None,
) -> RunResult:
    """Train ``task`` until a budget of ``config`` is spent or a signal arrives; checkpoint along the way.

    Args:
        task: the :class:`Task` to train (already built; for a resume, built from the checkpoint's info).
        run_dir: the run directory. A new run needs one without a checkpoint (it is created if missing).
        config: budgets and intervals; budgets count from the start of the run, across resumes.
        checkpoint: a :class:`~lstmkit.train.Checkpoint` of this run directory (``load_checkpoint(run_dir)``)
            to continue from; ``None`` starts a new run.
        echo: called with one line per evaluation and at the end (e.g. ``print``); ``None`` is silent.
        on_checkpoint: called after every ``RUN_DIR/checkpoint`` write with its path and the loop state.
        distributed: this process' place among the ranks of a DDP run (:mod:`lstmkit.train.distributed`); every
            rank calls ``fit`` and trains, rank 0 alone writes checkpoints, metrics, progress and ``echo`` lines.
            ``None``: one process.

    Returns:
        :class:`RunResult`. On SIGINT or SIGTERM the checkpoint is written first and ``signal`` says which.

    Raises:
        RunDirectoryError: a new run in a directory that already holds a checkpoint, or another process holds
            the run directory (:mod:`lstmkit.train.rundir`: the lock is held until this function returns).
        CheckpointError: the checkpoint does not fit the task (the task's ``load_state_dict`` decides).
    """
    run_dir = Path(run_dir)
    ddp = distributed or single_process()
    with ddp.hold_on_main(lambda: lock_run_dir(run_dir)):  # one writer per run directory: rank 0 holds it
        return _fit_locked(task, run_dir, config, checkpoint, echo, on_checkpoint, ddp)


def _fit_locked(
    task: Task,
    run_dir: Path,
    config: LoopConfig,
    checkpoint: Checkpoint | None,
    echo: Callable[[str], None] | None,
    on_checkpoint: Callable[[Path, LoopState], None] | None,
    ddp: Distributed,
) -> RunResult:
    say = (echo if ddp.is_main else None) or (lambda line: None)
    state = LoopState()
    if checkpoint is None:
        def prepare() -> None:
            if checkpoint_exists(run_dir, LAST_CHECKPOINT):
                raise RunDirectoryError(f"{run_dir} already holds a run; resume it or choose a new run directory")
            run_dir.mkdir(parents=True, exist_ok=True)
        ddp.run_on_main(prepare)
    else:
        loop_data = checkpoint.extra.get("loop")
        if not isinstance(loop_data, dict) or "task" not in checkpoint.extra:
            raise CheckpointError(f"checkpoint {checkpoint.path}: state.json has no training-loop state")
        state = LoopState.from_dict(loop_data)
        training, rank_states, saved_world = ddp.split_rank_states(checkpoint.optimizer_state)
        if saved_world != ddp.world_size:
            _accept_world_size(task, saved_world, ddp.world_size, checkpoint.extra["task"])
        task.load_state_dict(TaskState(checkpoint.model_state, training, checkpoint.extra["task"]))
        try:
            set_rng_state(checkpoint.rng_state, _generators(task))
        except (KeyError, TypeError) as error:
            raise CheckpointError(f"checkpoint {checkpoint.path}: random generators do not match: {error}") from None
        ddp.restore_rank_states(rank_states)

    def prepare_metrics() -> None:  # rank 0 alone touches metrics.jsonl
        if checkpoint is None:
            abandoned = set_aside_metrics(run_dir)
            if abandoned is not None:
                say(f"{run_dir / METRICS_FILE} was left by a run that wrote no checkpoint; moved to {abandoned}")
        else:
            dropped = truncate_metrics(run_dir, state.step)
            if dropped:
                say(f"dropped {dropped} metric records logged after the checkpoint (step {state.step}) from "
                    f"{run_dir / METRICS_FILE}")

    ddp.run_on_main(prepare_metrics)
    metrics = MetricsLogger(run_dir) if ddp.is_main else _NoMetrics()
    try:
        with _SignalCatcher(repeat_grace=10.0 if ddp.enabled else 0.0) as signals, ddp.failures_as_errors():
            stop_reason = _run(task, run_dir, config, state, metrics, signals, say, on_checkpoint, ddp)
    finally:
        metrics.close()
    caught = signals.received if stop_reason == "signal" else None
    return RunResult(state, stop_reason, caught, run_dir)


class _NoMetrics:
    """The metrics logger of ranks other than 0: rank 0 alone writes metrics.jsonl."""

    def log(self, record: Any = None, **fields: Any) -> None:
        pass

    def close(self) -> None:
        pass


def _accept_world_size(task: Task, saved: int, now: int, info: Any) -> None:
    accept = getattr(task, "accept_world_size", None)
    if accept is None:
        raise CheckpointError(f"this run was trained with {saved} process{'es' if saved != 1 else ''}; resume it "
                              f"with the same number (torchrun --nproc_per_node {saved}), not {now}")
    accept(saved, now, info)


def _generators(task: Task) -> dict[str, ExplicitGenerator]:
    method = getattr(task, "generators", None)
    return dict(method()) if method is not None else {}


def _budget_fraction(config: LoopConfig, state: LoopState) -> float | None:
    fractions = []
    if config.max_steps:
        fractions.append(state.step / config.max_steps)
    if config.max_seconds:
        fractions.append(state.train_seconds / config.max_seconds)
    if config.max_epochs:
        fractions.append(state.epoch / config.max_epochs)
    return min(1.0, max(fractions)) if fractions else None


def _spent(config: LoopConfig, state: LoopState) -> str | None:
    """The name of a budget that is spent (or ``"patience"`` when early stopping applies), else ``None``."""
    if config.patience is not None and state.evaluations_since_best >= config.patience:
        return "patience"
    if config.max_steps is not None and state.step >= config.max_steps:
        return "max_steps"
    if config.max_seconds is not None and state.train_seconds >= config.max_seconds:
        return "max_seconds"
    if config.max_epochs is not None and state.epoch >= config.max_epochs:
        return "max_epochs"
    return None


def _run(
    task: Task,
    run_dir: Path,
    config: LoopConfig,
    state: LoopState,
    metrics: MetricsLogger,
    signals: _SignalCatcher,
    say: Callable[[str], None],
    on_checkpoint: Callable[[Path, LoopState], None] | None,
    ddp: Distributed,
) -> str:
    show_perplexity = bool(getattr(task, "show_perplexity", True))
    last_save = [time.monotonic(), state.step]  # when, and at which step, the last checkpoint was written

    def save() -> None:
        task_state = task.state_dict()  # every rank: a task may gather its per-rank state here
        training = ddp.attach_rank_states(task_state.training)
        step_before, last_save[:] = last_save[1], [time.monotonic(), state.step]  # every rank: the timer
        if not ddp.is_main:
            return
        extra = {"task": task_state.info, "loop": state.to_dict()}
        path = _checked_save(run_dir, step_before, task_state.model, training, extra,
                             generators=_generators(task), name=LAST_CHECKPOINT)
        if on_checkpoint is not None:
            on_checkpoint(path, state)

    def evaluate() -> None:
        result = {key: float(value) for key, value in task.evaluate().items()}
        if task.score_name not in result:
            raise KeyError(f"the task's evaluate() returned no {task.score_name!r} (it returned {sorted(result)})")
        score = result[task.score_name]
        state.evaluations += 1
        state.last_eval_step = state.step
        state.last_metrics = result
        improved = _is_better(score, state.best_score, task.higher_is_better)
        state.evaluations_since_best = 0 if improved else state.evaluations_since_best + 1
        if improved:
            state.best_score, state.best_step = score, state.step
            export = getattr(task, "export_state", None)
            best = export() if export is not None else task.state_dict()  # every rank, as in save()
        if improved and ddp.is_main:
            _checked_save(run_dir, last_save[1], best.model, None, {"task": best.info, "loop": state.to_dict()},
                          name=BEST_CHECKPOINT)
        metrics.log(split="valid", step=state.step, epoch=state.epoch, train_seconds=state.train_seconds,
                    best=improved, **result)
        numbers = " ".join(f"{key}={value:.4g}" for key, value in result.items())
        say(f"evaluation {state.evaluations} (step {state.step}, epoch {state.epoch}, "
            f"{state.train_seconds:.0f}s of training): {numbers}{' (best)' if improved else ''}")

    def finish(reason: str) -> str:
        if state.last_eval_step != state.step or state.last_metrics is None:
            evaluate()
        save()
        return reason

    reason = _spent(config, state)
    if reason is not None:
        return finish(reason)
    length = getattr(task, "batches_per_epoch", None)
    while True:
        window = _TrainWindow()
        total = length() if length is not None else None
        progress = TrainingProgress(total=total, desc=f"epoch {state.epoch + 1}", disable=_disable(config, ddp),
                                    show_perplexity=show_perplexity)
        try:
            iterator: Iterator[tuple[Any, Any]] = iter(task.batches(state.epoch, state.position))
            while True:
                started = time.perf_counter()
                item = next(iterator, None)
                if item is None:
                    break
                batch, position = item
                info = StepInfo(state.step, state.epoch, state.train_seconds, _budget_fraction(config, state))
                step_metrics = task.train_step(batch, info)
                seconds = time.perf_counter() - started
                timer = (config.checkpoint_seconds is not None
                         and time.monotonic() - last_save[0] >= config.checkpoint_seconds)
                # several ranks: the same seconds, global loss and tokens, stop signal and timer on every rank
                agreed = ddp.agree_step(seconds, step_metrics, signals.received, timer)
                seconds, step_metrics, signalled = agreed.seconds, agreed.metrics, agreed.signal
                state.train_seconds += seconds
                state.step += 1
                state.position = position
                state.tokens += int(step_metrics.get("tokens", 1))
                window.add(step_metrics, seconds)
                progress.update(float(step_metrics["loss"]), int(step_metrics.get("tokens", 1)))
                if state.step % config.log_every == 0:
                    metrics.log(split="train", step=state.step, epoch=state.epoch,
                                train_seconds=state.train_seconds, **window.record())
                    window = _TrainWindow()
                if signalled is not None:
                    signals.note(signalled)
                    save()
                    say(f"stopped by signal {signals.received} at step {state.step}; checkpoint written to "
                        f"{run_dir / LAST_CHECKPOINT}")
                    return "signal"
                reason = _spent(config, state)
                if reason is not None:
                    progress.close()
                    return finish(reason)
                if config.eval_every and state.step % config.eval_every == 0:
                    progress.close()
                    evaluate()
                    save()
                    reason = _spent(config, state)
                    if reason is not None:
                        return reason
                    progress = TrainingProgress(total=total, desc=f"epoch {state.epoch + 1}",
                                                disable=_disable(config, ddp), show_perplexity=show_perplexity)
                elif agreed.checkpoint_due:
                    save()  # on the timer: a crash loses at most checkpoint_seconds of training
        finally:
            progress.close()
        if state.position is None:
            raise ValueError(f"the task yielded no training batches for epoch {state.epoch}")
        state.epoch += 1
        state.position = None
        signalled = ddp.agree_signal(signals.received)  # the same decision on every rank
        signals.note(signalled)
        if config.eval_every == 0:
            evaluate()
        reason = _spent(config, state)
        if reason is not None:
            return finish(reason)
        if config.eval_every == 0 or signalled is not None:
            save()
        if signalled is not None:
            return "signal"


def _checked_save(run_dir: Path, last_step: int, *args: Any, **kwargs: Any) -> Path:
    """:func:`save_checkpoint`, with a failure to write (disk full, permission denied) said in one line that
    also says the previous checkpoint is intact (a failed save never touches it)."""
    try:
        return save_checkpoint(run_dir, *args, **kwargs)
    except OSError as error:
        reason = error.strerror or str(error)
        name = kwargs.get("name", LAST_CHECKPOINT)
        previous = (f"the previous checkpoint (step {last_step}) is intact"
                    if checkpoint_exists(run_dir, LAST_CHECKPOINT) else "no checkpoint was written before")
        raise OSError(error.errno, f"cannot write the {name} checkpoint in {run_dir}: {reason}; {previous}") from None


def _disable(config: LoopConfig, ddp: Distributed) -> bool | None:
    if not ddp.is_main:
        return True
    return None if config.progress is None else not config.progress
