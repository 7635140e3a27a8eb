"""Training one model on several processes: torchrun + DistributedDataParallel, and what the loop needs of it.

``torchrun --nproc_per_node N -m lstmkit train-lm ...`` starts N copies of the command with ``RANK``,
``WORLD_SIZE``, ``LOCAL_WORLD_SIZE``, ``MASTER_ADDR`` and ``MASTER_PORT`` set. :func:`from_environment` sees them,
joins the process group (gloo on CPU, NCCL for CUDA) and returns a :class:`Distributed` that the trainers use at
a few hooks; without those variables it returns the one-process context, whose every method is the identity, so a
plain ``lstmkit train-lm`` is unchanged.

::

    every rank   reads the data, builds the task (same seed, same initial weights; DDP also broadcasts rank 0's)
                 trains on its share: the language model on its B of the N*B batchify columns, the tagger on
                 every N-th batch of the epoch's plan (torch's DistributedSampler over the plan)
    each step    DDP all-reduces (averages) the gradients during backward; clipping, NT-ASGD and the learning
                 rate then see the same gradient on every rank, so the replicas stay equal
                 agree_step: one all-gather of (step seconds, signal, loss x tokens, tokens) so that every rank
                 counts the same training time (--max-seconds stops all at the same step) and stops together
    evaluation   sharded (LM: eval columns; tagger: dev batches), sums all-reduced: the one-process figure
    checkpoint   every rank takes part (carried LM state and per-rank RNG states are gathered); rank 0 writes
    rank 0 only  metrics.jsonl, the progress bar, printed lines, checkpoints and plots

Random streams: every rank starts from the run's seed (so the weights are equal), then rank r > 0 reseeds torch's
generator with :func:`rank_seed` (seed, r): dropout masks differ across ranks and are the same in every run with
that seed. A checkpoint stores every rank's generator states, so a resume with the same N continues exactly.

A rank that dies breaks the other ranks' next collective at once (gloo reports the closed connection); a rank that
hangs is given up after the process-group timeout (``LSTMKIT_DIST_TIMEOUT`` seconds, default 300). Either way the
others raise :class:`DistributedError`, which the command prints as one line before exiting non-zero.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import gc
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, ContextManager, NamedTuple, TypeVar

import torch
import torch.distributed as dist

from .config import ConfigError
from .seeding import get_rng_state, set_rng_state

__all__ = [
    "Distributed",
    "DistributedError",
    "StepAgreement",
    "from_environment",
    "single_process",
    "is_main_process",
    "rank_seed",
    "available_cores",
    "TIMEOUT_ENV",
    "DEFAULT_TIMEOUT_SECONDS",
]

TIMEOUT_ENV = "LSTMKIT_DIST_TIMEOUT"
"""Environment variable: seconds a rank waits in a collective for the others before it gives up."""

DEFAULT_TIMEOUT_SECONDS = 300.0
"""The process-group timeout when :data:`TIMEOUT_ENV` is not set (covers rank 0 writing a large checkpoint)."""

_RANK_STATE_KEY = "distributed"  # key the loop adds to a checkpoint's training tree under DDP

T = TypeVar("T")


class DistributedError(RuntimeError):
    """The process group failed: another rank died, hung past the timeout, or the ranks disagree."""


class StepAgreement(NamedTuple):
    """What every rank records about a step (:meth:`Distributed.agree_step`).

    Attributes:
        seconds: the slowest rank's step time.
        metrics: the step's metrics with ``loss`` averaged over all ranks' tokens and ``tokens`` their sum.
        signal: the first signal any rank received, or ``None``.
        checkpoint_due: whether any rank's checkpoint timer ran out.
    """

    seconds: float
    metrics: dict[str, float]
    signal: int | None
    checkpoint_due: bool


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def rank_seed(seed: int, rank: int) -> int:
    """The seed of rank ``rank``'s torch generator: ``seed`` itself for rank 0, a distinct value for the others."""
    return seed if rank == 0 else (seed + 1_000_003 * rank) % 2**63


