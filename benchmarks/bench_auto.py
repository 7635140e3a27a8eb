"""Where torch leaves oneDNN, which is faster: its per-step fallback loop or lstmkit's fused path? And does
``impl="auto"`` take the faster one?

torch.nn.LSTM runs PackedSequence input, ``proj_size > 0`` and float64 through a per-step loop in C++
(../shared/PERF_NOTES.md). lstmkit's fused path beats it when a step holds enough work; when it does not (small
hidden sizes without grad) torch's loop, with less overhead per step, is faster. (A PackedSequence whose sequences
all have one length, e.g. a single sequence, torch runs on oneDNN like padded input; auto keeps it there.)
:func:`lstmkit.ops.functional._fallback_beats_fused` encodes the measured boundary; this script measures it again.

For every kind, hidden size H (= input size), batch B and mode it times torch.nn.LSTM, ``impl="fused"`` and
``impl="auto"`` in the same process (samples interleaved, medians) and prints fused / torch and auto / torch
(time ratios: below 1 is faster than torch), and which implementation auto took.

    python benchmarks/bench_auto.py                                   # the grid of RESULTS.md (about 10 minutes)
    python benchmarks/bench_auto.py --kinds packed --modes inference  # a part
    python benchmarks/bench_auto.py --quick                           # a few cells
    python benchmarks/bench_auto.py --cells                           # lstmkit.LSTMCell's variants, one step a call

Letters: T time steps, B batch, H hidden size (= input size).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path
from typing import Callable

import torch
from torch.nn.utils.rnn import pack_padded_sequence

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_lstm  # noqa: E402  (also puts src/ on sys.path)
from bench_lstm import measure, step_fn  # noqa: E402
import lstmkit  # noqa: E402
from lstmkit.ops import cpp_extension_stale, fused_backend, resolve_impl  # noqa: E402
from lstmkit.ops.functional import _ragged  # noqa: E402
from lstmkit.runtime import keep_freed_memory  # noqa: E402

KINDS = ("packed", "proj", "float64")


def build(kind: str, T: int, B: int, H: int, seed: int = 0, equal_lengths: bool = False):
    """torch.nn.LSTM and two lstmkit.LSTMs (fused, auto) with the same weights, and the input maker."""
    torch.manual_seed(seed)
    dtype = torch.float64 if kind == "float64" else torch.float32
    proj = H // 2 if kind == "proj" else 0
    peers = {"torch": torch.nn.LSTM(H, H, proj_size=proj).to(dtype)}
    for impl in ("fused", "auto"):
        peers[impl] = lstmkit.LSTM(H, H, proj_size=proj, impl=impl).to(dtype)
        peers[impl].load_state_dict(peers["torch"].state_dict())
    g = torch.Generator().manual_seed(seed + 1)
    x = torch.randn(T, B, H, generator=g, dtype=dtype)
    if kind == "packed":
        lengths = torch.full((B,), T) if equal_lengths else torch.randint(T // 2, T + 1, (B,), generator=g)
        return peers, lambda: pack_padded_sequence(x, lengths, enforce_sorted=False)
    return peers, lambda: x


def auto_choice(kind: str, B: int, H: int, mode: str, sample: object) -> str:
    """What ``impl="auto"`` takes for this cell (``sample``: one input as the cell makes it)."""
    batch_sizes = getattr(sample, "batch_sizes", None)
    return resolve_impl("auto", device=torch.device("cpu"), dtype=torch.float64 if kind == "float64" else torch.float32,
                        packed=_ragged(batch_sizes), projected=kind == "proj", hidden=H, batch=B,
                        needs_grad=mode == "training")


CELL_OPTIONS = {"layer_norm": dict(layer_norm=True), "peephole": dict(peephole=True), "zoneout": dict(zoneout=0.1),
                "cell_clip": dict(cell_clip=3.0)}


def cell_loop(cell: torch.nn.Module, xs: torch.Tensor, mode: str) -> Callable[[], None]:
    """T steps of a cell in a Python loop, as a decoder or a custom recurrence calls it; training adds a backward
    of the sum of all h."""
    B, H = xs.shape[1], cell.hidden_size
    params = list(cell.parameters())

    def run():
        for p in params:
            p.grad = None
        with torch.inference_mode(mode == "inference"):
            h, c = xs.new_zeros(B, H), xs.new_zeros(B, H)
            outs = []
            for x in xs:
                h, c = cell(x, (h, c))
                outs.append(h)
            if mode == "training":
                torch.stack(outs).sum().backward()
    return run


def run_cells(args, hidden: list[int], batch: list[int], modes: list[str], repeats: int) -> list[dict]:
    """lstmkit.LSTMCell with each option, impl fused / reference / auto, against torch.nn.LSTMCell (plain)."""
    print(f"{'option':<11} {'mode':<9} {'H':>5} {'B':>4} {'torch cell ms':>13} {'fused':>7} {'reference':>9} {'auto':>7}")
    rows = []
    for option, kwargs in CELL_OPTIONS.items():
        for mode in modes:
            for H in hidden:
                for B in batch:
                    torch.manual_seed(0)
                    xs = torch.randn(args.steps, B, H)
                    fns = {"torch": cell_loop(torch.nn.LSTMCell(H, H), xs, mode)}
                    for impl in ("fused", "reference", "auto"):
                        fns[impl] = cell_loop(lstmkit.LSTMCell(H, H, impl=impl, **kwargs), xs, mode)
                    times = measure(fns, repeats, 1, args.budget)
                    row = dict(option=option, mode=mode, H=H, B=B, torch_ms=times["torch"] * 1e3,
                               **{impl: times[impl] / times["torch"] for impl in ("fused", "reference", "auto")})
                    rows.append(row)
                    print(f"{option:<11} {mode:<9} {H:>5} {B:>4} {row['torch_ms']:>13.2f} {row['fused']:>6.2f}x "
                          f"{row['reference']:>8.2f}x {row['auto']:>6.2f}x", flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kinds", default=",".join(KINDS), help="comma-separated subset of " + ",".join(KINDS))
    parser.add_argument("--modes", default="inference,training", help="inference, training or both")
    parser.add_argument("--hidden", default="128,256,384,512,1024", help="hidden sizes")
    parser.add_argument("--batch", default="1,4,16,64,256", help="batch sizes")
    parser.add_argument("--steps", type=int, default=35, help="time steps T")
    parser.add_argument("--equal-lengths", action="store_true", help="packed sequences all of length T (torch "
                        "then runs oneDNN) instead of lengths uniform in [T/2, T]")
    parser.add_argument("--repeats", type=int, default=7, help="samples per peer")
    parser.add_argument("--budget", type=float, default=5.0, help="seconds per cell before sampling stops early")
    parser.add_argument("--quick", action="store_true", help="H 128 and 512, B 1 and 16, 3 samples")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--malloc", choices=("default", "keep"), default="keep",
                        help="keep (default here): lstmkit.runtime.keep_freed_memory() first, for every peer alike")
    parser.add_argument("--cells", action="store_true", help="instead: lstmkit.LSTMCell with each variant option, "
                        "looped over T steps in Python, impl fused / reference / auto against a torch.nn.LSTMCell "
                        "loop (default grid H 128,512 and B 16,64)")
    parser.add_argument("--clock", choices=tuple(bench_lstm.CLOCKS), default="wall",
                        help="wall: elapsed time; cpu: this process's CPU time (with --threads 1, less disturbed by "
                        "other processes on a busy machine)")
    parser.add_argument("--json", type=Path, help="write every measurement to this file")
    args = parser.parse_args(argv)
    bench_lstm.clock = bench_lstm.CLOCKS[args.clock]
    kinds = [k for k in args.kinds.split(",") if k]
    modes = [m for m in args.modes.split(",") if m]
    if any(k not in KINDS for k in kinds) or any(m not in ("inference", "training") for m in modes):
        parser.error(f"--kinds from {KINDS}, --modes from inference, training")
    hidden = [128, 512] if args.quick else [int(h) for h in args.hidden.split(",")]
    batch = [1, 16] if args.quick else [int(b) for b in args.batch.split(",")]
    if args.cells and not args.quick:
        hidden = [int(h) for h in args.hidden.split(",")] if args.hidden != parser.get_default("hidden") else [128, 512]
        batch = [int(b) for b in args.batch.split(",")] if args.batch != parser.get_default("batch") else [16, 64]
    repeats = 3 if args.quick else args.repeats
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.malloc == "keep" and not keep_freed_memory():
        print("--malloc keep: not glibc, nothing changed", file=sys.stderr)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.machine()}; malloc {args.malloc}; "
          f"fused kernel {fused_backend()}; {args.clock} clock; "
          f"T={args.steps}; medians of up to {repeats} interleaved samples; ratios = time / "
          + ("a torch.nn.LSTMCell loop's" if args.cells else "torch.nn.LSTM's"))
    if stale := cpp_extension_stale():
        print(f"warning: {stale}; these figures time the old kernel", file=sys.stderr)
    if args.cells:
        rows = run_cells(args, hidden, batch, modes, repeats)
        if args.json:
            args.json.write_text(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads(),
                                             "cells": rows}, indent=1))
        return 0
    print(f"{'kind':<8} {'mode':<9} {'H':>5} {'B':>4} {'torch ms':>9} {'fused':>7} {'auto':>7}  auto took")
    rows = []
    for kind in kinds:
        for mode in modes:
            for H in hidden:
                for B in batch:
                    peers, make = build(kind, args.steps, B, H, equal_lengths=args.equal_lengths)
                    times = measure({name: step_fn(m, make, mode) for name, m in peers.items()}, repeats, 1, args.budget)
                    row = dict(kind=kind, mode=mode, H=H, B=B, torch_ms=times["torch"] * 1e3,
                               fused=times["fused"] / times["torch"], auto=times["auto"] / times["torch"],
                               auto_took=auto_choice(kind, B, H, mode, make()))
                    rows.append(row)
                    print(f"{kind:<8} {mode:<9} {H:>5} {B:>4} {row['torch_ms']:>9.2f} {row['fused']:>6.2f}x "
                          f"{row['auto']:>6.2f}x  {row['auto_took']}", flush=True)
    if args.json:
        args.json.write_text(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads(), "rows": rows},
                                        indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
