"""Time lstmkit.LSTM's implementations against torch.nn.LSTM and a Python loop over nn.LSTMCell.

Every peer is built the same way (:func:`build`), samples of all peers are taken in turn (so a burst of load on
this shared machine hits them all alike), and each cell reports medians and the ratio to torch.nn.LSTM measured
in the same process. Ratios are what to compare between runs; absolute times drift. Under a real-time policy
(`chrt -f`) every call of 20 ms or more is followed by a short pause so that the kernel's real-time throttling (a
~50 ms stall once a second) does not land inside a sample (:func:`rt_throttle_pause`).

    python benchmarks/bench_lstm.py                  # the full grid of the core issue (tens of minutes on 2 cores)
    python benchmarks/bench_lstm.py --quick          # a few cells, about a minute
    python benchmarks/bench_lstm.py --json out.json  # also write every measurement

Letters: T time steps, B batch, H hidden = input size, L layers.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import torch
from torch.nn.utils.rnn import pack_padded_sequence

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import lstmkit  # noqa: E402
from lstmkit.ops import cpp_extension_stale, fused_backend, use_fused_backend  # noqa: E402
from lstmkit.runtime import keep_freed_memory  # noqa: E402
from variant_loops import LSTMKIT_OPTIONS, UserLoopLSTM  # noqa: E402

PEERS = ("torch", "auto", "native", "fused", "fused-python", "reference", "cell-loop")  # the core table
# "fused" is impl="fused" as users get it: the C++ kernel when built (lstmkit.ops.fused_backend()); "fused-python"
# forces the readable Python kernel of the same operator
VARIANT_PEERS = ("torch", "lstmkit", "user-loop")  # the variants table


@dataclass(frozen=True)
class Case:
    T: int
    B: int
    H: int
    layers: int = 1
    packed: bool = False  # lengths uniform in [T/2, T], as a PackedSequence (enforce_sorted=False)
    proj: int = 0
    option: str = ""  # a variant of lstmkit.LSTM (variant_loops.LSTMKIT_OPTIONS), for the variants table

    def name(self) -> str:
        extra = (" packed" if self.packed else "") + (f" proj={self.proj}" if self.proj else "")
        return f"T={self.T} B={self.B} H={self.H} L={self.layers}{extra}" + (f" {self.option}" if self.option else "")


class OnBackend(torch.nn.Module):
    """Runs ``module`` with the fused operator's kernel forced to ``backend``."""

    def __init__(self, module: torch.nn.Module, backend: str):
        super().__init__()
        self.module, self.backend = module, backend

    def forward(self, x):
        with use_fused_backend(self.backend):
            return self.module(x)


class CellLoop(torch.nn.Module):
    """How custom LSTM variants are written today: a Python loop over nn.LSTMCell, layer by layer."""

    def __init__(self, input_size: int, hidden_size: int, layers: int):
        super().__init__()
        self.cells = torch.nn.ModuleList(
            torch.nn.LSTMCell(input_size if k == 0 else hidden_size, hidden_size) for k in range(layers)
        )

    def forward(self, x):  # (T, B, I)
        for cell in self.cells:
            h = x.new_zeros(x.shape[1], cell.hidden_size)
            c = torch.zeros_like(h)
            outputs = []
            for step in x:
                h, c = cell(step, (h, c))
                outputs.append(h)
            x = torch.stack(outputs)  # (T, B, H)
        return x, None


