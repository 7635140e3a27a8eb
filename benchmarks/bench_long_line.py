"""Peak memory of ``lstmkit tag`` on one very long line (issue 14: one 200,000-word line took 2.6 GB).

Builds a line of ``--words`` words from the EWT test split's word forms, tags it with ``lstmkit tag`` in a fresh
process and reports that process's peak resident memory (``wait4``'s ``ru_maxrss``), next to a one-sentence input
as the baseline. ``--one-piece`` tags the line as one sequence (the window size set beyond the line), as before
windows existed.

    PYTHONPATH=src python benchmarks/bench_long_line.py RUN_DIR [--words 200000] [--one-piece] [--pretokenized]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from lstmkit.data import find_conllu_splits, read_conllu

RUN = ("import sys\nimport lstmkit.tagger.api as api\n"
       "if sys.argv[1] == 'one-piece':\n    api.WINDOW_WORDS = 10**9\n"
       "from lstmkit.cli import main\nsys.exit(main(sys.argv[2:]))\n")


def peak_mb(argv: list[str], mode: str) -> tuple[float, float]:
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1] / "src"))
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-c", RUN, mode, *argv], env=env, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    if status != 0:
        raise RuntimeError(f"lstmkit {' '.join(argv)} failed ({status})")
    return usage.ru_maxrss / 1024, time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir")
    parser.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared/data/ud_english_ewt"))
    parser.add_argument("--words", type=int, default=200_000)
    parser.add_argument("--one-piece", action="store_true")
    parser.add_argument("--pretokenized", action="store_true")
    parser.add_argument("--threads", default="1")
    args = parser.parse_args(argv)
    forms = [form for s in read_conllu(find_conllu_splits(args.data, required=("test",))["test"]) for form in s.forms]
    line = " ".join(forms[i % len(forms)] for i in range(args.words))
    mode = "one-piece" if args.one_piece else "windows"
    extra = ["--pretokenized"] if args.pretokenized else []
    with tempfile.TemporaryDirectory() as scratch:
        short, long = Path(scratch) / "short.txt", Path(scratch) / "long.txt"
        short.write_text(" ".join(forms[:20]) + "\n", encoding="utf-8")
        long.write_text(line + "\n", encoding="utf-8")
        common = ["--threads", args.threads, *extra]
        base, _ = peak_mb(["tag", args.run_dir, "--input", str(short), *common], mode)
        peak, seconds = peak_mb(["tag", args.run_dir, "--input", str(long), *common], mode)
    print(f"{args.words} words on one line ({mode}{', pretokenized' if extra else ''}): peak {peak:.0f} MB, "
          f"one short line: {base:.0f} MB; {1024 * (peak - base) / args.words:.2f} KB per word above it; {seconds:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
