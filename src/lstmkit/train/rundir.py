"""One writer per run directory: an advisory lock that the kernel releases when its holder dies.

A training process holds ``RUN_DIR/.lock`` (``fcntl.flock``, exclusive) from before it reads or writes anything in
the run directory until it returns. A second writer (another ``train-lm``, ``--resume`` of the same run) is refused
at once with one line naming the holder's process id, which the holder writes into the lock file. Nothing has to
clean up after a crash: the kernel drops a flock when the last descriptor of it closes, SIGKILL included, and a
stale lock file without a lock on it means nothing.

Readers (``eval-lm``, ``generate``, ``tag``, ...) take no lock: checkpoints are immutable versioned folders behind an
atomically replaced pointer (:mod:`lstmkit.train.checkpoint`), so a reader never waits for a writer.

The lock is re-entrant within a process (the trainers take it before reading the checkpoint and :func:`fit` takes
it again): a flock belongs to an open file description, and a second ``open`` + ``flock`` of the same file in the
same process would refuse itself, so held locks are counted per resolved path. POSIX only (``fcntl``).
"""

from __future__ import annotations

import errno
import fcntl
import os
from pathlib import Path

__all__ = ["LOCK_FILE", "RunDirectoryError", "RunDirLock", "lock_run_dir", "lock_holder", "check_run_dir_path"]

LOCK_FILE = ".lock"
"""The lock file inside a run directory; it holds the writer's process id while one runs."""


class RunDirectoryError(ValueError):
    """The run directory cannot be used as asked (another writer holds it, it holds a run already, it is a file)."""


_held: dict[str, list] = {}  # resolved run directory -> [file descriptor, holders in this process, created it]


def check_run_dir_path(run_dir: str | os.PathLike) -> Path:
    """``run_dir`` as a Path; a :class:`RunDirectoryError` when it names something that is not a directory (or
    lies below a file)."""
    path = Path(run_dir)
    for candidate in (path, *path.parents):
        if candidate.exists():
            if not candidate.is_dir():
                what = "the run directory" if candidate == path else f"a parent of run directory {path}"
                raise RunDirectoryError(f"{candidate} is a file, not a directory ({what})")
            break
    return path


def lock_holder(run_dir: str | os.PathLike) -> int | None:
    """The process id written in ``RUN_DIR/.lock`` when another process holds the lock, else ``None``."""
    path = Path(run_dir) / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read_pid(fd)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 64, 0).decode("ascii", "replace").strip()
        return int(text) if text else None
    except (OSError, ValueError):
        return None


class RunDirLock:
    """Context manager holding the writer lock of ``run_dir`` (created if missing, and removed again on exit when
    nothing but the lock file was written into it).

    Raises on entry:
        RunDirectoryError: another process holds the lock (the message names its pid), or ``run_dir`` is a file.
        OSError: the directory or the lock file cannot be created (permission denied, disk full, ...).
    """

    def __init__(self, run_dir: str | os.PathLike) -> None:
        self.run_dir = check_run_dir_path(run_dir)
        self._key: str | None = None

    def __enter__(self) -> "RunDirLock":
        created = not self.run_dir.exists()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        key = os.path.realpath(self.run_dir)
        entry = _held.get(key)
        if entry is not None:
            entry[1] += 1
            self._key = key
            return self
        fd = os.open(self.run_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            pid = _read_pid(fd)
            os.close(fd)
            if error.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
            holder = f"process {pid}" if pid is not None else "another process"
            raise RunDirectoryError(
                f"{self.run_dir} is in use: {holder} is training in it; wait for it to end or stop it "
                "(one writer per run directory)"
            ) from None
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        except BaseException:
            os.close(fd)
            raise
        _held[key] = [fd, 1, created]
        self._key = key
        return self

    def __exit__(self, *exc_info: object) -> None:
        key, self._key = self._key, None
        if key is None:
            return
        entry = _held[key]
        entry[1] -= 1
        if entry[1] == 0:
            del _held[key]
            try:
                os.ftruncate(entry[0], 0)
            except OSError:
                pass
            os.close(entry[0])  # releases the flock
            if entry[2]:  # made for a run that wrote nothing (bad settings, unreadable data): leave no trace
                try:
                    if os.listdir(self.run_dir) == [LOCK_FILE]:
                        os.unlink(self.run_dir / LOCK_FILE)
                        os.rmdir(self.run_dir)
                except OSError:
                    pass


def lock_run_dir(run_dir: str | os.PathLike) -> RunDirLock:
    """``with lock_run_dir(run_dir): ...`` holds the run directory's writer lock (see :class:`RunDirLock`)."""
    return RunDirLock(run_dir)