def build(peer: str, case: Case, seed: int = 0) -> tuple[torch.nn.Module, Callable[[], object]]:
    """The module for ``peer`` and a function making its input, identical across peers for one case."""
    torch.manual_seed(seed)
    if peer == "cell-loop":
        module = CellLoop(case.H, case.H, case.layers)
    elif peer == "user-loop":
        module = UserLoopLSTM(case.H, case.H, case.layers, case.option)
    elif peer == "lstmkit":
        module = lstmkit.LSTM(case.H, case.H, case.layers, **LSTMKIT_OPTIONS[case.option])
    elif peer == "torch":
        module = torch.nn.LSTM(case.H, case.H, case.layers, proj_size=case.proj)
    elif peer == "fused-python":
        module = OnBackend(lstmkit.LSTM(case.H, case.H, case.layers, proj_size=case.proj, impl="fused"), "python")
    else:
        module = lstmkit.LSTM(case.H, case.H, case.layers, proj_size=case.proj, impl=peer)
    g = torch.Generator().manual_seed(seed + 1)
    x = torch.randn(case.T, case.B, case.H, generator=g).requires_grad_(INPUT_GRAD)
    if case.packed:
        lengths = torch.randint(case.T // 2, case.T + 1, (case.B,), generator=g)

        def make():
            return pack_padded_sequence(x, lengths, enforce_sorted=False)
    else:

        def make():
            return x

    return module, make


def _output_tensor(out):
    return out.data if hasattr(out, "batch_sizes") else out


AUTOCAST = False  # --autocast: every step under torch.autocast("cpu", dtype=torch.bfloat16)
# --input-grad: the input requires grad, so a training step also computes d(input), as after an embedding or under a
# second layer (torch's oneDNN backward computes it either way; lstmkit's skips it when nothing needs it)
INPUT_GRAD = False


def _precision():
    return torch.autocast("cpu", dtype=torch.bfloat16) if AUTOCAST else contextlib.nullcontext()


MODES = ("training", "inference", "eval")
# training: forward + backward, module in training mode; inference: forward under torch.inference_mode with the
# module left in training mode (as the core table times it: a variant's masks are drawn); eval: the same after
# module.eval() (what users run at inference: no masks, zoneout as its expectation)


def step_fn(module: torch.nn.Module, make: Callable[[], object], mode: str) -> Callable[[], None]:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if mode == "eval":
        module.eval()
    if mode in ("inference", "eval"):

        def run():
            with torch.inference_mode(), _precision():
                module(make())

    else:
        params = list(module.parameters())

        def run():
            for p in params:
                p.grad = None
            with _precision():
                out, _ = module(make())
            _output_tensor(out).float().sum().backward()

    return run


CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}
clock = time.perf_counter


PAUSE_FROM_S = 0.02  # calls shorter than this get no pause (rt_throttle_pause)


def rt_throttle_pause(seconds: float, policy: int, runtime_us: int, period_us: int) -> float:
    """Seconds to sleep after a call of ``seconds`` so that a process under a real-time policy is not throttled.

    Under SCHED_FIFO or SCHED_RR (``chrt -f 50``, as RESULTS.md's runs use) the kernel lets real-time tasks run at
    most ``sched_rt_runtime_us`` of every ``sched_rt_period_us`` (0.95 s a second by default) and then stops them
    for the rest of the period: a ~50 ms stall once a second, which lands on whichever sample spans it. With 3-5
    samples of 200 ms calls, a median could take a stalled sample and a cell read 1.2-1.4x where its calls took
    1.1x (session 10, benchmarks/RESULTS.md). Idling twice the kept share of each call's time, plus 10 ms, keeps
    every period's run time under the limit for calls up to ~0.9 s; a longer call is stalled inside itself
    whatever the pause, in proportion to its length. 0 under an ordinary policy, without a limit (-1), and after
    calls under PAUSE_FROM_S: a stall then hits one sample in dozens, which a median ignores, while a pause would
    let OpenMP's worker threads fall asleep between the small cells' calls and change what they time."""
    if seconds < PAUSE_FROM_S or policy not in (getattr(os, "SCHED_FIFO", -1), getattr(os, "SCHED_RR", -1)):
        return 0.0
    if runtime_us < 0 or period_us <= 0 or runtime_us >= period_us:
        return 0.0
    share = runtime_us / period_us
    return 2 * (1 - share) / share * seconds + 0.01


