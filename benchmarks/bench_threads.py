"""Threads beside a busy process: the commands' default thread setting against one thread, with one CPU-bound
competitor running (issue 14).

Each case runs the real command in a fresh process, while a second process spins on one CPU:

- ``train-lm``: the small preset on the built-in corpus for ``--seconds`` of training; tokens/s of training.
- ``eval-lm``: the test split of that run; wall time of the command.
- ``tag``: a CoNLL-U file (``--input``, e.g. the EWT test split) with a trained tagger (``--tagger``); words/s.

Settings: ``default`` (no ``--threads``: torch's count, one per core, with idle OpenMP threads sleeping), ``1``
(``--threads 1``), and ``2, torch's wait policy`` (``--threads 2`` with torch imported before the command sets the
OpenMP environment: how every command ran before issue 14, on this 2-core machine).

    PYTHONPATH=src python benchmarks/bench_threads.py --tagger RUN --input en_ewt-ud-test.conllu [--seconds 15]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SETTINGS = {
    "default": [],
    "1": ["--threads", "1"],
    "2, torch's wait policy": ["--threads", "2"],
}
OLD_WAY = "import sys, torch\nfrom lstmkit.cli import main\nsys.exit(main(sys.argv[1:]))\n"
NEW_WAY = "import sys\nfrom lstmkit.cli import main\nsys.exit(main(sys.argv[1:]))\n"
SPIN = "while True:\n    pass\n"


def command(setting: str, argv: list[str], env: dict[str, str]) -> tuple[float, str]:
    """Run ``lstmkit ARGV`` with ``setting``'s threads; returns (wall seconds, stdout + stderr)."""
    code = OLD_WAY if setting.startswith("2, torch") else NEW_WAY
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code, *argv, *SETTINGS[setting]], capture_output=True, text=True,
                          env=env)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"lstmkit {' '.join(argv)} failed: {done.stderr.strip()}")
    return seconds, done.stdout + done.stderr


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tagger", required=True, help="a train-tagger run directory")
    parser.add_argument("--input", required=True, help="CoNLL-U to tag")
    parser.add_argument("--seconds", type=float, default=15.0, help="training seconds per train-lm case")
    parser.add_argument("--no-competitor", action="store_true", help="measure on an otherwise idle machine")
    parser.add_argument("--json", metavar="FILE")
    args = parser.parse_args(argv)

    env = {key: value for key, value in os.environ.items()
           if key not in ("OMP_WAIT_POLICY", "KMP_BLOCKTIME", "OMP_NUM_THREADS", "LSTMKIT_THREADS")}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1] / "src")
    competitor = None if args.no_competitor else subprocess.Popen([sys.executable, "-c", SPIN])
    results: dict[str, dict[str, float]] = {}
    try:
        with tempfile.TemporaryDirectory() as scratch:
            for setting in SETTINGS:
                run_dir = Path(scratch) / f"lm-{len(results)}"
                _, out = command(setting, ["train-lm", "--preset", "small", "--max-seconds", str(args.seconds),
                                           "--no-progress", "--run-dir", str(run_dir)], env)
                tokens = float(re.search(r"([0-9]+) tokens/s", out).group(1))
                eval_seconds, _ = command(setting, ["eval-lm", str(run_dir), "--split", "test"], env)
                _, out = command(setting, ["tag", args.tagger, "--input", args.input, "--stats",
                                           "--output", os.devnull], env)
                words = float(re.search(r"\(([0-9,]+) words/s\)", out).group(1).replace(",", ""))
                results[setting] = {"train_lm_tokens_per_s": tokens, "eval_lm_seconds": eval_seconds,
                                    "tag_words_per_s": words}
                print(f"{setting:24s} train-lm {tokens:8.0f} tokens/s   eval-lm {eval_seconds:6.1f} s   "
                      f"tag {words:8.0f} words/s", flush=True)
    finally:
        if competitor is not None:
            competitor.kill()
            competitor.wait()
    one = results["1"]
    for setting, row in results.items():
        print(f"{setting:24s} vs 1 thread: train-lm {row['train_lm_tokens_per_s'] / one['train_lm_tokens_per_s']:.2f}x"
              f"  eval-lm {one['eval_lm_seconds'] / row['eval_lm_seconds']:.2f}x"
              f"  tag {row['tag_words_per_s'] / one['tag_words_per_s']:.2f}x  (>1: faster)")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
