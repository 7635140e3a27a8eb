"""Tagging speed of a trained tagger: words per second of ``lstmkit tag`` and of ``tag_sentences``.

    python benchmarks/bench_tagger.py RUN_DIR [--data ../shared/data/ud_english_ewt] [--repeat 5] [--threads 2]

Three measurements on the treebank's test split, each the median of ``--repeat`` runs after a warm-up:

1. ``tag_sentences`` in this process, for every LSTM implementation (``auto`` is what the commands use; the others
   are its peers, measured on the same model in the same process, with the ratio to ``auto``).
2. ``lstmkit tag RUN_DIR --input test.conllu`` as a real command: words per second of the tagging itself (the
   ``--stats`` line) and of the whole command, from process start (Python and torch imports, model loading,
   reading, writing) to exit.
3. The same command on the test split as plain text (one sentence per line).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from lstmkit.data import find_conllu_splits, read_conllu
from lstmkit.tagger import Tagger
from lstmkit.tagger.api import load_tagger, tag_sentences

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = Path(os.environ.get("LSTMKIT_DATA", REPO.parent / "shared" / "data")) / "ud_english_ewt"


def median_seconds(function, repeat: int) -> float:
    function()  # warm-up
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def with_impl(tagger, impl: str):
    config = dataclasses.replace(tagger.config.model, impl=impl)
    model = Tagger(config, len(tagger.vocabs.words), len(tagger.vocabs.chars), len(tagger.vocabs.tags))
    model.load_state_dict(tagger.model.state_dict())
    return dataclasses.replace(tagger, model=model.eval())


def run_command(run_dir: str, path: Path, threads: int) -> tuple[float, float]:
    """(seconds of the whole command, words per second of its tagging as --stats reports it)."""
    environment = {**os.environ, "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": str(threads)}
    command = [sys.executable, "-m", "lstmkit.cli", "tag", run_dir, "--input", str(path), "--output", os.devnull,
               "--stats"]
    started = time.perf_counter()
    finished = subprocess.run(command, capture_output=True, text=True, env=environment, check=True)
    seconds = time.perf_counter() - started
    match = re.search(r"\(([\d,]+) words/s\)", finished.stderr)
    return seconds, float(match.group(1).replace(",", "")) if match else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir")
    parser.add_argument("--data", default=str(DEFAULT_DATA), help="treebank folder with a *test*.conllu file")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    test_file = find_conllu_splits(args.data, required=("test",))["test"]
    sentences = read_conllu(test_file)
    words = sum(len(sentence) for sentence in sentences)
    tagger = load_tagger(args.run_dir)
    print(f"{test_file.name}: {len(sentences)} sentences, {words} words; {args.threads} threads; "
          f"torch {torch.__version__}; median of {args.repeat}")

    print("\n1. tag_sentences in-process, by LSTM implementation")
    results = {}
    for impl in ("auto", "fused", "native", "reference"):
        candidate = tagger if impl == "auto" else with_impl(tagger, impl)
        seconds = median_seconds(lambda: tag_sentences(candidate, sentences), args.repeat)
        results[impl] = seconds
        print(f"   {impl:<10} {seconds * 1000:8.1f} ms  {words / seconds:10,.0f} words/s  "
              f"x{results['auto'] / seconds:.2f} of auto's speed")

    with tempfile.TemporaryDirectory() as scratch:
        plain = Path(scratch) / "test.txt"
        plain.write_text("".join(" ".join(sentence.forms) + "\n" for sentence in sentences), encoding="utf-8")
        for number, (label, path) in enumerate((("CoNLL-U", test_file), ("plain text", plain)), start=2):
            runs = [run_command(args.run_dir, path, args.threads) for _ in range(args.repeat)]
            whole = statistics.median(seconds for seconds, _ in runs)
            tagging = statistics.median(rate for _, rate in runs)
            print(f"\n{number}. lstmkit tag --input {label}")
            print(f"   tagging (--stats)  {tagging:10,.0f} words/s")
            print(f"   whole command      {words / whole:10,.0f} words/s  ({whole:.2f} s from start to exit)")


if __name__ == "__main__":
    main()