def _rt_limits() -> tuple[int, int, int]:
    """(this process's scheduling policy, sched_rt_runtime_us, sched_rt_period_us); (-1, -1, 0) where unknown."""
    try:
        kernel = Path("/proc/sys/kernel")
        return (os.sched_getscheduler(0), int((kernel / "sched_rt_runtime_us").read_text()),
                int((kernel / "sched_rt_period_us").read_text()))
    except (OSError, AttributeError, ValueError):
        return -1, -1, 0


def measure(fns: dict[str, Callable[[], None]], repeats: int, warmup: int, budget_s: float) -> dict[str, float]:
    """Median seconds per call of each function, sampling them in turn (on the chosen clock).

    Under a real-time policy each call of 20 ms or more is followed by the idle time :func:`rt_throttle_pause` asks
    for (outside the timed span, every peer alike), so that the kernel's real-time throttling does not stall a
    sample."""
    limits = _rt_limits()

    def timed(fn: Callable[[], None]) -> float:
        t0, w0 = clock(), time.perf_counter()
        fn()
        seconds, wall = clock() - t0, time.perf_counter() - w0
        if pause := rt_throttle_pause(wall, *limits):
            time.sleep(pause)
        return seconds

    for fn in fns.values():
        for _ in range(warmup):
            timed(fn)
    samples: dict[str, list[float]] = {name: [] for name in fns}
    started = time.perf_counter()
    for r in range(repeats):
        for name, fn in fns.items():
            samples[name].append(timed(fn))
        if r >= 2 and time.perf_counter() - started > budget_s:
            break
    return {name: statistics.median(values) for name, values in samples.items()}


def run_case(case: Case, peers: tuple[str, ...], modes: tuple[str, ...], repeats: int, warmup: int, budget_s: float) -> list[dict]:
    rows = []
    for mode in modes:
        fns = {}
        for peer in peers:
            if peer == "cell-loop" and (case.packed or case.proj):
                continue
            module, make = build(peer, case)
            fns[peer] = step_fn(module, make, mode)
        times = measure(fns, repeats, warmup, budget_s)
        for peer, seconds in times.items():
            rows.append(
                dict(case=asdict(case), name=case.name(), mode=mode, peer=peer, ms=seconds * 1e3, vs_torch=seconds / times["torch"])
            )
    return rows


def print_table(rows: list[dict]) -> None:
    peers = [p for p in PEERS if any(r["peer"] == p for r in rows)]
    header = f"{'case':<34} {'mode':<9} {'torch ms':>9} " + " ".join(f"{p:>10}" for p in peers if p != "torch")
    print(header)
    print("-" * len(header))
    keys = sorted({(r["name"], r["mode"]) for r in rows}, key=lambda k: [r["name"] for r in rows].index(k[0]))
    for name, mode in keys:
        cell = {r["peer"]: r for r in rows if r["name"] == name and r["mode"] == mode}
        line = f"{name:<34} {mode:<9} {cell['torch']['ms']:>9.2f} "
        line += " ".join(f"{cell[p]['vs_torch']:>9.2f}x" if p in cell else f"{'-':>10}" for p in peers if p != "torch")
        print(line, flush=True)


def print_variants(rows: list[dict], header: bool) -> None:
    """One line per option, cell and mode: lstmkit's time relative to torch.nn.LSTM, and its speed-up over the loop."""
    if header:
        print(f"{'option':<18} {'cell':<24} {'mode':<9} {'torch ms':>9} {'lstmkit/torch':>14} {'loop/lstmkit':>13}")
    keys = list(dict.fromkeys((r["name"], r["mode"]) for r in rows))
    for name, mode in keys:
        cell = {r["peer"]: r for r in rows if r["name"] == name and r["mode"] == mode}
        case = cell["torch"]["case"]
        shape = f"T={case['T']} B={case['B']} H={case['H']} L={case['layers']}"
        print(f"{case['option']:<18} {shape:<24} {mode:<9} {cell['torch']['ms']:>9.2f} "
              f"{cell['lstmkit']['vs_torch']:>13.2f}x {cell['user-loop']['ms'] / cell['lstmkit']['ms']:>12.2f}x",
              flush=True)


