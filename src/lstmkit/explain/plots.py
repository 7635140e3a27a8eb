"""Pictures of a trace: gate and cell heatmaps over the words of a text, and how saturated the gates are.

Saturation follows Karpathy, Johnson and Fei-Fei (2015), "Visualizing and Understanding Recurrent Networks": a
sigmoid gate is *left-saturated* when its activation is below 0.1 (nearly closed) and *right-saturated* above 0.9
(nearly open). The fraction of time steps each unit spends in either state separates units that act as switches
(a forget gate right-saturated almost always keeps its cell for a long time) from units whose gates follow the
input smoothly. The tanh candidate ``g`` is not a gate and is left out.

Matplotlib is used through its object API (``matplotlib.figure.Figure``), so nothing here touches pyplot's global
state or the backend; every function writes one PNG and returns its path.

Letters: T time steps, B batch, H hidden units, P size of h, U units shown.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple, Sequence

import torch
from torch import Tensor

from .tracing import GateTrace

__all__ = ["GateSaturation", "SIGMOID_GATES", "plot_gate_heatmaps", "plot_saturation", "saturation"]

SIGMOID_GATES = ("i", "f", "o")
_DIRECTION_NAMES = ("forward", "backward")


class GateSaturation(NamedTuple):
    """Per-unit saturation of one gate (see :func:`saturation`)."""

    left: Tensor  # (H,) fraction of steps with the gate below `low`
    right: Tensor  # (H,) fraction of steps with the gate above `high`


def _as_nested(trace) -> list[list[GateTrace]]:
    if isinstance(trace, GateTrace):
        return [[trace]]
    if isinstance(trace, Sequence) and trace and all(
        isinstance(row, Sequence) and row and all(isinstance(t, GateTrace) for t in row) for row in trace
    ):
        return [list(row) for row in trace]
    raise TypeError(f"expected a GateTrace or the list of lists that trace() returns, got {type(trace).__name__}")


def saturation(trace: GateTrace, low: float = 0.1, high: float = 0.9, mask: Tensor | None = None) -> dict[str, GateSaturation]:
    """How often each unit's sigmoid gates are nearly closed or nearly open.

    Args:
        trace: one layer and direction, (T, B, H) or (T, H) tensors.
        low, high: thresholds; a value strictly below ``low`` counts as left-saturated, strictly above ``high`` as
            right-saturated. Defaults 0.1 and 0.9 as in Karpathy et al. (2015).
        mask: optional bool tensor of the gates' leading shape ((T, B) or (T,)): True for the steps that count.
            Pass one for traces of packed input, whose padding steps are zeros and would count as closed gates.

    Returns:
        ``{"i": GateSaturation, "f": ..., "o": ...}``; each ``left`` and ``right`` is (H,) in float64, the fraction
        of the counted steps (time and batch together) spent below ``low`` / above ``high``.
    """
    if not isinstance(trace, GateTrace):
        raise TypeError(f"saturation expects one GateTrace (traces[layer][direction]), got {type(trace).__name__}")
    if not 0.0 <= low < high <= 1.0:
        raise ValueError(f"need 0 <= low < high <= 1, got low={low}, high={high}")
    lead = tuple(trace.i.shape[:-1])
    if mask is not None:
        if tuple(mask.shape) != lead or mask.dtype != torch.bool:
            raise ValueError(f"mask must be a bool tensor of shape {lead}, got {mask.dtype} of shape {tuple(mask.shape)}")
        if not mask.any():
            raise ValueError("mask selects no steps")
    out = {}
    for gate in SIGMOID_GATES:
        values = getattr(trace, gate).detach()
        values = values[mask] if mask is not None else values.reshape(-1, values.shape[-1])  # (N, H)
        out[gate] = GateSaturation(
            left=(values < low).double().mean(0),  # (H,)
            right=(values > high).double().mean(0),  # (H,)
        )
    return out


def _label(layer: int, direction: int, directions: int) -> str:
    return f"layer {layer}" + (f" {_DIRECTION_NAMES[direction]}" if directions == 2 else "")


def plot_saturation(
    trace, path: str | os.PathLike, *, low: float = 0.1, high: float = 0.9, mask: Tensor | None = None
) -> Path:
    """Plot the saturation of the i, f and o gates of every layer and direction into a PNG.

    Top row, one panel per gate: each unit is a point at (fraction left-saturated, fraction right-saturated), as
    in Karpathy et al. (2015) figure 3; points near the diagonal edge are units that are nearly always saturated.
    Bottom row: a histogram over units of the fraction of time saturated either way, one outline per layer and
    direction.

    Args:
        trace: what :func:`lstmkit.explain.trace` returns, or one :class:`GateTrace`.
        path: the PNG to write. low, high, mask: as for :func:`saturation`.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    from matplotlib.figure import Figure

    nested = _as_nested(trace)
    figure = Figure(figsize=(12, 7.5), layout="constrained")
    axes = figure.subplots(2, len(SIGMOID_GATES), squeeze=False)
    bins = [k / 20 for k in range(21)]
    for layer, row in enumerate(nested):
        for direction, tr in enumerate(row):
            label = _label(layer, direction, len(row))
            fractions = saturation(tr, low, high, mask)
            for column, gate in enumerate(SIGMOID_GATES):
                left, right = fractions[gate].left.numpy(), fractions[gate].right.numpy()
                axes[0, column].scatter(left, right, s=12, alpha=0.7, label=label)
                axes[1, column].hist(left + right, bins=bins, histtype="step", linewidth=1.5, label=label)
    names = {"i": "input gate i", "f": "forget gate f", "o": "output gate o"}
    for column, gate in enumerate(SIGMOID_GATES):
        top, bottom = axes[0, column], axes[1, column]
        top.plot([0, 1], [1, 0], color="grey", linewidth=0.8, linestyle="--")
        top.set(xlim=(-0.02, 1.02), ylim=(-0.02, 1.02), title=names[gate],
                xlabel=f"fraction of time < {low:g} (closed)", ylabel=f"fraction of time > {high:g} (open)")
        bottom.set(xlim=(0, 1), xlabel="fraction of time saturated", ylabel="units")
    axes[0, -1].legend(fontsize="small", loc="upper right")
    figure.suptitle("Gate saturation per unit (Karpathy, Johnson and Fei-Fei 2015)")
    path = Path(path)
    figure.savefig(path, dpi=100)
    return path


