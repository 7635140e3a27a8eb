"""Metrics as JSON Lines: one object per line in ``RUN_DIR/metrics.jsonl``.

The file is opened for appending, so a resumed run adds to what the interrupted one wrote, and every line is
flushed as it is written, so a crash loses at most the line being written. The next :class:`MetricsLogger`
starts on a fresh line after such a fragment, and :func:`read_metrics` skips it.

Records logged after the last checkpoint of an interrupted run are logged again by the resumed run; readers
that care keep the last record per (split, step).
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