# ----------------------------------------------------------------------------------------------- peak memory


def _memory_child(peer: str, case: Case) -> None:
    """Runs in a fresh process: how far one training step raises the peak resident memory above what the process
    held just before it (model, input, gradients' absence). A first step, because memory freed by a step stays
    resident and would hide the next step's peak."""
    module, make = build(peer, case)
    fn = step_fn(module, make, "training")
    before = _status_mb("VmRSS")
    fn()
    print(json.dumps({"peer": peer, "peak_mb": _status_mb("VmHWM"), "before_mb": before}))


def _status_mb(field: str) -> float:
    """A memory figure of this process from /proc/self/status. VmHWM (peak RSS) belongs to the address space
    and starts afresh at exec; getrusage's ru_maxrss does not (Linux carries it over from the parent)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"{field} not found in /proc/self/status")


def measure_memory(case: Case, peers: tuple[str, ...]) -> list[dict]:
    """Peak memory of a training step per peer, each in its own process (max RSS cannot be reset in-process).

    Reported: the process's peak resident memory minus its memory after building the model and input (so the
    interpreter, torch, the weights and the input are excluded)."""
    rows = []
    for peer in peers:
        cmd = [sys.executable, __file__, "--memory-child", peer, json.dumps(asdict(case))]
        result = subprocess.run(cmd, capture_output=True, text=True, check=True)
        info = json.loads(result.stdout.strip().splitlines()[-1])
        rows.append(dict(name=case.name(), peer=peer, step_peak_mb=info["peak_mb"] - info["before_mb"], peak_mb=info["peak_mb"]))
    return rows


# ----------------------------------------------------------------------------------------------- main


def grids(quick: bool) -> tuple[list[Case], list[Case]]:
    if quick:
        plain = [Case(35, 64, 128), Case(35, 64, 512), Case(35, 16, 1024)]
    else:
        plain = [Case(T, B, H, L) for T, B, H, L in itertools.product([35, 200], [16, 64], [128, 512, 1024], [1, 3])]
    special = [Case(35, 64, 512, packed=True), Case(35, 64, 512, proj=256), Case(35, 64, 512, packed=True, proj=256)]
    return plain, special


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a few cells, about a minute")
    parser.add_argument("--json", type=Path, help="write all measurements to this file")
    parser.add_argument("--repeats", type=int, default=None, help="samples per peer (default 7, quick 5)")
    parser.add_argument("--budget", type=float, default=None, help="seconds per cell before sampling stops early")
    parser.add_argument("--peers", default=",".join(PEERS), help="comma-separated subset of " + ",".join(PEERS))
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory measurement")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--clock", choices=tuple(CLOCKS), default="wall",
                        help="wall: elapsed time (the figure that counts); cpu: this process's CPU time, which other "
                        "processes on a busy machine disturb much less (meaningful with --threads 1)")
    parser.add_argument("--cases", default=None, help="only cases whose name contains one of these comma-separated "
                        "strings, e.g. 'H=512,packed'")
    parser.add_argument("--variants", action="store_true", help="the variants table: each option of lstmkit.LSTM "
                        "against a Python loop over a cell with that option, and plain torch.nn.LSTM")
    parser.add_argument("--options", default=",".join(LSTMKIT_OPTIONS), help="variants to time (with --variants; "
                        "'all' is the five options of the fused operator at once)")
    parser.add_argument("--modes", default="training", help="with --variants, comma-separated: training; inference "
                        "(torch.inference_mode, module in training mode: masks drawn); eval (the same after "
                        "module.eval(): no masks)")
    parser.add_argument("--malloc", choices=("default", "keep"), default="default",
                        help="default: glibc as every process starts; keep: lstmkit.runtime.keep_freed_memory() first "
                        "(what the lstmkit commands do), for both peers alike")
    parser.add_argument("--autocast", action="store_true", help="every peer under torch.autocast('cpu', "
                        "dtype=torch.bfloat16): GEMMs in bfloat16")
    parser.add_argument("--input-grad", action="store_true", help="the input requires grad: training also computes "
                        "its gradient (as after an embedding or under another layer)")
    parser.add_argument("--memory-child", nargs=2, metavar=("PEER", "CASE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    global clock, AUTOCAST, INPUT_GRAD
    clock = CLOCKS[args.clock]
    AUTOCAST = args.autocast
    INPUT_GRAD = args.input_grad
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.malloc == "keep" and not keep_freed_memory():
        print("--malloc keep: not glibc, nothing changed", file=sys.stderr)
    if args.memory_child:
        _memory_child(args.memory_child[0], Case(**json.loads(args.memory_child[1])))
        return 0

    peers = tuple(p for p in args.peers.split(",") if p)
    if "torch" not in peers:
        peers = ("torch",) + peers
    repeats = args.repeats or (5 if args.quick else 7)
    budget = args.budget or (4.0 if args.quick else 20.0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.processor() or platform.machine()}, "
          f"python {platform.python_version()}; {args.clock} clock; malloc {args.malloc}; medians of up to {repeats} interleaved samples; "
          f"fused kernel {fused_backend()}{'; autocast bfloat16' if args.autocast else ''}"
          f"{'; input with grad' if args.input_grad else ''}; ratio = time / torch.nn.LSTM's")
    if stale := cpp_extension_stale():
        print(f"warning: {stale}; these figures time the old kernel", file=sys.stderr)
    plain, special = grids(args.quick)
    if args.cases:
        wanted = args.cases.split(",")
        plain = [c for c in plain if any(w in c.name() + " " for w in wanted)]
        special = [c for c in special if any(w in c.name() + " " for w in wanted)]
    rows: list[dict] = []
    started = time.perf_counter()
    if args.variants:
        modes = tuple(m for m in args.modes.split(",") if m)
        unknown = [m for m in modes if m not in MODES] + [o for o in args.options.split(",") if o not in LSTMKIT_OPTIONS]
        if unknown:
            parser.error(f"unknown modes or options {unknown}: modes {MODES}, options {tuple(LSTMKIT_OPTIONS)}")
        print_variants([], header=True)
        for option in args.options.split(","):
            for base in plain:
                case = Case(base.T, base.B, base.H, base.layers, option=option)
                new = run_case(case, VARIANT_PEERS, modes, repeats, 1, budget)
                print_variants(new, header=False)
                rows += new
        if args.json:
            args.json.write_text(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads(), "rows": rows}, indent=1))
        print(f"total {time.perf_counter() - started:.0f} s")
        return 0
    for case in plain:
        rows += run_case(case, peers, ("inference", "training"), repeats, 1, budget)
    special_peers = tuple(p for p in peers if p in ("torch", "auto", "fused", "fused-python"))
    for case in special:
        rows += run_case(case, special_peers, ("inference", "training"), repeats, 1, budget)
    print_table(rows)
    memory = []
    if not args.no_memory:
        big = Case(200, 64, 1024) if not args.quick else Case(35, 64, 512)
        memory = measure_memory(big, ("torch", "fused"))
        base = next(m for m in memory if m["peer"] == "torch")["step_peak_mb"]
        for m in memory:
            print(f"peak memory of a training step, {m['name']}: {m['peer']:<6} {m['step_peak_mb']:8.1f} MB "
                  f"({m['step_peak_mb'] / base:.2f}x torch)")
    print(f"total {time.perf_counter() - started:.0f} s")
    if args.json:
        args.json.write_text(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads(), "rows": rows, "memory": memory}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
