"""Metrics as JSON Lines: one object per line in ``RUN_DIR/metrics.jsonl``.

The file is opened for appending, so a resumed run adds to what the interrupted one wrote, and every line is
flushed as it is written, so a crash loses at most the line being written. The next :class:`MetricsLogger`
starts on a fresh line after such a fragment, and :func:`read_metrics` skips it.

The training loop keeps the file consistent with the checkpoint: on resume it first drops the records logged
after the checkpoint it resumes from (:func:`truncate_metrics`; the resumed run logs those steps again), and a
new run never appends to a file left by a run that wrote no checkpoint (:func:`set_aside_metrics`).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

METRICS_FILE = "metrics.jsonl"


class MetricsLogger:
    """Append metric records to ``RUN_DIR/metrics.jsonl``.

    Args:
        run_dir: the run directory (created if needed).
        add_time: add a ``"time"`` field (seconds since the epoch) to every record. Default: ``True``

    Example::

        >>> with MetricsLogger(run_dir) as metrics:  # doctest: +SKIP
        ...     metrics.log(split="train", step=100, loss=5.2, ppl=181.3)
    """

    def __init__(self, run_dir: str | os.PathLike, add_time: bool = True) -> None:
        self.path = Path(run_dir) / METRICS_FILE
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.add_time = add_time
        needs_newline = self.path.exists() and self.path.stat().st_size > 0 and not _ends_with_newline(self.path)
        self._file = open(self.path, "a", encoding="utf-8", newline="\n")
        if needs_newline:  # the last run died mid-record; keep that fragment on its own line
            self._file.write("\n")
            self._file.flush()

    def log(self, record: dict[str, Any] | None = None, **fields: Any) -> None:
        """Append one record (``record`` and ``fields`` merged) as a line of JSON, then flush.

        Values must be JSON-serializable; NaN and infinities are written as ``NaN`` / ``Infinity``.
        """
        if self._file.closed:
            raise ValueError("MetricsLogger.log() called after close()")
        entry = {"time": time.time()} if self.add_time else {}
        entry.update(record or {})
        entry.update(fields)
        line = json.dumps(entry)  # raises TypeError before anything is written
        self._file.write(line + "\n")
        self._file.flush()

    def close(self) -> None:
        """Close the file; further :meth:`log` calls raise."""
        self._file.close()

    def __enter__(self) -> "MetricsLogger":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _ends_with_newline(path: Path) -> bool:
    with open(path, "rb") as file:
        file.seek(-1, os.SEEK_END)
        return file.read(1) == b"\n"


def truncate_metrics(run_dir: str | os.PathLike, last_step: int) -> int:
    """Drop the records of ``RUN_DIR/metrics.jsonl`` whose ``step`` is after ``last_step`` (and any line cut off
    by a crash), rewriting the file atomically; returns how many lines were dropped (0: the file is untouched)."""
    from .checkpoint import atomic_write_bytes

    path = Path(run_dir) / METRICS_FILE
    if not path.exists():
        return 0
    kept, dropped = [], 0
    with open(path, encoding="utf-8") as file:
        for line in file:
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                dropped += 1
                continue
            step = record.get("step") if isinstance(record, dict) else None
            if isinstance(step, (int, float)) and step > last_step:
                dropped += 1
                continue
            kept.append(line if line.endswith("\n") else line + "\n")
    if dropped:
        atomic_write_bytes(path, "".join(kept).encode("utf-8"))
    return dropped


def set_aside_metrics(run_dir: str | os.PathLike) -> Path | None:
    """Rename a ``RUN_DIR/metrics.jsonl`` that a new run finds (left by a run killed before its first
    checkpoint) to ``metrics.abandoned-N.jsonl``, so that the new run starts a file of its own; returns the
    new name, or ``None`` when there was no such file."""
    path = Path(run_dir) / METRICS_FILE
    if not path.exists():
        return None
    number = 1
    while (path.parent / f"metrics.abandoned-{number}.jsonl").exists():
        number += 1
    target = path.parent / f"metrics.abandoned-{number}.jsonl"
    os.replace(path, target)
    return target


def read_metrics(run_dir: str | os.PathLike, strict: bool = False) -> list[dict[str, Any]]:
    """All records of ``RUN_DIR/metrics.jsonl`` in order; ``[]`` when the file does not exist.

    Args:
        run_dir: the run directory.
        strict: raise on a line that is not valid JSON instead of skipping it. Such a line can only be a record
            cut off by a crash (the logger writes whole lines), so by default it is skipped.

    Raises:
        ValueError: with ``strict``, naming the first bad line's number.
    """
    path = Path(run_dir) / METRICS_FILE
    if not path.exists():
        return []
    records = []
    with open(path, encoding="utf-8") as file:
        for number, line in enumerate(file, start=1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                if strict:
                    message = f"{path}: line {number} is not valid JSON (a record cut off by a crash?)"
                    raise ValueError(message) from None
    return records
