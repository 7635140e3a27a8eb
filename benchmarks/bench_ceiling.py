"""How fast could ANY implementation of an LSTM training step be on this machine? A GEMM floor, measured.

A training step of an LSTM layer is a fixed list of matrix products (listed by :func:`training_gemms`): the input
projection of all steps, one recurrent product per step, the same again transposed in the backward, and the weight
gradients. Whatever else an implementation does (activations, the cell update, memory traffic, Python), it cannot
do those products faster than the fastest GEMM this machine offers PyTorch code. This script times each product at
its exact shape with every GEMM we can reach (MKL through ``torch.mm`` in both operand layouts, and oneDNN with a
prepacked weight through the private ``torch.ops.mkldnn._linear_pointwise``), keeps the fastest, and adds them up:
the **GEMM floor** of the step. The floor is generous to us: operands stay warm in cache between repeats, no
transposed copies are charged, and everything that is not a GEMM costs nothing.

In the same process it times the peers the issues' figures compare against (torch.nn.LSTM, the Python loop over
nn.LSTMCell, the Python loop over a hand-made variant cell from ``variant_loops.py``) and lstmkit itself, and
prints, per cell, the largest speed-up any implementation could reach over each peer (peer time / floor) beside
the one lstmkit reaches. Where the largest possible speed-up is below an issue's target, no implementation built
on this machine's GEMMs can meet that target in that cell. It also runs the floor's products in a step's order as
one more peer, sampled in turn with the others ("GEMM step sampled"): a step that does nothing but those products,
timed the way the peers are (each sample after another peer's, not on warm repeats), and lstmkit's time over it.

    python benchmarks/bench_ceiling.py                       # H >= 512 cells of the core grid, L = 1, and proj_size
    python benchmarks/bench_ceiling.py --cases "T=35 B=16"   # a subset
    python benchmarks/bench_ceiling.py --gemms-only          # just the GEMM tables, no peers timed
    python benchmarks/bench_ceiling.py --json c.json --plot c.png   # also a picture; --replot c.json redraws it

Letters: T time steps, B batch, I input size (= H here), H hidden, P projected size (H without projection).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_lstm import Case, build, measure, step_fn  # noqa: E402  (also puts src/ on sys.path)
from lstmkit.ops import cpp_extension_stale, fused_backend  # noqa: E402
from lstmkit.runtime import keep_freed_memory  # noqa: E402
from variant_loops import LSTMKIT_OPTIONS  # noqa: E402


@dataclass(frozen=True)
class Gemm:
    """``count`` products of an (M, K) by a (K, N) matrix, named by what they compute."""

    name: str
    M: int
    K: int
    N: int
    count: int

    @property
    def flops(self) -> int:
        return 2 * self.M * self.K * self.N * self.count


def training_gemms(T: int, B: int, I: int, H: int, P: int = 0, input_grad: bool = True) -> list[Gemm]:
    """The matrix products of one forward + backward of one LSTM layer over a padded (T, B, I) input.

    ``P`` is proj_size (0: none, h has H columns). ``input_grad=False`` leaves out the gradient of the input, as
    for a first layer whose input does not require grad (the benchmarks' case).
    """
    N, G = T * B, 4 * H  # rows over all steps, gate columns
    Ph = P or H  # columns of the h fed back
    gemms = [
        Gemm("input projection  x W_ih^T", N, I, G, 1),
        Gemm("recurrent  h R^T (per step)", B, Ph, G, T),
        Gemm("recurrent grad  dz R (per step)", B, G, Ph, T),
        Gemm("weight grad  dz^T x", G, N, I, 1),
        Gemm("weight grad  dz^T h", G, N, Ph, 1),
    ]
    if input_grad:
        gemms.append(Gemm("input grad  dz W_ih", N, G, I, 1))
    if P:
        gemms += [
            Gemm("projection  h W_hr^T (per step)", B, H, P, T),
            Gemm("projection grad  dh W_hr (per step)", B, P, H, T),
            Gemm("weight grad  dh^T h_raw", P, N, H, 1),
        ]
    return gemms


def _gemm_candidates(M: int, K: int, N: int) -> dict[str, Callable[[], object]]:
    """One (M, K) x (K, N) float32 product on fresh operands, by each GEMM reachable from PyTorch here."""
    g = torch.Generator().manual_seed(0)
    a = torch.randn(M, K, generator=g)
    b = torch.randn(K, N, generator=g)
    bt = b.t().contiguous()  # (N, K): the "weight" layout of linear
    candidates: dict[str, Callable[[], object]] = {
        "mkl mm(a, b)": lambda: torch.mm(a, b),
        "mkl mm(a, w.T)": lambda: torch.mm(a, bt.t()),
    }
    if torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise"):
        packed = torch.ops.mkldnn._reorder_linear_weight(bt, M)
        candidates["onednn prepacked"] = lambda: torch.ops.mkldnn._linear_pointwise(a, packed, None, "none", [], "")
    return candidates


def _best_gemm_seconds(M: int, K: int, N: int, repeats: int) -> tuple[float, str]:
    """The fastest time of one (M, K) x (K, N) float32 product over the GEMMs reachable from PyTorch here."""
    candidates = _gemm_candidates(M, K, N)
    # enough calls per sample that tiny products are not timer noise
    calls = max(1, min(200, int(2e8 // max(1, 2 * M * K * N))))
    best: tuple[float, str] = (float("inf"), "")
    for name, fn in candidates.items():
        for _ in range(2):
            fn()
        samples = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            for _ in range(calls):
                fn()
            samples.append((time.perf_counter() - t0) / calls)
        best = min(best, (statistics.median(samples), name))
    return best


def gemm_floor(gemms: list[Gemm], repeats: int = 5, cache: dict | None = None) -> tuple[float, list[dict]]:
    """Seconds of the fastest possible run of these products, and one row per product."""
    cache = {} if cache is None else cache
    rows, total = [], 0.0
    for gemm in gemms:
        key = (gemm.M, gemm.K, gemm.N)
        if key not in cache:
            cache[key] = _best_gemm_seconds(*key, repeats)
        seconds, how = cache[key]
        total += seconds * gemm.count
        rows.append(dict(name=gemm.name, M=gemm.M, K=gemm.K, N=gemm.N, count=gemm.count, gflop=gemm.flops / 1e9,
                         ms=seconds * gemm.count * 1e3, gflops_per_s=gemm.flops / (seconds * gemm.count) / 1e9, best=how))
    return total, rows


def gemm_step_fn(gemms: list[Gemm], cache: dict) -> Callable[[], None]:
    """The floor's products as one step: each product in the step's order, ``count`` times, by the GEMM the floor
    found fastest for its shape (``gemm_floor`` filled ``cache``). Sampled in turn with the peers, it pays what they
    pay for being sampled after one another (caches, threads woken up), which the floor's repeats of one product on
    warm operands never do; still no pointwise work at all."""
    calls = [(_gemm_candidates(g.M, g.K, g.N)[cache[(g.M, g.K, g.N)][1]], g.count) for g in gemms]

    def run() -> None:
        for fn, count in calls:
            for _ in range(count):
                fn()

    return run


def cells(quick: bool) -> list[Case]:
    if quick:
        return [Case(35, 16, 512), Case(35, 64, 512, proj=256)]
    plain = [Case(T, B, H) for T in (35, 200) for B in (16, 64) for H in (512, 1024)]
    return plain + [Case(35, 64, 512, proj=256)]


def floor_cell(case: Case, repeats: int, cache: dict) -> dict:
    """The GEMM floor of one cell's training step (first layer: no input gradient), with its product rows."""
    gemms = training_gemms(case.T, case.B, case.H, case.H, case.proj, input_grad=False)
    floor, rows = gemm_floor(gemms, repeats, cache)
    return dict(name=case.name(), floor_ms=floor * 1e3, gflop=sum(g.flops for g in gemms) / 1e9, gemms=rows)


def run_cell(case: Case, options: list[str], repeats: int, budget: float, cache: dict) -> dict:
    cell = floor_cell(case, 5, cache)
    fns: dict[str, Callable[[], None]] = {}
    # the floor's products run as a step, sampled in turn with the peers (see gemm_step_fn)
    fns["gemm-step"] = gemm_step_fn(training_gemms(case.T, case.B, case.H, case.H, case.proj, input_grad=False), cache)
    if case.proj:
        for peer in ("torch", "auto", "fused"):
            module, make = build(peer, case)
            fns[peer] = step_fn(module, make, "training")
    else:
        for peer in ("torch", "fused", "fused-python", "cell-loop"):
            module, make = build(peer, case)
            fns[peer] = step_fn(module, make, "training")
        for option in options:
            variant = Case(case.T, case.B, case.H, option=option)
            for peer in ("lstmkit", "user-loop"):
                module, make = build(peer, variant)
                fns[f"{peer}:{option}"] = step_fn(module, make, "training")
    times = measure(fns, repeats, 1, budget)
    cell["ms"] = {k: v * 1e3 for k, v in times.items()}
    return cell


def comparisons(cell: dict) -> list[tuple[str, float, float, float, float | None]]:
    """(peer, peer ms, largest possible speed-up over the peer, lstmkit's speed-up, the issue's target or None)
    per comparison. Targets: issue 2 wants ``auto`` >= 1.5x faster than torch.nn.LSTM with proj_size and ``fused``
    >= 2.5x faster than the nn.LSTMCell loop at H >= 512; issue 3 wants each option >= 3x faster than its loop."""
    ms, floor = cell["ms"], cell["floor_ms"]
    if "auto" in ms:
        return [("torch.nn.LSTM", ms["torch"], ms["torch"] / floor, ms["torch"] / ms["auto"], 1.5)]
    out = [
        ("torch.nn.LSTM", ms["torch"], ms["torch"] / floor, ms["torch"] / ms["fused"], None),
        ("nn.LSTMCell loop", ms["cell-loop"], ms["cell-loop"] / floor, ms["cell-loop"] / ms["fused"], 2.5),
    ]
    for key in ms:
        if key.startswith("user-loop:"):
            option = key.split(":", 1)[1]
            out.append((f"{option} loop", ms[key], ms[key] / floor, ms[key] / ms[f"lstmkit:{option}"], 3.0))
    return out


def print_gemms(cell: dict) -> None:
    print(f"GEMMs of one training step, {cell['name']} (first layer: no input gradient)")
    print(f"  {'product':<38} {'M x K x N':>20} {'count':>6} {'GFLOP':>7} {'ms':>8} {'GFLOP/s':>8}  fastest")
    for g in cell["gemms"]:
        shape = f"{g['M']}x{g['K']}x{g['N']}"
        print(f"  {g['name']:<38} {shape:>20} {g['count']:>6} {g['gflop']:>7.2f} {g['ms']:>8.2f} "
              f"{g['gflops_per_s']:>8.0f}  {g['best']}")
    print(f"  {'floor':<38} {'':>20} {'':>6} {cell['gflop']:>7.2f} {cell['floor_ms']:>8.2f} "
          f"{cell['gflop'] / cell['floor_ms'] * 1e3:>8.0f}")


def plot_cells(cells: list[dict], path: Path) -> Path:
    """One PNG: every peer's time and lstmkit's in units of the cell's GEMM floor, with the time lstmkit would need
    for each issue target (peer time / target). A needed time below 1 (the floor) is out of reach."""
    from matplotlib.figure import Figure

    plain = [c for c in cells if "auto" not in c["ms"]]
    options = sorted({k.split(":", 1)[1] for c in plain for k in c["ms"] if k.startswith("lstmkit:")})
    panels = 2 if options else 1
    fig = Figure(figsize=(12, 4.2 * panels), layout="constrained")
    axes = fig.subplots(panels, 1, squeeze=False)[:, 0]
    labels = [c["name"].replace(" L=1", "").replace(" ", "\n") for c in plain]
    x = range(len(plain))

    ax = axes[0]
    width = 0.26
    for k, (peer, name) in enumerate((("torch", "torch.nn.LSTM"), ("fused", "lstmkit fused"), ("cell-loop", "nn.LSTMCell loop"))):
        ax.bar([i + (k - 1) * width for i in x], [c["ms"][peer] / c["floor_ms"] for c in plain], width, label=name)
    needed = [c["ms"]["cell-loop"] / 2.5 / c["floor_ms"] for c in plain]
    ax.scatter(x, needed, marker="_", s=900, linewidths=3, color="black", zorder=3,
               label="lstmkit time needed for 2.5x over the loop")
    ax.set_title("Issue 2: training step time / GEMM floor (no implementation gets below 1)")
    ax.legend(fontsize=8, ncols=2)

    if options:
        ax = axes[1]
        width = 0.8 / len(options)
        for k, option in enumerate(options):
            offset = (k - (len(options) - 1) / 2) * width
            ax.bar([i + offset for i in x], [c["ms"][f"lstmkit:{option}"] / c["floor_ms"] for c in plain],
                   width, label=f"lstmkit {option}")
            ax.scatter([i + offset for i in x], [c["ms"][f"user-loop:{option}"] / 3.0 / c["floor_ms"] for c in plain],
                       marker="_", s=120, linewidths=2, color="black", zorder=3)
        ax.scatter([], [], marker="_", s=120, linewidths=2, color="black", label="time needed for 3x over its loop")
        ax.set_title("Issue 3: each option's training step time / GEMM floor, and what 3x over its Python loop needs")
        ax.legend(fontsize=8, ncols=3)
    for a in axes:
        a.axhline(1.0, color="grey", linestyle="--", linewidth=1)
        a.set_xticks(list(x), labels)
        a.set_ylabel("time / GEMM floor")
        a.set_ylim(0, None)
    fig.savefig(path, dpi=90)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="two cells, one variant, few samples")
    parser.add_argument("--cases", default=None, help="only cells whose name contains one of these comma-separated "
                        "strings, e.g. 'T=35 B=16,proj'")
    parser.add_argument("--options", default=",".join(o for o in LSTMKIT_OPTIONS if o != "weight_dropout"),
                        help="variants whose Python loop to time (empty: none)")
    parser.add_argument("--repeats", type=int, default=None, help="samples per peer (default 5, quick 2)")
    parser.add_argument("--budget", type=float, default=None, help="seconds per cell before sampling stops early")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--malloc", choices=("default", "keep"), default="default",
                        help="keep: lstmkit.runtime.keep_freed_memory() first, for every peer alike")
    parser.add_argument("--gemms-only", action="store_true", help="print the GEMM table of each cell, time no peers")
    parser.add_argument("--json", type=Path, help="write every measurement to this file")
    parser.add_argument("--plot", type=Path, metavar="PNG", help="draw the cells' times against their floors here")
    parser.add_argument("--replot", type=Path, metavar="JSON", help="measure nothing: draw --plot from the JSON "
                        "of an earlier run")
    args = parser.parse_args(argv)
    if args.replot:
        if not args.plot:
            parser.error("--replot needs --plot PNG")
        cells_done = [c for c in json.loads(args.replot.read_text())["cells"] if "ms" in c]
        if not cells_done:
            parser.error(f"--replot: {args.replot} holds no timed cells (a --gemms-only run?)")
        print(f"wrote {plot_cells(cells_done, args.plot)}")
        return 0
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.malloc == "keep" and not keep_freed_memory():
        print("--malloc keep: not glibc, nothing changed", file=sys.stderr)
    repeats = args.repeats or (2 if args.quick else 5)
    budget = args.budget or (2.0 if args.quick else 30.0)
    options = [o for o in args.options.split(",") if o]
    if args.quick:
        options = options[:1]
    unknown = [o for o in options if o not in LSTMKIT_OPTIONS]
    if unknown:
        parser.error(f"--options: unknown {unknown}; choose from {list(LSTMKIT_OPTIONS)}")
    chosen = cells(args.quick)
    if args.cases:
        wanted = args.cases.split(",")
        chosen = [c for c in chosen if any(w in c.name() + " " for w in wanted)]
    if not chosen:
        parser.error("--cases matched no cell")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.machine()}, python "
          f"{platform.python_version()}; malloc {args.malloc}; medians of up to {repeats} interleaved samples")
    if stale := cpp_extension_stale():
        print(f"warning: {stale}; these figures time the old kernel", file=sys.stderr)
    cache: dict = {}
    results = []
    started = time.perf_counter()
    if args.gemms_only:
        for case in chosen:
            cell = floor_cell(case, repeats, cache)
            print_gemms(cell)
            results.append(cell)
    else:
        print("possible = peer time / GEMM floor: the largest speed-up over the peer that any implementation could "
              "reach here;\nreached = peer time / lstmkit's time")
        print(f"{'cell':<28} {'floor ms':>9} {'peer':<24} {'peer ms':>9} {'possible':>9} {'reached':>8} {'target':>7}")
        for case in chosen:
            cell = run_cell(case, options, repeats, budget, cache)
            results.append(cell)
            for peer, peer_ms, possible, reached, target in comparisons(cell):
                goal = f"{target:.1f}x" if target else "-"
                print(f"{cell['name']:<28} {cell['floor_ms']:>9.1f} {peer:<24} {peer_ms:>9.1f} {possible:>8.2f}x "
                      f"{reached:>7.2f}x {goal:>7}", flush=True)
            for peer in ("fused", "fused-python"):  # issue 11: the fused step <= 1.15x the floor at H >= 512
                if peer in cell["ms"]:
                    label = f"lstmkit {peer} ({fused_backend() if peer == 'fused' else 'python'}) / floor"
                    print(f"{cell['name']:<28} {cell['floor_ms']:>9.1f} {label:<24} {cell['ms'][peer]:>9.1f} "
                          f"{cell['ms'][peer] / cell['floor_ms']:>8.2f}x {'':>8} {'1.15x' if peer == 'fused' else '-':>7}",
                          flush=True)
            # the floor's products as a step sampled with the peers: its ratio to the floor is what being sampled
            # in turn costs a step that does nothing but those products, and fused / it compares like with like
            step = cell["ms"]["gemm-step"]
            fused_ms = cell["ms"].get("fused", cell["ms"].get("auto"))
            print(f"{cell['name']:<28} {cell['floor_ms']:>9.1f} {'GEMM step sampled / floor':<24} {step:>9.1f} "
                  f"{step / cell['floor_ms']:>8.2f}x {'':>8} {'-':>7}")
            print(f"{cell['name']:<28} {step:>9.1f} {'lstmkit / GEMM step':<24} {fused_ms:>9.1f} "
                  f"{fused_ms / step:>8.2f}x {'':>8} {'-':>7}", flush=True)
    print(f"total {time.perf_counter() - started:.0f} s")
    if args.json:
        args.json.write_text(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads(),
                                         "cells": results}, indent=1))
    if args.plot and not args.gemms_only:
        print(f"wrote {plot_cells(results, args.plot)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
