"""The benchmark scripts still run and report what they claim to (tiny cells; the figures live in RESULTS.md)."""

from __future__ import annotations

import json
import subprocess
import sys

from helpers import REPO
from lm_corpus import write_word_corpus

BENCH = REPO / "benchmarks"


def _run(args: list[str]) -> str:
    out = subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=300, cwd=REPO)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


def test_bench_lstm_times_every_peer_against_torch(tmp_path):
    report = tmp_path / "core.json"
    stdout = _run([str(BENCH / "bench_lstm.py"), "--cases", "T=35 B=16 H=128 L=1", "--repeats", "1", "--budget",
                   "0.1", "--no-memory", "--threads", "1", "--malloc", "keep", "--json", str(report)])
    assert "malloc keep" in stdout
    rows = json.loads(report.read_text())["rows"]
    peers = {(r["peer"], r["mode"]) for r in rows if r["name"] == "T=35 B=16 H=128 L=1"}
    for peer in ("torch", "auto", "native", "fused", "reference", "cell-loop"):
        assert {(peer, "training"), (peer, "inference")} <= peers
    assert all(r["ms"] > 0 for r in rows)
    torch_row = next(r for r in rows if r["peer"] == "torch" and r["mode"] == "training")
    assert torch_row["vs_torch"] == 1.0


def test_bench_lstm_variants_table(tmp_path):
    report = tmp_path / "variants.json"
    stdout = _run([str(BENCH / "bench_lstm.py"), "--variants", "--options", "weight_dropout,layer_norm", "--cases",
                   "T=35 B=16 H=128 L=1", "--repeats", "1", "--budget", "0.1", "--threads", "1", "--json", str(report)])
    lines = [line for line in stdout.splitlines() if line.startswith(("weight_dropout", "layer_norm"))]
    assert len(lines) == 2
    rows = json.loads(report.read_text())["rows"]
    assert {r["peer"] for r in rows} == {"torch", "lstmkit", "user-loop"}


def test_bench_lm_measures_both_sides(tmp_path):
    corpus = write_word_corpus(tmp_path / "corpus", train_lines=3000)
    stdout = _run([str(BENCH / "bench_lm.py"), "--data", str(corpus), "--sizes", "small", "--threads", "1", "--quick",
                   "--precisions", "float32", "--malloc", "keep"])
    assert "malloc keep" in stdout
    assert "peer" in stdout and "x the peer" in stdout