@dataclasses.dataclass(frozen=True)
class Distributed:
    """Which process this is among the ranks of one training run, and the collectives the trainers use.

    The default instance is the single process (``world_size`` 1): nothing is communicated and every method
    returns its input.

    Attributes:
        rank: this process' index, 0 .. world_size - 1; rank 0 writes everything that is per-run.
        world_size: N, the number of processes training the model.
        local_world_size: processes on this machine (they share its cores).
        backend: ``"gloo"`` or ``"nccl"``; ``None`` for one process.
        timeout: seconds a collective waits for the other ranks.
        owns_group: whether :func:`from_environment` created the process group (and :meth:`close` ends it).
    """

    rank: int = 0
    world_size: int = 1
    local_world_size: int = 1
    backend: str | None = None
    timeout: float = DEFAULT_TIMEOUT_SECONDS
    owns_group: bool = False

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    # ------------------------------------------------------------------------------------------- set-up

    def describe(self, threads: int) -> str:
        """The line rank 0 prints at start."""
        cores = available_cores()
        crowded = self.local_world_size * threads > cores
        return (f"distributed: {self.world_size} processes ({self.backend}, {self.local_world_size} on this machine), "
                f"{threads} torch thread{'s' if threads != 1 else ''} each; {self.local_world_size} x {threads} "
                f"threads on {cores} cores{' (more threads than cores: slower; see --threads)' if crowded else ''}; "
                f"process-group timeout {self.timeout:g} s")

    def set_threads(self, requested: int) -> int:
        """Set torch's intra-op threads and return the number: ``requested`` when > 0; otherwise, with several
        processes, the cores divided among this machine's ranks (at least 1), and torch's default for one."""
        if requested > 0:
            threads = requested
        elif self.enabled:
            threads = max(1, available_cores() // self.local_world_size)
        else:
            return torch.get_num_threads()
        torch.set_num_threads(threads)
        return threads

    def seed_streams(self, seed: int) -> None:
        """Give this rank its own torch random stream (:func:`rank_seed`); call after the model is built."""
        if self.enabled and self.rank:
            torch.manual_seed(rank_seed(seed, self.rank))

    def wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        """``DistributedDataParallel(model)`` for several processes (the model to call in training), else the
        model itself. Buffers are not synchronised at every forward: the models' buffers are constants."""
        if not self.enabled:
            return model
        return torch.nn.parallel.DistributedDataParallel(model, forward_sync_buffers=False)

    def close(self) -> None:
        """End the process group if this context created it. DDP wrappers still waiting for the garbage collector
        are freed first: one freed after the group (at interpreter exit) can abort the process."""
        if self.owns_group and dist.is_initialized():
            gc.collect()
            dist.destroy_process_group()

    # -------------------------------------------------------------------------------------------------- data

    def shard(self, total: int) -> slice:
        """This rank's contiguous part of ``total`` items split as evenly as possible (the first ranks get one
        more when it does not divide); empty when ``total < world_size`` leaves none."""
        base, extra = divmod(total, self.world_size)
        start = self.rank * base + min(self.rank, extra)
        return slice(start, start + base + (1 if self.rank < extra else 0))

    def shard_batches(self, plan: Sequence[T]) -> list[T]:
        """Every N-th batch of an epoch's plan, starting at this rank's index (torch's DistributedSampler without
        shuffling: the plan is shuffled already). The plan is padded by repeating its first batches so that every
        rank gets ``ceil(len(plan) / N)``; all ranks then take the same number of steps."""
        if not self.enabled:
            return list(plan)
        sampler = torch.utils.data.DistributedSampler(
            range(len(plan)), num_replicas=self.world_size, rank=self.rank, shuffle=False, drop_last=False
        )
        return [plan[index] for index in sampler]

    # ------------------------------------------------------------------------------------------- collectives

    def sum(self, values: Sequence[float]) -> list[float]:
        """Element-wise sum of ``values`` over the ranks (in float64)."""
        if not self.enabled:
            return [float(value) for value in values]
        tensor = torch.tensor([float(value) for value in values], dtype=torch.float64, device=self._device())
        dist.all_reduce(tensor)
        return tensor.tolist()

    def agree_step(
        self, seconds: float, metrics: Mapping[str, float], signal: int | None, checkpoint_due: bool = False
    ) -> StepAgreement:
        """What every rank records about the step it just took: the slowest rank's seconds (the ranks waited for
        it in the gradient all-reduce anyway), the loss averaged over all ranks' tokens and their total count,
        the first signal any rank received (so that all stop at this step), and whether any rank's checkpoint
        timer ran out (so that all take part in the save). One all-gather."""
        metrics = dict(metrics)
        if not self.enabled:
            return StepAgreement(seconds, metrics, signal, checkpoint_due)
        tokens = float(metrics.get("tokens", 1.0))
        mine = torch.tensor([seconds, float(signal or 0), float(metrics["loss"]) * tokens, tokens,
                             float(checkpoint_due)], dtype=torch.float64, device=self._device())
        everyone = [torch.empty_like(mine) for _ in range(self.world_size)]
        dist.all_gather(everyone, mine)
        table = torch.stack(everyone).cpu()  # (N, 5)
        signals = [int(value) for value in table[:, 1].tolist() if value]
        total_tokens = float(table[:, 3].sum())
        metrics["loss"] = float(table[:, 2].sum()) / total_tokens if total_tokens else float(metrics["loss"])
        if "tokens" in metrics:
            metrics["tokens"] = int(total_tokens)
        return StepAgreement(float(table[:, 0].max()), metrics, signals[0] if signals else None,
                             bool(table[:, 4].max() > 0))

    def agree_signal(self, signal: int | None) -> int | None:
        """The first signal any rank has received, or ``None``: the same answer on every rank."""
        if not self.enabled:
            return signal
        numbers = [0.0] * self.world_size
        numbers[self.rank] = float(signal or 0)
        received = [int(value) for value in self.sum(numbers) if value]
        return received[0] if received else None

    def gather_columns(self, tensor: torch.Tensor, dim: int) -> torch.Tensor:
        """Concatenate every rank's ``tensor`` along ``dim`` in rank order (sizes along ``dim`` may differ)."""
        if not self.enabled:
            return tensor
        sizes = self._all_gather_objects(tuple(tensor.shape))
        device = self._device()
        local = tensor.detach().to(device).contiguous()
        parts = [torch.empty(size, dtype=tensor.dtype, device=device) for size in sizes]
        dist.all_gather(parts, local)
        return torch.cat(parts, dim=dim).to(tensor.device)

    @contextlib.contextmanager
    def hold_on_main(self, make: Callable[[], ContextManager[Any]]) -> Iterator[None]:
        """Enter the context manager ``make()`` on rank 0 alone (e.g. the run directory's writer lock) for the
        duration of the block; a failure to enter it is raised on every rank."""
        with contextlib.ExitStack() as stack:
            self.run_on_main(lambda: stack.enter_context(make()) and None)
            yield

    def run_on_main(self, function: Callable[[], T]) -> T:
        """Call ``function`` on rank 0 only and give its result to every rank; an exception raised there is
        raised on every rank (same type and message), so no rank waits for a rank that failed."""
        if not self.enabled:
            return function()
        box: list[Any] = [None]
        if self.is_main:
            try:
                box[0] = ("ok", function())
            except Exception as error:  # handed to every rank, then raised on each
                box[0] = ("error", error)
        dist.broadcast_object_list(box, src=0)
        kind, value = box[0]
        if kind == "error":
            raise value
        return value

    def _all_gather_objects(self, value: Any) -> list[Any]:
        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, value)
        return out

    def _device(self) -> torch.device:
        if self.backend == "nccl":
            return torch.device("cuda", torch.cuda.current_device())
        return torch.device("cpu")

    # ------------------------------------------------------------------------------ checkpoint: rank states

    def attach_rank_states(self, training: Any) -> Any:
        """The training tree to checkpoint: under DDP, with every rank's random-generator states and N added
        under ``"distributed"`` (a collective: every rank calls it; rank 0 writes the result)."""
        if not self.enabled:
            return training
        if not isinstance(training, dict):
            raise TypeError("a distributed run needs the task's training state to be a dict")
        states = self._all_gather_objects(get_rng_state())
        return {**training, _RANK_STATE_KEY: {"world_size": self.world_size, "rng": states}}

    def restore_rank_states(self, saved: Any) -> None:
        """Set this rank's generators from :meth:`attach_rank_states`' record, after the loop restored rank 0's
        (``saved`` is ``None`` for a one-process checkpoint). A rank > 0 the checkpoint holds no state for (a resume
        with more processes) seeds its torch generator with :func:`rank_seed` of a number drawn from rank 0's
        restored state: its own stream, the same in every such resume."""
        if not self.enabled:
            return
        states = (saved or {}).get("rng") or []
        if self.rank < len(states):
            set_rng_state(states[self.rank], {})
        elif self.rank:
            torch.manual_seed(rank_seed(int(torch.randint(2**62, ()).item()), self.rank))

    @staticmethod
    def split_rank_states(training: Any) -> tuple[Any, Any, int]:
        """``(training without the DDP record, the record or None, the N the checkpoint was written with)``."""
        if isinstance(training, dict) and _RANK_STATE_KEY in training:
            training = dict(training)
            record = training.pop(_RANK_STATE_KEY)
            return training, record, int(record.get("world_size", 1))
        return training, None, 1

    # ------------------------------------------------------------------------------------------ failures

    @contextlib.contextmanager
    def failures_as_errors(self) -> Iterator[None]:
        """Turn a failed collective (a rank died or hung past the timeout) into a one-line
        :class:`DistributedError` naming this rank; everything else passes through unchanged."""
        try:
            yield
        except DistributedError:
            raise
        except RuntimeError as error:
            if not self.enabled or not _is_communication_failure(error):
                raise
            first = next((line.strip() for line in str(error).splitlines() if line.strip()), type(error).__name__)
            raise DistributedError(
                f"rank {self.rank} of {self.world_size}: lost contact with the other processes (one died, or did "
                f"not answer within the {self.timeout:g} s process-group timeout, {TIMEOUT_ENV}): {first}"
            ) from None


