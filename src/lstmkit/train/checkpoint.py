"""Atomic file writes and crash-safe checkpoints, without pickle.

A checkpoint is a directory ``RUN_DIR/<name>/`` (``name`` is ``"checkpoint"`` by default; use e.g. ``"best"``
for a second one) holding::

    model.safetensors      the model's state_dict
    optimizer.safetensors  the optimizer state's tensors (momentum buffers, Adam moments and steps, averages)
    optimizer.json         the rest of the optimizer state_dict (param_groups, ...), tensors replaced by keys
    rng.safetensors        torch CPU / CUDA / explicit torch.Generator states
    rng.json               Python and NumPy generator states, plus keys into rng.safetensors
    state.json             ``extra``: step, epoch, best score, config, vocabulary, ... (whatever the loop needs)
    manifest.json          size and SHA-256 of every file above; written last

Versions and the pointer. Every save writes a new, immutable folder ``RUN_DIR/<name>.<version>`` (``checkpoint.000012``)
and then points ``RUN_DIR/<name>`` at it; the pointer is a relative symbolic link replaced with one atomic rename:

1. Every file is written and fsync'ed into a fresh directory ``RUN_DIR/.<name>.tmp-<random>``, the manifest last;
   that directory is fsync'ed and renamed to ``<name>.<version>`` (the next number), and the run directory fsync'ed.
2. A new link to it is made beside the pointer and renamed over ``<name>``; the run directory is fsync'ed.
3. Versions beyond the newest :data:`KEEP_VERSIONS` are deleted (never the one the pointer names).

A crash at any point leaves the pointer naming a complete version (a half-written temporary folder or an unnamed
new version is removed by the next save). A reader resolves the pointer once and reads every file from that one
folder, so it never mixes two checkpoints; should the writer delete that version while the reader is still
opening its files, the reader starts again from the pointer (:func:`load_checkpoint`). Saves to one run directory
must come from one process at a time: the training loop holds the run directory's lock
(:mod:`lstmkit.train.rundir`) while it saves. Symbolic links make this POSIX-only.

Run directories written before versions existed hold ``<name>/`` as a plain folder (and, after a crash between the
two renames of that scheme, ``.<name>.old/``); they load as they are, and the first save into one turns the folder
into version ``<name>.000000`` behind a pointer.

Loading checks the manifest, then every file's size and hash, and raises :class:`CheckpointError` with a one-line
message naming the file that is missing or damaged. Nothing is unpickled: tensors come from safetensors and
everything else from JSON.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import re
import shutil
import tempfile
import time
import uuid
from pathlib import Path
from typing import IO, Any, Iterator, Mapping

import torch
from safetensors.torch import load as load_safetensors_bytes
from safetensors.torch import save as save_safetensors_bytes

from ._tree import join_tensors, split_tensors
from .config import config_to_dict
from .seeding import ExplicitGenerator, get_rng_state

FORMAT = "lstmkit-checkpoint"
FORMAT_VERSION = 1
MODEL_FILE = "model.safetensors"
OPTIMIZER_TENSORS_FILE = "optimizer.safetensors"
OPTIMIZER_JSON_FILE = "optimizer.json"
RNG_TENSORS_FILE = "rng.safetensors"
RNG_JSON_FILE = "rng.json"
STATE_FILE = "state.json"
MANIFEST_FILE = "manifest.json"
_REQUIRED_FILES = (MODEL_FILE, RNG_TENSORS_FILE, RNG_JSON_FILE, STATE_FILE)
_OPTIMIZER_FILES = (OPTIMIZER_TENSORS_FILE, OPTIMIZER_JSON_FILE)
KEEP_VERSIONS = 2
"""How many versions of each checkpoint a save keeps: the new one and the one before (for readers in flight)."""


class CheckpointError(RuntimeError):
    """A checkpoint is missing, incomplete or damaged; the message names the file."""


# ------------------------------------------------------------------------------------------------ atomic writes


def _fsync_directory(directory: Path) -> None:
    """Make a rename inside ``directory`` durable (POSIX only; elsewhere a no-op)."""
    if os.name != "posix":
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_writer(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO]:
    """Open a temporary file beside ``path``; on a clean exit, fsync it and rename it over ``path``.

    If the block raises (or the rename fails) the temporary file is removed and ``path`` keeps its old
    content: readers see the old file or the new one, never a mix.

    Args:
        path: the file to (re)write.
        mode: ``"wb"`` for bytes or ``"w"`` for UTF-8 text.

    Example::

        >>> with atomic_writer(run_dir / "vocab.txt", "w") as f:  # doctest: +SKIP
        ...     f.write("\\n".join(words))
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_writer: mode must be 'wb' or 'w', got {mode!r}")
    path = Path(path)
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, mode, **({"encoding": "utf-8", "newline": "\n"} if mode == "w" else {})) as file:
            yield file
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    _fsync_directory(path.parent)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically (see :func:`atomic_writer`)."""
    with atomic_writer(path, "wb") as file:
        file.write(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Replace ``path`` with the UTF-8 ``text`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    """Replace ``path`` with ``obj`` as indented JSON atomically; dataclasses are written as dicts."""
    atomic_write_bytes(path, _json_bytes(obj, Path(path).name))


def atomic_save_safetensors(
    path: str | os.PathLike, tensors: Mapping[str, torch.Tensor], metadata: dict[str, str] | None = None
) -> None:
    """Replace ``path`` with ``tensors`` in safetensors format atomically (tensors are copied to the CPU)."""
    atomic_write_bytes(path, _safetensors_bytes(tensors, Path(path).name, metadata))


def _json_default(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return config_to_dict(value)
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise TypeError(f"values of type {type(value).__name__} are not JSON-serializable")


def _json_bytes(obj: Any, file_name: str) -> bytes:
    try:
        return (json.dumps(obj, indent=2, default=_json_default) + "\n").encode("utf-8")
    except (TypeError, ValueError) as error:
        raise TypeError(f"cannot write {file_name}: {error}") from None


def _safetensors_bytes(tensors: Mapping[str, Any], file_name: str, metadata: dict[str, str] | None = None) -> bytes:
    copies = {}
    for key, tensor in tensors.items():
        if not isinstance(tensor, torch.Tensor):
            raise TypeError(f"cannot write {file_name}: {key!r} is a {type(tensor).__name__}, not a tensor")
        # A private CPU copy: tied weights share storage, which safetensors refuses.
        copies[key] = tensor.detach().to("cpu", copy=True).contiguous()
    return save_safetensors_bytes(copies, metadata)


# --------------------------------------------------------------------------------------------------- checkpoints


@dataclasses.dataclass(frozen=True)
class Checkpoint:
    """What :func:`load_checkpoint` read.

    Attributes:
        path: the checkpoint directory the files came from.
        model_state: for ``model.load_state_dict``.
        optimizer_state: for ``optimizer.load_state_dict``; ``None`` when no optimizer was saved.
        rng_state: for :func:`lstmkit.train.set_rng_state`.
        extra: the ``extra`` dict given to :func:`save_checkpoint` (as JSON gives it back: tuples are lists).
    """

    path: Path
    model_state: dict[str, torch.Tensor]
    optimizer_state: dict[str, Any] | None
    rng_state: dict[str, Any]
    extra: dict[str, Any]


def _check_name(name: str) -> None:
    if not name or name.startswith(".") or "/" in name or os.sep in name:
        raise ValueError(f"checkpoint name must be a plain directory name, got {name!r}")


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _write_synced(path: Path, data: bytes) -> None:
    with open(path, "xb") as file:
        file.write(data)
        file.flush()
        os.fsync(file.fileno())


def _versions(run_dir: Path, name: str) -> dict[int, Path]:
    """The version folders ``<name>.<digits>`` of ``run_dir``, by number."""
    pattern = re.compile(re.escape(name) + r"\.([0-9]{6,})")
    found = {}
    with contextlib.suppress(FileNotFoundError):
        for entry in os.scandir(run_dir):
            match = pattern.fullmatch(entry.name)
            if match and entry.is_dir(follow_symlinks=False):
                found[int(match.group(1))] = run_dir / entry.name
    return found


def _version_name(name: str, number: int) -> str:
    return f"{name}.{number:06d}"


def _point(run_dir: Path, name: str, version_name: str) -> None:
    """Atomically make ``RUN_DIR/<name>`` a relative link to ``version_name``."""
    link = run_dir / f".{name}.link-{uuid.uuid4().hex}"
    os.symlink(version_name, link)
    try:
        os.replace(link, run_dir / name)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(link)
        raise
    _fsync_directory(run_dir)


def _pointed_version(run_dir: Path, name: str) -> str | None:
    """The version folder name ``RUN_DIR/<name>`` links to, or ``None`` when it is not a link."""
    try:
        return os.readlink(run_dir / name)
    except (FileNotFoundError, OSError):
        return None


def _adopt_old_layout(run_dir: Path, name: str) -> None:
    """Turn a pre-version ``<name>/`` folder (or a ``.<name>.old/`` left by a crash of that scheme) into a version
    behind a pointer. The writer's lock is held, so nobody else renames here."""
    final, old = run_dir / name, run_dir / f".{name}.old"
    if final.is_dir() and not final.is_symlink():
        if old.is_dir():
            shutil.rmtree(old)  # that scheme's swap had finished; only the deletion was missed
        taken = _versions(run_dir, name)
        version_name = _version_name(name, min(taken) - 1 if taken and min(taken) > 0 else 0)
        os.replace(final, run_dir / version_name)
        _point(run_dir, name, version_name)
    elif not final.exists() and not final.is_symlink() and old.is_dir():
        os.replace(old, run_dir / _version_name(name, 0))
        _point(run_dir, name, _version_name(name, 0))


