"""``lstmkit export RUN_DIR --format onnx|pt2 --out FILE``: write a trained language model or tagger as an ONNX
model (for onnxruntime) or a torch.export program (:func:`lstmkit.export.export_run`)."""

from __future__ import annotations

import argparse

from .errors import UsageError


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a train-lm or train-tagger run directory")
    parser.add_argument("--format", required=True, choices=("onnx", "pt2"),
                        help="onnx: an ONNX model for onnxruntime; pt2: a torch.export program (torch.export.load)")
    parser.add_argument("--out", required=True, metavar="FILE", help="the file to write (replaced atomically)")
    parser.add_argument("--checkpoint", default="best", choices=("best", "last"), help="default: best")


def run(args: argparse.Namespace) -> int:
    from ..export import export_run

    try:
        result = export_run(args.run_dir, args.format, args.out, args.checkpoint)
    except (IsADirectoryError, PermissionError, FileNotFoundError, NotADirectoryError) as error:
        raise UsageError(f"cannot write {args.out}: {error.strerror or error}") from None
    kind = "language model" if result.kind == "language_model" else "tagger"
    print(f"wrote the {kind} of {args.run_dir} as {result.format} to {result.path} ({result.size:,} bytes)")
    return 0
