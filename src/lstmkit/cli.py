"""The ``lstmkit`` command: argument parsing and wiring only.

Each subcommand lives in the module that does its work; that module provides ``configure_parser(parser)`` and
``run(args) -> int``. Modules are imported only when their command runs, so ``lstmkit --help`` stays fast.
Errors the user can fix (:class:`UsageError` and the packages' own ``ValueError`` subclasses that say so) print
one line and exit with code 2.

Every command takes ``--threads N`` (or ``--threads=N``): torch's CPU threads, 0 or absent for torch's default
(:func:`lstmkit.runtime.set_thread_count`). Before any command module (and so torch) is imported, idle
Idle OpenMP threads spin only briefly before they sleep (:func:`lstmkit.runtime.prepare_openmp_environment`).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from .commands.errors import UsageError
from .runtime import malloc_setting_from_env, parse_thread_count, prepare_openmp_environment, set_thread_count

# command -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "train-lm": ("lstmkit.commands.train_lm", "train or resume an AWD-LSTM language model"),
    "eval-lm": ("lstmkit.commands.eval_lm", "loss and perplexity of a trained language model on a split"),
    "generate": ("lstmkit.commands.generate", "generate text with a trained language model"),
    "next-word": ("lstmkit.commands.next_word", "the most likely next words after a prompt"),
    "plot": ("lstmkit.commands.plot", "draw a run's training curves to a PNG"),
    "explain": ("lstmkit.commands.explain", "walk through a tiny LSTM step by step, or plot a trained model's gates"),
    "train-tagger": ("lstmkit.commands.train_tagger", "train or resume a BiLSTM part-of-speech tagger on CoNLL-U"),
    "eval-tagger": ("lstmkit.commands.eval_tagger", "accuracy, per-tag F1 and a confusion matrix of a trained tagger"),
    "tag": ("lstmkit.commands.tag", "tag plain text or CoNLL-U with a trained tagger"),
    "export": ("lstmkit.commands.export", "write a trained model as ONNX (onnxruntime) or a torch.export program"),
    "finetune-lm": ("lstmkit.commands.finetune_lm", "fine-tune a language model on a classification task's text"),
    "train-classifier": ("lstmkit.commands.train_classifier",
                         "train or resume a sentence classifier (SST-2, SST-5, MR) on a language model's encoder"),
    "eval-classifier": ("lstmkit.commands.eval_classifier",
                        "accuracy, per-class F1 and a confusion matrix of a trained classifier"),
    "classify": ("lstmkit.commands.classify", "classify text, one line at a time, with a trained classifier"),
}


def _user_errors() -> tuple[type[BaseException], ...]:
    """Exception types that mean bad input rather than a bug: reported in one line."""
    kinds: list[type[BaseException]] = [UsageError, FileNotFoundError]
    for module, name in (
        ("lstmkit.data", "DataError"),
        ("lstmkit.train", "ConfigError"),
        ("lstmkit.train", "CheckpointError"),
        ("lstmkit.train", "RunDirectoryError"),
        ("lstmkit.explain", "ExplainError"),
        ("lstmkit.export", "ExportError"),
    ):
        try:
            kinds.append(getattr(importlib.import_module(module), name))
        except (ImportError, AttributeError):
            pass
    return tuple(kinds)


def _distributed_error() -> type[BaseException]:
    if "lstmkit.train.distributed" not in sys.modules:  # only a training command can raise it
        return _NeverRaised
    return sys.modules["lstmkit.train.distributed"].DistributedError


class _NeverRaised(Exception):
    pass


class _CommandParser(argparse.ArgumentParser):
    """An argument parser whose errors are :class:`UsageError` (one line, exit code 2) instead of a usage dump."""

    def error(self, message: str):  # type: ignore[override]
        raise UsageError(f"{message} (see {self.prog} --help)")


def _threads_type(text: str) -> int:
    try:
        return parse_thread_count(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def add_threads_argument(parser: argparse.ArgumentParser) -> None:
    """The ``--threads`` option every command has (added by :func:`main`; a command module should not add its
    own, but one that does keeps it, and :func:`main` still applies the value)."""
    try:
        parser.add_argument("--threads", type=_threads_type, default=0, metavar="N",
                            help="torch CPU threads (default: 0, torch's choice: one per core; LSTMKIT_THREADS or "
                            "OMP_NUM_THREADS set it too). Idle threads sleep instead of spinning, so a busy "
                            "neighbour process does not stall them")
    except argparse.ArgumentError:  # the command declared --threads itself
        pass


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lstmkit", description="Readable, fast LSTMs for PyTorch.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        parser = build_parser()
        if argv and argv[0] not in ("-h", "--help"):
            parser.print_usage(sys.stderr)
            print(f"lstmkit: error: unknown command {argv[0]!r}; choose from {', '.join(COMMANDS)}", file=sys.stderr)
            return 2
        parser.print_help()
        return 0
    name, rest = argv[0], argv[1:]
    module_name, help_text = COMMANDS[name]
    prepare_openmp_environment()  # before the command module imports torch
    try:  # training and evaluation reuse freed memory instead of page-faulting it back in (lstmkit.runtime)
        malloc_setting_from_env()
    except ValueError as error:
        print(f"lstmkit {name}: error: {error}", file=sys.stderr)
        return 2
    try:
        module = importlib.import_module(module_name)
        parser = _CommandParser(prog=f"lstmkit {name}", description=help_text, allow_abbrev=False)
        module.configure_parser(parser)
        add_threads_argument(parser)
        if getattr(module, "ACCEPTS_OVERRIDES", False):  # unknown --section.key=value are config overrides
            args, overrides = parser.parse_known_args(rest)
            args.overrides = overrides
        else:
            args = parser.parse_args(rest)
        try:
            args.threads = set_thread_count(args.threads or 0)
        except ValueError as error:
            raise UsageError(str(error)) from None
        return int(module.run(args) or 0)
    except _user_errors() as error:
        message = " ".join(str(error).split()) or type(error).__name__
        print(f"lstmkit {name}: error: {message}", file=sys.stderr)
        return 2
    except OSError as error:  # the file system said no: permission denied, disk full, a file for a folder, ...
        if isinstance(error, BrokenPipeError):
            return _quiet_broken_pipe()
        print(f"lstmkit {name}: error: {describe_os_error(error)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"lstmkit {name}: interrupted", file=sys.stderr)
        return 130
    except _distributed_error() as error:  # another rank of a torchrun job died or hung: one line, exit 1
        print(f"lstmkit {name}: error: {error}", file=sys.stderr)
        return 1


def _quiet_broken_pipe() -> int:
    """Whoever read our output stopped reading (`lstmkit tag ... | head`): end quietly, as shell tools do;
    standard output goes to /dev/null so that the final flush at exit cannot fail again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    return 141


def describe_os_error(error: OSError) -> str:
    """One line for an OSError: the file(s) it names and the system's reason, e.g.
    ``runs/x/best: Permission denied``."""
    reason = error.strerror or str(error) or type(error).__name__
    names = [str(name) for name in (error.filename, error.filename2) if name is not None]
    text = f"{' -> '.join(names)}: {reason}" if names else reason
    return " ".join(text.split())


if __name__ == "__main__":
    sys.exit(main())