def _remove_strays(run_dir: Path, name: str) -> None:
    """Temporary folders and links left by a save that died (only the lock holder saves, so none is in use)."""
    for pattern in (f".{name}.tmp-*", f".{name}.link-*"):
        for stray in run_dir.glob(pattern):
            if stray.is_dir() and not stray.is_symlink():
                shutil.rmtree(stray, ignore_errors=True)
            else:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(stray)


def _prune(run_dir: Path, name: str, keep: int) -> None:
    """Delete every version but the one the pointer names and the ``keep - 1`` newest before it."""
    current = _pointed_version(run_dir, name)
    versions = _versions(run_dir, name)
    current_number = next((number for number, path in versions.items() if path.name == current), None)
    if current_number is None:
        return
    older = sorted((number for number in versions if number < current_number), reverse=True)
    kept = {current_number, *older[: max(0, keep - 1)]}
    for number, path in versions.items():
        if number not in kept:
            shutil.rmtree(path, ignore_errors=True)


def save_checkpoint(
    run_dir: str | os.PathLike,
    model_state: Mapping[str, torch.Tensor],
    optimizer: Any = None,
    extra: Mapping[str, Any] | None = None,
    *,
    generators: Mapping[str, ExplicitGenerator] | None = None,
    name: str = "checkpoint",
) -> Path:
    """Write everything needed to resume a run exactly as a new version of ``RUN_DIR/<name>``, crash-safely.

    The RNG states are captured here (Python, NumPy, torch CPU and CUDA, and ``generators``), so call this at
    the point the run will resume from. The scheme and file layout are described in the module docstring.

    Args:
        run_dir: the run directory (created if needed).
        model_state: the model's ``state_dict()``; tensors sharing storage (tied weights) are fine.
        optimizer: an optimizer (anything with ``state_dict()``) or an optimizer state dict; ``None`` for none.
        extra: JSON-able run state: step, epoch, best score, config (dataclasses are converted), vocabulary...
        generators: explicit random generators of the run, by name.
        name: the checkpoint's name, e.g. ``"best"`` for a second checkpoint.

    Returns:
        The new version's folder (``RUN_DIR/<name>`` now points at it).

    Raises:
        TypeError: when ``model_state`` holds a non-tensor, or ``extra`` / the optimizer state holds a value
            that cannot be stored (the message names it). Nothing on disk changes in that case.
    """
    _check_name(name)
    run_dir = Path(run_dir)
    files: dict[str, bytes] = {MODEL_FILE: _safetensors_bytes(model_state, MODEL_FILE)}
    if optimizer is not None:
        optimizer_state = optimizer.state_dict() if hasattr(optimizer, "state_dict") else optimizer
        try:
            skeleton, tensors = split_tensors(dict(optimizer_state))
        except TypeError as error:
            raise TypeError(f"cannot write {OPTIMIZER_JSON_FILE}: {error}") from None
        files[OPTIMIZER_TENSORS_FILE] = _safetensors_bytes(tensors, OPTIMIZER_TENSORS_FILE)
        files[OPTIMIZER_JSON_FILE] = _json_bytes(skeleton, OPTIMIZER_JSON_FILE)
    skeleton, tensors = split_tensors(get_rng_state(generators))
    files[RNG_TENSORS_FILE] = _safetensors_bytes(tensors, RNG_TENSORS_FILE)
    files[RNG_JSON_FILE] = _json_bytes(skeleton, RNG_JSON_FILE)
    files[STATE_FILE] = _json_bytes(dict(extra or {}), STATE_FILE)
    manifest = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "files": {file: {"bytes": len(data), "sha256": _sha256(data)} for file, data in files.items()},
    }
    files[MANIFEST_FILE] = _json_bytes(manifest, MANIFEST_FILE)

    run_dir.mkdir(parents=True, exist_ok=True)
    _adopt_old_layout(run_dir, name)
    _remove_strays(run_dir, name)
    taken = _versions(run_dir, name)
    version = run_dir / _version_name(name, max(taken, default=0) + 1)
    fresh = Path(tempfile.mkdtemp(prefix=f".{name}.tmp-", dir=run_dir))
    try:
        for file, data in files.items():  # the manifest comes last
            _write_synced(fresh / file, data)
        _fsync_directory(fresh)
        os.rename(fresh, version)
    except BaseException:
        shutil.rmtree(fresh, ignore_errors=True)
        raise
    try:
        _fsync_directory(run_dir)
        _point(run_dir, name, version.name)
    except BaseException:
        if _pointed_version(run_dir, name) != version.name:
            shutil.rmtree(version, ignore_errors=True)
        raise
    _prune(run_dir, name, KEEP_VERSIONS)
    return version


