"""Time lstmkit.LSTM on a CUDA device against torch.nn.LSTM (cuDNN) in the same process.

On a GPU, ``impl="auto"`` runs torch's cuDNN kernel for every plain configuration; the variants run the fused
operator ``lstmkit::lstm_layer``, whose kernel there is the readable Python one (the C++ kernel is CPU only): a
loop over time of a few CUDA launches per step. This benchmark says what that costs against cuDNN, and against
the Python loop over cells a user would write (benchmarks/variant_loops.py), per variant.

    python benchmarks/bench_cuda.py                     # T in {35, 200}, B in {16, 64}, H in {128, 512, 1024}
    python benchmarks/bench_cuda.py --quick             # T=35 B=64, H in {128, 512}
    python benchmarks/bench_cuda.py --json out.json     # also every measurement
    python benchmarks/bench_cuda.py --accuracy          # instead: each peer's float32 error against float64

Samples of all peers are taken in turn (each round starting one peer later), each timed with CUDA events around
one call (forward, or forward and backward in training); medians are reported with the ratio to torch.nn.LSTM.
float32 throughout, torch's default flags (cuDNN multiplies float32 in TF32 on Ampere and later).
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # helpers.run, for --accuracy
import lstmkit  # noqa: E402
from variant_loops import LSTMKIT_OPTIONS, UserLoopLSTM  # noqa: E402

OPTIONS = ("layer_norm", "peephole", "zoneout", "recurrent_dropout", "cell_clip", "all")


def build(peer: str, option: str, H: int, device: torch.device) -> torch.nn.Module:
    torch.manual_seed(0)
    if peer == "torch":
        module = torch.nn.LSTM(H, H)
    elif peer == "lstmkit":  # impl="auto": cuDNN when plain, the fused operator with a variant
        module = lstmkit.LSTM(H, H, **LSTMKIT_OPTIONS.get(option, {}))
    elif peer == "fused":
        module = lstmkit.LSTM(H, H, impl="fused")
    elif peer == "user-loop":
        module = UserLoopLSTM(H, H, 1, option)
    else:
        raise ValueError(peer)
    return module.to(device)


def timed(module: torch.nn.Module, x: torch.Tensor, training: bool) -> float:
    """Milliseconds of one call, by CUDA events."""
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    module.train(training)
    start.record()
    if training:
        out, _ = module(x)
        out.sum().backward()
    else:
        with torch.no_grad():
            module(x)
    end.record()
    end.synchronize()
    return start.elapsed_time(end)


def accuracy(device: torch.device) -> None:
    """Max error of float32 outputs and gradients against the float64 answer (the reference equations in float64 on
    the same device), relative to |e| + mean |e| as tests/helpers.py's assert_close measures it: cuDNN with
    torch's default TF32 and without it, lstmkit's fused and reference paths."""
    from helpers import run  # tests/helpers.py: the loss and the tensors every parity test compares

    def error(a: torch.Tensor, e: torch.Tensor) -> float:
        a, e = a.double(), e.double()
        return ((a - e).abs() / (e.abs() + e.abs().mean())).max().item()

    keys = ("output", "c_n", "grad input", "grad weight_hh_l0")
    print("max error against float64: " + ", ".join(keys))
    for T, B, H in ((7, 4, 6), (35, 16, 512), (200, 64, 512)):
        torch.manual_seed(0)
        theirs = torch.nn.LSTM(H, H).to(device)
        x = torch.randn(T, B, H)
        exact = lstmkit.LSTM(H, H, impl="reference", dtype=torch.float64).to(device)
        exact.load_state_dict(theirs.state_dict())
        expected = run(exact, x.to(device, torch.float64), None, None, False, True)
        rows = []
        for name, tf32 in (("cuDNN, TF32 (default)", True), ("cuDNN, TF32 off", False)):
            with torch.backends.cudnn.flags(enabled=True, allow_tf32=tf32):
                theirs.zero_grad(set_to_none=True)
                rows.append((name, run(theirs, x.to(device), None, None, False, True)))
        for impl in ("fused", "reference"):
            ours = lstmkit.LSTM(H, H, impl=impl).to(device)
            ours.load_state_dict(theirs.state_dict())
            rows.append((f"lstmkit {impl}", run(ours, x.to(device), None, None, False, True)))
        for name, actual in rows:
            print(f"T={T} B={B} H={H} {name:22s}", " ".join(f"{error(actual[k], expected[k]):.1e}" for k in keys),
                  flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="T=35 B=64, H in {128, 512}")
    parser.add_argument("--repeats", type=int, default=11, help="timed samples per peer (after 3 warm-up calls)")
    parser.add_argument("--user-loop", action="store_true", help="also time the Python loop over cells per variant")
    parser.add_argument("--json", type=Path, help="write every measurement to this file")
    parser.add_argument("--accuracy", action="store_true", help="instead of timing: float32 errors against float64")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("bench_cuda: torch sees no CUDA device; nothing to time")
        return 1
    device = torch.device("cuda")
    print(f"device: {torch.cuda.get_device_name()}, torch {torch.__version__}, cuDNN {torch.backends.cudnn.version()}")
    if args.accuracy:
        accuracy(device)
        return 0
    grid = ([(35, 64, 128), (35, 64, 512)] if args.quick
            else list(itertools.product((35, 200), (16, 64), (128, 512, 1024))))
    records = []
    for mode in ("training", "inference"):
        print(f"\n{mode}: median ms per call (ratio to torch.nn.LSTM)")
        for T, B, H in grid:
            peers = [("torch", ""), ("lstmkit", ""), ("fused", "")] + [("lstmkit", o) for o in OPTIONS]
            if args.user_loop:
                peers += [("user-loop", o) for o in OPTIONS]
            modules = [build(peer, option, H, device) for peer, option in peers]
            x = torch.randn(T, B, H, device=device, generator=None)
            samples: list[list[float]] = [[] for _ in peers]
            for k in range(3 + args.repeats):  # in turn, so drifts hit every peer alike; each round starts
                for shift in range(len(modules)):  # one peer later, so no peer always follows the same one
                    j = (k + shift) % len(modules)
                    ms = timed(modules[j], x, mode == "training")
                    if k >= 3:
                        samples[j].append(ms)
            medians = [statistics.median(s) for s in samples]
            cells = []
            for (peer, option), median in zip(peers, medians):
                label = peer + (f"[{option}]" if option else "")
                cells.append(f"{label} {median:.2f} ({median / medians[0]:.2f}x)")
                records.append(dict(mode=mode, T=T, B=B, H=H, peer=peer, option=option, ms=median,
                                    ratio=median / medians[0], samples=samples[peers.index((peer, option))]))
            print(f"T={T} B={B} H={H}: " + ", ".join(cells), flush=True)
            del modules
            torch.cuda.empty_cache()
            if args.json:  # after every cell, so that a run cut short keeps what it measured
                args.json.write_text(json.dumps(dict(device=torch.cuda.get_device_name(), torch=torch.__version__,
                                                     records=records), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
