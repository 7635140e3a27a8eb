"""What every trainer shares: the run directory (``--run-dir``, ``--resume``) and the training budget
(``--max-seconds``, ``--max-epochs``, ``--no-progress``), the config overrides the budget becomes, the first line
(the budget) and the closing lines (:func:`finish_training`).

Every trainer keeps its loop settings in the config section ``train`` (``--train.max_seconds=...``).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from pathlib import Path

from .errors import UsageError


def add_run_dir_arguments(parser: argparse.ArgumentParser, alias: str | None = None) -> None:
    """``--run-dir DIR`` (with an older spelling ``alias`` accepted too) and ``--resume [RUN_DIR]``."""
    names = ["--run-dir"] + ([alias] if alias else [])
    parser.add_argument(*names, dest="run_dir", metavar="DIR",
                        help="the run directory: checkpoints, metrics.jsonl" + (f" ({alias} is accepted too)"
                                                                                if alias else ""))
    parser.add_argument("--resume", nargs="?", const=True, default=None, metavar="RUN_DIR",
                        help="continue the run in RUN_DIR (or --run-dir) exactly where it stopped, with its stored "
                        "configuration")


def resume_dir(args: argparse.Namespace) -> Path:
    """The run directory to resume: ``--resume RUN_DIR`` or ``--run-dir DIR --resume`` (the same if both)."""
    named = None if args.resume is True else Path(args.resume)
    other = None if args.run_dir is None else Path(args.run_dir)
    if named is not None and other is not None and named != other:
        raise UsageError("--run-dir and --resume name different directories; a resumed run stays where it is")
    run_dir = named or other
    if run_dir is None:
        raise UsageError("--resume needs the run directory: --resume RUN_DIR or --run-dir RUN_DIR --resume")
    return run_dir


def add_budget_arguments(parser: argparse.ArgumentParser) -> None:
    """``--max-seconds``, ``--max-epochs`` and ``--no-progress``."""
    parser.add_argument("--max-seconds", type=float, metavar="S",
                        help="train for S seconds of training time (evaluation excluded) in this command, then "
                        "evaluate; with --resume, S more seconds on top of what the run has trained (the first "
                        "line of output says how many). --train.max_seconds=T sets the run's total instead")
    parser.add_argument("--max-epochs", type=int, metavar="N", help="stop once the run has done N epochs in total")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--checkpoint-seconds", type=float, metavar="S",
                        help="also write a checkpoint after S seconds without one, so that a crash loses at most "
                        "that much (default: 120; the same as --train.checkpoint_seconds=S)")


def budget_overrides(args: argparse.Namespace, section: str, trained_seconds: float = 0.0) -> list[str]:
    """The budget flags that were given, as ``--SECTION.key=value`` overrides; ``trained_seconds`` is the
    training time a resumed run has behind it (``--max-seconds`` counts from there)."""
    out = []
    if args.max_seconds is not None:
        if not args.max_seconds >= 0:
            raise UsageError(f"--max-seconds must be >= 0, got {args.max_seconds}")
        out.append(f"--{section}.max_seconds={trained_seconds + args.max_seconds}")
    if args.max_epochs is not None:
        out.append(f"--{section}.max_epochs={args.max_epochs}")
    if args.checkpoint_seconds is not None:
        out.append(f"--{section}.checkpoint_seconds={args.checkpoint_seconds}")
    if args.no_progress:
        out.append(f"--{section}.progress=false")
    return out


def stored_progress(run_dir: Path) -> tuple[float, int, float | None]:
    """``(training seconds, step, the run's total max_seconds or None)`` from the checkpoint a resume starts from."""
    from ..train.checkpoint import load_checkpoint_state
    from ..train.loop import LAST_CHECKPOINT

    extra = load_checkpoint_state(run_dir, name=LAST_CHECKPOINT)
    loop = extra.get("loop") if isinstance(extra.get("loop"), dict) else {}
    config = extra.get("task", {}).get("config", {}) if isinstance(extra.get("task"), dict) else {}
    section = config.get("train", config.get("loop", {})) if isinstance(config, dict) else {}
    limit = section.get("max_seconds") if isinstance(section, dict) else None
    return float(loop.get("train_seconds", 0.0)), int(loop.get("step", 0)), limit


def train_section(overrides: Sequence[str]) -> list[str]:
    """The ``--train.*`` (or ``--loop.*``) overrides among ``overrides``, as overrides of a LoopConfig."""
    out = []
    for item in overrides:
        for prefix in ("--train.", "--loop."):
            if item.startswith(prefix):
                out.append("--" + item[len(prefix):])
    return out


def resumed_budget(args: argparse.Namespace, run_dir: Path, overrides: Sequence[str],
                   read: Callable[[Path], tuple[float, int, float | None]] = stored_progress) -> tuple[list[str], str]:
    """What every trainer does on ``--resume``: ``(the budget overrides, the first line to print)``, with
    ``--max-seconds S`` counted from the training time stored in the run's last checkpoint (``read`` reads it; a
    torchrun job passes one that reads on rank 0) and the run's total as ``overrides`` leave it."""
    from ..train.config import merge_from_args
    from ..train.loop import LoopConfig

    trained, step, limit = read(run_dir)
    budget = budget_overrides(args, "train", trained)
    final = merge_from_args(LoopConfig(max_seconds=limit), train_section([*budget, *overrides]))
    return budget, budget_line(final.max_seconds, trained, step)


def budget_line(max_seconds: float | None, trained_seconds: float = 0.0, step: int | None = None) -> str:
    """The first line a trainer prints: how many seconds of training this command will do at most."""
    if step is None:
        start = "new run"
    else:
        start = f"resuming at step {step} after {trained_seconds:.1f} s of training"
    if max_seconds is None:
        return f"{start}: no time limit (--max-seconds S sets one)"
    left = max(0.0, max_seconds - trained_seconds)
    total = "" if step is None else f" (the run's limit: {max_seconds:.1f} s in total)"
    return f"{start}: will train for at most {left:.1f} seconds{total}"


def echo_after(first_line: str):
    """A trainer's ``echo`` that prints ``first_line`` before its first line: the budget line comes out once the
    run has passed its checks (bad input gives one error line and nothing on standard output)."""
    pending = [first_line]

    def echo(line: str) -> None:
        while pending:
            print(pending.pop(), flush=True)
        print(line, flush=True)

    return echo


def finish_training(result, command: str, run_dir: Path, unit: str, details: Sequence[str], done: str) -> int:
    """A trainer's closing lines and exit code: why and when it stopped (time, step, epoch, ``unit`` per second)
    followed by ``details``, then ``done`` (where the result is), or how to resume an interrupted run (exit code
    128 + the signal)."""
    state = result.state
    rate = state.tokens / state.train_seconds if state.train_seconds > 0 else 0.0
    print("; ".join([f"stopped ({result.stop_reason}) after {state.train_seconds:.0f} s of training, step "
                     f"{state.step}, epoch {state.epoch}, {rate:.0f} {unit}/s", *details]))
    if result.interrupted:
        print(f"interrupted: resume with  lstmkit {command} --resume {run_dir}")
        return 128 + int(result.signal)
    print(done)
    return 0