def checkpoint_exists(run_dir: str | os.PathLike, name: str = "checkpoint") -> bool:
    """Whether ``RUN_DIR`` holds a checkpoint called ``name`` (complete or not: loading checks that)."""
    _check_name(name)
    run_dir = Path(run_dir)
    final = run_dir / name
    return final.is_symlink() or final.is_dir() or (run_dir / f".{name}.old").is_dir()


def _read_verified(directory: Path, file: str, expected: Mapping[str, Any]) -> bytes:
    path = directory / file
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise _Vanished(file) from None
    if len(data) != expected["bytes"]:
        state = "truncated" if len(data) < expected["bytes"] else "damaged"
        raise CheckpointError(
            f"checkpoint {directory}: {file} is {state} ({len(data)} bytes, expected {expected['bytes']})"
        )
    if _sha256(data) != expected["sha256"]:
        raise CheckpointError(f"checkpoint {directory}: {file} is damaged (SHA-256 does not match the manifest)")
    return data


def _parse_json(directory: Path, file: str, data: bytes) -> Any:
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CheckpointError(f"checkpoint {directory}: {file} is damaged: {error}") from None


def _parse_safetensors(
    directory: Path, file: str, data: bytes, device: str | torch.device
) -> dict[str, torch.Tensor]:
    try:
        tensors = load_safetensors_bytes(data)
    except Exception as error:  # safetensors raises its own error types
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise CheckpointError(f"checkpoint {directory}: {file} is damaged: {message}") from None
    return {key: tensor.to(device) for key, tensor in tensors.items()}


