"""Language-model training throughput on one process against several (DistributedDataParallel, gloo), same global
batch, and the gradient bytes every step all-reduces.

Each layout trains the same model on the same windows with the same global batch G (columns of the batchified
corpus): ``1x1`` (one process, one thread), ``1x2`` (one process, two threads) and ``2x1`` (two processes of one
thread, G/2 columns each, started here with torchrun's variables). Layouts run one after the other, in rounds that
alternate them; each process takes real training steps through :class:`lstmkit.lm.task.LanguageModelTask` (DDP
included), fixed-length windows, after a warm-up. The report gives median global tokens per second, the scaling
efficiency of two processes (``2x1`` over twice ``1x1``), ``2x1`` against ``1x2``, and the communication volume.

    python benchmarks/bench_ddp.py                        # small preset on PTB, 3 rounds (about 5 minutes)
    python benchmarks/bench_ddp.py --rounds 1 --steps 10  # quicker
    python benchmarks/bench_ddp.py --preset awd --batch 40

The corpus is PTB from ``--data``, else ``$LSTMKIT_DATA/ptb``, else ``../shared/data/ptb``; without it, the
built-in corpus (said in the output).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

LAYOUTS = {"1x1": (1, 1), "1x2": (1, 2), "2x1": (2, 1)}  # name -> (processes, threads per process)


def default_corpus() -> str | None:
    root = Path(os.environ.get("LSTMKIT_DATA") or REPO.parent / "shared" / "data")
    return str(root / "ptb") if (root / "ptb").is_dir() else None


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as file:
            info = {key.strip(): value for key, value in (line.split(":", 1) for line in file if ":" in line)}
        return (f"{info['model name'].strip()} (family {info['cpu family'].strip()}, model "
                f"{info['model'].strip()}), {os.cpu_count()} cores")
    except (OSError, KeyError):
        return platform.processor() or "unknown CPU"


# ----------------------------------------------------------------------------------------------- one process


def worker(args: argparse.Namespace) -> None:
    """One rank: train warm-up + timed steps; rank 0 prints a JSON line."""
    import torch

    from lstmkit.data import load_corpus
    from lstmkit.train import StepInfo
    from lstmkit.train.distributed import from_environment
    from lstmkit.lm.task import LanguageModelTask, make_config
    from lstmkit.train.seeding import seed_everything

    ddp = from_environment()
    threads = ddp.set_threads(args.threads)
    config = make_config(args.preset, [f"--data.batch_size={args.batch // ddp.world_size}",
                                       "--data.variable_length=false", f"--precision={args.precision}"])
    seed_everything(config.seed)
    corpus = load_corpus(args.data, "word")
    task = LanguageModelTask(config, corpus, ddp)
    windows = iter(task.batches(0, None))
    times = []
    for step in range(args.warmup + args.steps):
        window, _ = next(windows)
        if ddp.enabled:
            torch.distributed.barrier()
        started = time.perf_counter()
        task.train_step(window, StepInfo(step, 0, 0.0, None))
        seconds = time.perf_counter() - started
        seconds = ddp.agree_step(seconds, {"loss": 0.0}, None)[0]  # the slowest rank's time
        if step >= args.warmup:
            times.append(seconds)
    params = list(task.model.parameters())
    allreduce = None
    if ddp.enabled:  # the gradient's all-reduce alone: one flat float32 tensor of its size, over this transport
        flat = torch.zeros(sum(p.numel() for p in params))
        samples = []
        for _ in range(7):
            torch.distributed.barrier()
            started = time.perf_counter()
            torch.distributed.all_reduce(flat)
            samples.append(time.perf_counter() - started)
        allreduce = statistics.median(samples[2:])
    if ddp.is_main:
        print(json.dumps({
            "seconds": statistics.median(times),
            "tokens": args.batch * config.data.bptt,
            "threads": threads,
            "world_size": ddp.world_size,
            "parameters": sum(p.numel() for p in params),
            "gradient_bytes": sum(p.numel() * p.element_size() for p in params),
            "bucket_cap_mb": 25,
            "allreduce_seconds": allreduce,
            "vocab": len(corpus.vocab),
            "precision": str(task.compute_dtype).replace("torch.", ""),
        }), flush=True)
    ddp.close()


# ------------------------------------------------------------------------------------------------ the driver


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_layout(name: str, args: argparse.Namespace) -> dict:
    processes, threads = LAYOUTS[name]
    argv = [sys.executable, __file__, "--worker", "--threads", str(threads), "--batch", str(args.batch),
            "--preset", args.preset, "--steps", str(args.steps), "--warmup", str(args.warmup),
            "--precision", args.precision]
    if args.data:
        argv += ["--data", args.data]
    port = free_port()
    started = []
    for rank in range(processes):
        env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
        env.pop("OMP_NUM_THREADS", None)
        if processes > 1:
            env.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank),
                       WORLD_SIZE=str(processes), LOCAL_WORLD_SIZE=str(processes))
        started.append(subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outputs = [process.communicate() for process in started]
    for process, (_, stderr) in zip(started, outputs):
        if process.returncode:
            raise SystemExit(f"layout {name} failed:\n{stderr[-2000:]}")
    return json.loads(outputs[0][0].strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=default_corpus(), help="PTB-layout directory (default: PTB if present)")
    parser.add_argument("--preset", default="small")
    parser.add_argument("--batch", type=int, default=20, help="global batch G (columns), split among processes")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per layout and round")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--precision", default="auto", choices=("auto", "float32", "bfloat16"))
    parser.add_argument("--layouts", default="1x1,1x2,2x1")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return

    names = args.layouts.split(",")
    print(f"host: {cpu_name()}; torch {__import__('torch').__version__}")
    print(f"command: python benchmarks/bench_ddp.py {' '.join(sys.argv[1:])}".rstrip())
    print(f"corpus: {args.data or 'the built-in corpus'}; preset {args.preset}, global batch {args.batch}, "
          f"{args.steps} timed steps after {args.warmup} warm-up, {args.rounds} rounds")
    rates: dict[str, list[float]] = {name: [] for name in names}
    allreduce: list[float] = []
    info = {}
    for round_index in range(args.rounds):
        for name in names:
            result = run_layout(name, args)
            rates[name].append(result["tokens"] / result["seconds"])
            info = result
            if result["allreduce_seconds"] is not None:
                allreduce.append(result["allreduce_seconds"])
            print(f"  round {round_index + 1} {name}: {rates[name][-1]:,.0f} tokens/s "
                  f"({result['seconds'] * 1e3:.1f} ms per step)", flush=True)
    median = {name: statistics.median(values) for name, values in rates.items()}
    print(f"\nmodel: {info['parameters']:,} parameters (vocabulary {info['vocab']:,}), compute {info['precision']}")
    print("| layout (processes x threads) | tokens/s (median) | per step |")
    print("|---|---|---|")
    for name in names:
        tokens = info["tokens"]
        print(f"| {name} | {median[name]:,.0f} | {tokens / median[name] * 1e3:.1f} ms |")
    if {"1x1", "2x1"} <= set(median):
        print(f"scaling efficiency of 2 processes: 2x1 / (2 x 1x1) = {median['2x1'] / (2 * median['1x1']):.2f}")
    if {"1x2", "2x1"} <= set(median):
        print(f"2 processes x 1 thread against 1 process x 2 threads: {median['2x1'] / median['1x2']:.2f}x")
    volume = info["gradient_bytes"]
    print(f"gradient all-reduced per step: {volume:,} bytes ({volume / 2**20:.1f} MiB, float32, in buckets of "
          f"{info['bucket_cap_mb']} MB); a ring all-reduce sends and receives 2 (N-1)/N of it per rank: "
          f"{volume / 2**20:.1f} MiB each way per rank and step at N = 2, approaching {2 * volume / 2**20:.1f} MiB "
          f"for large N")
    if allreduce:
        seconds = statistics.median(allreduce)
        print(f"that all-reduce alone, 2 processes on this machine (gloo over loopback TCP): {seconds * 1e3:.1f} ms "
              f"({volume / seconds / 2**30:.2f} GiB/s of gradient)")


if __name__ == "__main__":
    main()
