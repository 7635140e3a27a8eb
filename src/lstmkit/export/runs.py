"""Exporting a trained run: the Python form of ``lstmkit export RUN --format onnx|pt2 --out FILE``.

The file is written to a temporary name beside ``out`` and renamed over it only when complete
(:func:`lstmkit.train.checkpoint.atomic_write_bytes`), so a failed export leaves nothing half-written.

What each file carries besides the network, so that it can be used without lstmkit's loaders:

- ONNX: the model's ``metadata_props`` (onnxruntime: ``session.get_modelmeta().custom_metadata_map``) hold
  ``lstmkit.kind`` (``"language_model"`` or ``"tagger"``) and the vocabularies as JSON lists, id order:
  ``lstmkit.vocab`` for a language model (with ``lstmkit.level``, ``lstmkit.tokenizer``), ``lstmkit.words``,
  ``lstmkit.chars``, ``lstmkit.tags`` and ``lstmkit.max_word_chars`` for a tagger;
- pt2: the same keys in the JSON extra file ``lstmkit.json`` of the ``torch.export.save`` archive.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import NamedTuple

from ..train.checkpoint import CheckpointError, atomic_write_bytes, checkpoint_exists, load_checkpoint
from ..train.loop import chosen_checkpoint
from .onnx_graph import ExportError

__all__ = ["FORMATS", "ExportedRun", "export_run"]

FORMATS = ("onnx", "pt2")


class ExportedRun(NamedTuple):
    """What :func:`export_run` wrote: the run's ``kind``, the ``format``, the ``path`` and its size in bytes."""

    kind: str
    format: str
    path: Path
    size: int


def _run_kind(run_dir: Path, checkpoint: str) -> str:
    if not run_dir.is_dir():
        raise CheckpointError(f"{run_dir}: no such run directory")
    name = chosen_checkpoint(run_dir, checkpoint)
    if not checkpoint_exists(run_dir, name):
        raise CheckpointError(f"{run_dir} is not a run directory (it has no {name}/ checkpoint)")
    info = load_checkpoint(run_dir, name=name).extra.get("task")
    kind = info.get("kind") if isinstance(info, dict) else None
    if kind not in ("language_model", "tagger"):
        raise CheckpointError(f"{run_dir}: its checkpoint holds neither a language model nor a tagger (kind {kind!r})")
    return kind


def _language_model(run_dir: Path, fmt: str, checkpoint: str) -> bytes:
    from ..lm.api import load_language_model

    lm = load_language_model(run_dir, checkpoint)
    metadata = {"lstmkit.kind": "language_model", "lstmkit.vocab": json.dumps(lm.vocab.itos, ensure_ascii=False),
                "lstmkit.level": lm.level, "lstmkit.tokenizer": lm.tokenizer}
    if fmt == "onnx":
        from .onnx_graph import language_model_model

        return language_model_model(lm.model, metadata).SerializeToString()
    from .pt2 import export_language_model, program_bytes

    return program_bytes(export_language_model(lm.model), metadata)


def _tagger(run_dir: Path, fmt: str, checkpoint: str) -> bytes:
    from ..tagger.api import load_tagger

    tagger = load_tagger(run_dir, checkpoint)
    vocabs = tagger.vocabs
    metadata = {
        "lstmkit.kind": "tagger",
        "lstmkit.tagset": vocabs.tagset,
        "lstmkit.words": json.dumps(vocabs.words.itos, ensure_ascii=False),
        "lstmkit.chars": json.dumps(vocabs.chars.itos, ensure_ascii=False),
        "lstmkit.tags": json.dumps(vocabs.tags.itos, ensure_ascii=False),
        "lstmkit.max_word_chars": str(tagger.config.model.max_word_chars),
    }
    if fmt == "onnx":
        from .onnx_graph import tagger_model

        return tagger_model(tagger.model, metadata).SerializeToString()
    from .pt2 import export_tagger, program_bytes

    return program_bytes(export_tagger(tagger.model), metadata)


def export_run(run_dir: str | os.PathLike, fmt: str, out: str | os.PathLike, checkpoint: str = "best") -> ExportedRun:
    """Export the model of a ``train-lm`` or ``train-tagger`` run.

    Args:
        run_dir: the run directory.
        fmt: ``"onnx"`` (run it with onnxruntime) or ``"pt2"`` (``torch.export.load`` it after ``import lstmkit``).
        out: the file to write (replaced atomically).
        checkpoint: ``"best"`` or ``"last"``.

    Raises:
        ExportError: an unknown format, a model option the format cannot express, or ``out`` an existing path
            that is not a regular file.
        CheckpointError: not a run directory, or a damaged checkpoint.
        OSError: ``out`` cannot be written (nothing is left behind).
    """
    if fmt not in FORMATS:
        raise ExportError(f"unknown export format {fmt!r}: choose {' or '.join(FORMATS)}")
    if checkpoint not in ("best", "last"):
        raise ValueError(f"checkpoint must be 'best' or 'last', got {checkpoint!r}")
    run_dir, out = Path(run_dir), Path(out)
    if out.exists() and not out.is_file() and not out.is_dir():  # a folder fails in the write, with its reason
        # the atomic write renames a finished file over the path, which would replace a device or a pipe itself
        raise ExportError(f"cannot write {out}: it exists and is not a regular file (a device, pipe or socket)")
    kind = _run_kind(run_dir, checkpoint)
    data = (_language_model if kind == "language_model" else _tagger)(run_dir, fmt, checkpoint)
    atomic_write_bytes(out, data)
    return ExportedRun(kind, fmt, out, len(data))