def _parse_tree(
    directory: Path, json_file: str, tensors_file: str, data: Mapping[str, bytes], device: str | torch.device
) -> Any:
    """Rebuild a nested state stored as a JSON skeleton plus a safetensors file of its tensors."""
    tensors = _parse_safetensors(directory, tensors_file, data[tensors_file], device)
    skeleton = _parse_json(directory, json_file, data[json_file])
    try:
        return join_tensors(skeleton, tensors)
    except KeyError as error:
        raise CheckpointError(f"checkpoint {directory}: {tensors_file} lacks tensor {error.args[0]!r}") from None


def _read_manifest(directory: Path) -> dict[str, Any]:
    """The manifest's ``files`` table: file name -> ``{"bytes": int, "sha256": str}``."""
    path = directory / MANIFEST_FILE
    try:
        raw = path.read_bytes()
    except (FileNotFoundError, NotADirectoryError):
        raise _Vanished(MANIFEST_FILE) from None
    except IsADirectoryError:
        raise CheckpointError(f"checkpoint {directory}: {MANIFEST_FILE} is a directory") from None
    manifest = _parse_json(directory, MANIFEST_FILE, raw)
    files = manifest.get("files") if isinstance(manifest, dict) else None
    well_formed = isinstance(files, dict) and all(
        isinstance(entry, dict) and isinstance(entry.get("bytes"), int) and isinstance(entry.get("sha256"), str)
        for entry in files.values()
    )
    if not well_formed or manifest.get("format") != FORMAT:
        raise CheckpointError(f"checkpoint {directory}: {MANIFEST_FILE} is damaged: not an {FORMAT} manifest")
    if manifest.get("version") != FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint {directory}: {MANIFEST_FILE} has format version {manifest.get('version')!r}; "
            f"this lstmkit reads version {FORMAT_VERSION}"
        )
    return files


