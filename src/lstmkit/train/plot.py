"""Training curves from ``RUN_DIR/metrics.jsonl`` (any task), drawn to a PNG with matplotlib's Agg backend."""

from __future__ import annotations

import math
import os
from pathlib import Path

from .checkpoint import atomic_writer
from .metrics import METRICS_FILE, read_metrics

__all__ = ["plot_metrics"]

# Metrics worth a panel of their own, in this order, when the records have them.
_PANELS = (("loss", "loss (nats / token)"), ("ppl", "perplexity"), ("bpc", "bits per character"),
           ("accuracy", "accuracy"))


def _last_per_step(records: list[dict], split: str) -> list[dict]:
    """One record per step (the last one written: a resumed run may repeat steps), sorted by step."""
    by_step = {}
    for record in records:
        if record.get("split") == split and isinstance(record.get("step"), (int, float)):
            by_step[record["step"]] = record
    return [by_step[step] for step in sorted(by_step)]


def plot_metrics(run_dir: str | os.PathLike, output: str | os.PathLike | None = None) -> Path:
    """Draw the training and validation curves of a run.

    One panel per metric among loss, perplexity, bits per character and accuracy that the records hold; the
    x axis is the training step. Perplexity panels use a log scale. Train perplexity is derived from the train loss.

    Args:
        run_dir: the run directory holding ``metrics.jsonl``.
        output: the PNG to write. Default: ``RUN_DIR/curves.png``

    Returns:
        The path written.

    Raises:
        FileNotFoundError: ``run_dir`` has no ``metrics.jsonl`` or it holds no records.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    run_dir = Path(run_dir)
    records = read_metrics(run_dir)
    if not records:
        raise FileNotFoundError(f"{run_dir / METRICS_FILE}: no metrics to plot")
    splits = {name: _last_per_step(records, name) for name in ("train", "valid")}
    for record in splits["train"]:
        if "loss" in record and "ppl" not in record:
            record["ppl"] = math.exp(min(record["loss"], 700.0))
    panels = [(key, label) for key, label in _PANELS if any(key in r for rows in splits.values() for r in rows)]
    if not panels:
        raise FileNotFoundError(f"{run_dir / METRICS_FILE}: no loss, perplexity or accuracy records to plot")
    figure, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.8), squeeze=False)
    for axis, (key, label) in zip(axes[0], panels):
        for split, style in (("train", "-"), ("valid", "o-")):
            points = [(r["step"], r[key]) for r in splits[split] if isinstance(r.get(key), (int, float))]
            if points:
                xs, ys = zip(*points)
                axis.plot(xs, ys, style, label=split, markersize=3)
        axis.set_xlabel("step")
        axis.set_ylabel(label)
        if key == "ppl":
            axis.set_yscale("log")
        axis.grid(True, alpha=0.3)
        axis.legend()
    figure.suptitle(run_dir.name)
    figure.tight_layout()
    path = Path(output) if output is not None else run_dir / "curves.png"
    try:
        with atomic_writer(path, "wb") as file:
            figure.savefig(file, format="png", dpi=100)
    finally:
        plt.close(figure)
    return path