def _is_communication_failure(error: BaseException) -> bool:
    if isinstance(error, getattr(dist, "DistError", ())):
        return True
    text = str(error)
    return any(marker in text for marker in ("gloo", "Gloo", "NCCL", "Connection closed", "Connection reset",
                                               "Timed out", "timed out", "Broken pipe", "ProcessGroup"))


def is_main_process() -> bool:
    """Whether this process is rank 0 of a torchrun job, or not part of one (what a command may print)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank() == 0
    return int(os.environ.get("RANK", "0") or 0) == 0


def single_process() -> Distributed:
    """The one-process context: no communication."""
    return Distributed()


def _timeout_from_env() -> float:
    raw = os.environ.get(TIMEOUT_ENV)
    if raw is None or raw == "":
        return DEFAULT_TIMEOUT_SECONDS
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise ConfigError(f"{TIMEOUT_ENV}={raw!r}: expected a positive number of seconds")
    return value


def from_environment(device: str | torch.device = "cpu") -> Distributed:
    """The :class:`Distributed` context of this process.

    Uses the process group when one is initialised already (the caller owns it); otherwise joins one when
    torchrun's ``WORLD_SIZE`` is above 1 (backend gloo for CPU training, NCCL when ``device`` is CUDA); otherwise
    the one-process context.

    Raises:
        ConfigError: a bad :data:`TIMEOUT_ENV`, or a torchrun environment without ``RANK``.
    """
    timeout = _timeout_from_env()
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", "0") or 0)
    if dist.is_available() and dist.is_initialized():
        world = dist.get_world_size()
        return Distributed(dist.get_rank(), world, local_world or world, dist.get_backend(), timeout, False)
    world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    if world <= 1:
        return Distributed(timeout=timeout)
    if "RANK" not in os.environ:
        raise ConfigError("WORLD_SIZE is set but RANK is not: start the ranks with torchrun")
    if not dist.is_available():
        raise ConfigError("this torch build has no torch.distributed; cannot train on several processes")
    cuda = torch.device(device).type == "cuda"
    backend = "nccl" if cuda else "gloo"
    if cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout))
    return Distributed(dist.get_rank(), dist.get_world_size(), local_world or dist.get_world_size(), backend,
                       timeout, True)