def load_checkpoint(
    run_dir: str | os.PathLike, *, name: str = "checkpoint", map_location: str | torch.device = "cpu"
) -> Checkpoint:
    """Read and verify the checkpoint ``RUN_DIR/<name>/`` written by :func:`save_checkpoint`.

    Restore with::

        checkpoint = load_checkpoint(run_dir)
        model.load_state_dict(checkpoint.model_state)
        optimizer.load_state_dict(checkpoint.optimizer_state)
        set_rng_state(checkpoint.rng_state, generators={"shuffle": shuffle_generator})
        step = checkpoint.extra["step"]

    Args:
        run_dir: the run directory.
        name: which checkpoint. Default: ``"checkpoint"``
        map_location: device for the model and optimizer tensors (RNG states stay on the CPU).

    Raises:
        CheckpointError: a one-line message when there is no checkpoint, or a file is missing, truncated or
            damaged (naming the file).
    """
    return _load(Path(run_dir), name, map_location, state_only=False)


def load_checkpoint_state(run_dir: str | os.PathLike, *, name: str = "checkpoint") -> dict[str, Any]:
    """Only the ``extra`` dict (``state.json``) of the checkpoint ``RUN_DIR/<name>``, verified against its
    manifest: a cheap look at a run's step, training time and configuration without reading its tensors.

    Raises:
        CheckpointError: as :func:`load_checkpoint`.
    """
    return _load(Path(run_dir), name, "cpu", state_only=True)