def plot_gate_heatmaps(
    trace,
    tokens: Sequence[str],
    path: str | os.PathLike,
    layer: int = 0,
    direction: int = 0,
    units: Sequence[int] | None = None,
    *,
    sequence: int = 0,
) -> Path:
    """Heatmaps of one layer's gates, cell and output over the tokens of a text, into a PNG.

    One panel each for i, f, o (0 to 1), g (-1 to 1), c and h (colour scale symmetric around 0); rows are units,
    columns are the tokens in time order (for the backward direction too: column t is the state after reading
    token t from the right).

    Args:
        trace: what :func:`lstmkit.explain.trace` returns, or one :class:`GateTrace`.
        tokens: one label per time step (T of them).
        path: the PNG to write.
        layer, direction: which :class:`GateTrace` to show (direction 1 is the backward one).
        units: which hidden units to show (rows), e.g. ``range(20)``; all H by default. With a projection, h has P
            features and is shown whole.
        sequence: which sequence of a batched trace to show.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    from matplotlib.figure import Figure

    nested = _as_nested(trace)
    if not 0 <= layer < len(nested):
        raise ValueError(f"layer {layer} is out of range: the trace has {len(nested)} layer(s)")
    if not 0 <= direction < len(nested[layer]):
        raise ValueError(f"direction {direction} is out of range: the trace has {len(nested[layer])} direction(s)")
    tr = nested[layer][direction]
    if tr.i.dim() == 3:
        if not 0 <= sequence < tr.i.shape[1]:
            raise ValueError(f"sequence {sequence} is out of range: the trace has a batch of {tr.i.shape[1]}")
        tr = GateTrace(*(v[:, sequence] for v in tr))  # (T, .)
    steps, hidden = tr.i.shape
    tokens = [str(token) for token in tokens]
    if len(tokens) != steps:
        raise ValueError(f"got {len(tokens)} tokens for a trace of {steps} time steps")
    rows = list(range(hidden)) if units is None else [int(u) for u in units]
    if not rows or any(not 0 <= u < hidden for u in rows):
        raise ValueError(f"units must be a non-empty list of indices below {hidden}, got {rows}")
    h_rows = rows if tr.h.shape[-1] == hidden else list(range(tr.h.shape[-1]))

    panels = [
        ("i  input gate", tr.i[:, rows], "viridis", 0.0, 1.0, rows),
        ("f  forget gate", tr.f[:, rows], "viridis", 0.0, 1.0, rows),
        ("g  cell candidate", tr.g[:, rows], "RdBu_r", -1.0, 1.0, rows),
        ("o  output gate", tr.o[:, rows], "viridis", 0.0, 1.0, rows),
        ("c  cell state", tr.c[:, rows], "RdBu_r", None, None, rows),
        ("h  output" + (" (projected)" if tr.h.shape[-1] != hidden else ""), tr.h[:, h_rows], "RdBu_r", None, None, h_rows),
    ]
    panel_height = min(max(0.12 * len(rows) + 0.8, 1.4), 4.5)
    width = min(max(0.32 * steps + 2.5, 7.0), 60.0)
    figure = Figure(figsize=(width, panel_height * len(panels) + 0.8), layout="constrained")
    axes = figure.subplots(len(panels), 1, sharex=True, squeeze=False)[:, 0]
    tick_every = max(1, steps // 150)
    for ax, (title, values, cmap, vmin, vmax, labels) in zip(axes, panels):
        values = values.detach().double().t().numpy()  # (U, T): units down, time across
        if vmin is None:
            bound = max(float(abs(values).max()), 1e-6)
            vmin, vmax = -bound, bound
        image = ax.imshow(values, aspect="auto", interpolation="nearest", cmap=cmap, vmin=vmin, vmax=vmax)
        figure.colorbar(image, ax=ax, fraction=0.025, pad=0.01)
        ax.set_title(title, loc="left", fontsize="medium")
        ax.set_ylabel("unit")
        if len(labels) <= 16:
            ax.set_yticks(range(len(labels)), [str(u) for u in labels], fontsize="x-small")
    axes[-1].set_xticks(range(0, steps, tick_every), tokens[::tick_every], rotation=70, fontsize="small")
    where = _label(layer, direction, len(nested[layer]))
    figure.suptitle(f"Gates and states over the text: {where}")
    path = Path(path)
    figure.savefig(path, dpi=100)
    return path