def load_model_weights(model: torch.nn.Module, weights: dict[str, torch.Tensor], where: Path | str) -> None:
    """``model.load_state_dict(weights)`` with a one-line :class:`CheckpointError` on any mismatch."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(weights))
    unexpected = sorted(set(weights) - set(expected))
    if missing or unexpected:
        detail = f"missing {missing[:3]}" if missing else f"unexpected {unexpected[:3]}"
        raise CheckpointError(f"{where}: model weights do not fit the model ({detail})")
    for key, value in expected.items():
        if weights[key].shape != value.shape:
            raise CheckpointError(
                f"{where}: weight {key!r} has shape {tuple(weights[key].shape)}, the model expects {tuple(value.shape)}"
            )
    model.load_state_dict(weights)


def load_optimizer_state(optimizer: torch.optim.Optimizer, training: Any) -> None:
    """Restore ``optimizer`` from a checkpoint's training state (a dict with ``"optimizer"``), with a one-line
    :class:`CheckpointError` when there is none or it does not fit (another model or optimizer)."""
    if not isinstance(training, dict) or "optimizer" not in training:
        raise CheckpointError("checkpoint holds no optimizer state to resume training from")
    try:
        optimizer.load_state_dict(training["optimizer"])
    except (ValueError, KeyError, TypeError) as error:
        raise CheckpointError(f"checkpoint's optimizer state does not fit this run: {error}") from None


def _load(run_dir: Path, name: str, map_location: str | torch.device, state_only: bool) -> Any:
    _check_name(name)
    for attempt in range(_READ_ATTEMPTS):
        directory = _resolve(run_dir, name)
        if directory is None:
            if attempt + 1 < _READ_ATTEMPTS and _versions(run_dir, name):  # an old-layout folder is being adopted
                time.sleep(0.02)
                continue
            raise CheckpointError(f"no checkpoint in {run_dir}: {run_dir / name} does not exist")
        try:
            return _load_directory(directory, map_location, state_only)
        except _Vanished as vanished:
            if attempt + 1 == _READ_ATTEMPTS or _resolve(run_dir, name) == directory:
                raise CheckpointError(
                    f"checkpoint {directory} is incomplete: {vanished.args[0]} is missing"
                ) from None
            # the writer saved a newer version and deleted this one while we read it: read the newer one
    raise AssertionError("unreachable")


_READ_ATTEMPTS = 20


class _Vanished(Exception):
    """A file of the version being read does not exist (deleted by the writer, or never written)."""


def _resolve(run_dir: Path, name: str) -> Path | None:
    """The folder ``RUN_DIR/<name>`` stands for now: the version its link names, a pre-version folder, or the
    ``.<name>.old`` folder that scheme leaves after a crash; ``None`` when there is none."""
    final = run_dir / name
    target = _pointed_version(run_dir, name)
    if target is not None:
        return run_dir / target
    if final.is_dir():
        return final
    old = run_dir / f".{name}.old"
    return old if old.is_dir() else None


def _load_directory(directory: Path, map_location: str | torch.device, state_only: bool = False) -> Any:
    listed = _read_manifest(directory)
    has_optimizer = any(file in listed for file in _OPTIMIZER_FILES)
    expected_files = _REQUIRED_FILES + (_OPTIMIZER_FILES if has_optimizer else ())
    for file in expected_files:
        if file not in listed:
            raise CheckpointError(f"checkpoint {directory}: {MANIFEST_FILE} is damaged: it does not list {file}")
    if state_only:
        extra = _parse_json(directory, STATE_FILE, _read_verified(directory, STATE_FILE, listed[STATE_FILE]))
        if not isinstance(extra, dict):
            raise CheckpointError(f"checkpoint {directory}: {STATE_FILE} is damaged: not a JSON object")
        return extra
    data = {file: _read_verified(directory, file, listed[file]) for file in expected_files}

    model_state = _parse_safetensors(directory, MODEL_FILE, data[MODEL_FILE], map_location)
    optimizer_state = None
    if has_optimizer:
        optimizer_state = _parse_tree(directory, OPTIMIZER_JSON_FILE, OPTIMIZER_TENSORS_FILE, data, map_location)
    rng_state = _parse_tree(directory, RNG_JSON_FILE, RNG_TENSORS_FILE, data, "cpu")
    extra = _parse_json(directory, STATE_FILE, data[STATE_FILE])
    if not isinstance(extra, dict):
        raise CheckpointError(f"checkpoint {directory}: {STATE_FILE} is damaged: not a JSON object")
    return Checkpoint(directory, model_state, optimizer_state, rng_state, extra)
