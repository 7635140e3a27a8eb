"""The benchmark scripts still run and report what they claim to (tiny cells; the figures live in RESULTS.md)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from helpers import REPO
from lstmkit.ops import fused_backend, use_fused_backend
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
    for peer in ("torch", "auto", "native", "fused", "fused-python", "reference", "cell-loop"):
        assert {(peer, "training"), (peer, "inference")} <= peers
    assert all(r["ms"] > 0 for r in rows)
    torch_row = next(r for r in rows if r["peer"] == "torch" and r["mode"] == "training")
    assert torch_row["vs_torch"] == 1.0


def test_bench_lstm_variants_table(tmp_path):
    report = tmp_path / "variants.json"
    stdout = _run([str(BENCH / "bench_lstm.py"), "--variants", "--options", "weight_dropout,all", "--modes",
                   "training,eval", "--cases", "T=35 B=16 H=128 L=1", "--repeats", "1", "--budget", "0.1", "--threads",
                   "1", "--json", str(report)])
    lines = [line.split() for line in stdout.splitlines() if line.startswith(("weight_dropout", "all"))]
    assert [(words[0], words[5]) for words in lines] == [
        ("weight_dropout", "training"), ("weight_dropout", "eval"), ("all", "training"), ("all", "eval")]
    rows = json.loads(report.read_text())["rows"]
    assert {r["peer"] for r in rows} == {"torch", "lstmkit", "user-loop"}
    assert {r["mode"] for r in rows} == {"training", "eval"}


def test_bench_variant_peers_switch_the_options_on(monkeypatch):
    """"all" is the five options of the fused operator at once, in lstmkit.LSTM and in the Python-loop peer; the
    eval mode times the modules in eval mode (no masks drawn)."""
    import lstmkit

    monkeypatch.syspath_prepend(str(BENCH))
    import bench_lstm

    case = bench_lstm.Case(3, 2, 4, option="all")
    module, _ = bench_lstm.build("lstmkit", case)
    assert module.layer_norm and module.peephole and module.cell_clip == 3.0
    assert module.zoneout == (0.25, 0.25) and module.recurrent_dropout == 0.25
    loop, make = bench_lstm.build("user-loop", case)
    assert loop.cells[0].on == {"recurrent_dropout", "zoneout", "layer_norm", "peephole", "cell_clip"}
    assert hasattr(loop.cells[0], "ln_c") and hasattr(loop.cells[0], "weight_co")
    bench_lstm.step_fn(module, make, "eval")()
    assert not module.training
    with pytest.raises(ValueError, match="mode must be one of"):
        bench_lstm.step_fn(lstmkit.LSTM(4, 4), make, "train")


def test_bench_lstm_input_grad_trains_the_input_too(monkeypatch):
    """--input-grad: the training step also computes the input's gradient (bench_lstm's training cells leave it
    out by default, which spares lstmkit's backward one GEMM that torch's computes anyway)."""
    monkeypatch.syspath_prepend(str(BENCH))
    import bench_lstm

    case = bench_lstm.Case(3, 2, 4)
    for flag in (False, True):
        monkeypatch.setattr(bench_lstm, "INPUT_GRAD", flag)
        module, make = bench_lstm.build("fused", case)
        bench_lstm.step_fn(module, make, "training")()
        assert (make().grad is not None) == flag
    stdout = _run([str(BENCH / "bench_lstm.py"), "--input-grad", "--cases", "T=35 B=16 H=128 L=1", "--peers",
                   "torch,fused", "--repeats", "1", "--budget", "0.1", "--no-memory", "--threads", "1"])
    assert "input with grad" in stdout


def test_bench_lm_measures_both_sides(tmp_path):
    corpus = write_word_corpus(tmp_path / "corpus", train_lines=3000)
    stdout = _run([str(BENCH / "bench_lm.py"), "--data", str(corpus), "--sizes", "small", "--threads", "1", "--quick",
                   "--precisions", "float32", "--malloc", "keep"])
    assert "malloc keep" in stdout
    assert "peer" in stdout and "x the peer" in stdout


def _profiled_gemm_flops(module, x) -> int:
    """FLOPs of every torch.mm / addmm / addmm_ of one forward + backward, from the shapes the profiler records."""
    from torch.profiler import profile

    with profile(record_shapes=True) as prof:
        out, _ = module(x)
        out.sum().backward()
    flops = 0
    for event in prof.events():
        if event.name in ("aten::mm", "aten::addmm", "aten::addmm_"):
            (M, K), (_, N) = event.input_shapes[:2] if event.name == "aten::mm" else event.input_shapes[1:3]
            flops += 2 * M * K * N
    return flops


@pytest.mark.parametrize("proj, input_grad", [(0, False), (0, True), (3, True)])
def test_ceiling_counts_every_gemm_of_a_training_step(proj, input_grad, monkeypatch):
    """bench_ceiling's list of products is the fused path's: with public matmuls every product is an mm/addmm the
    profiler sees, and their FLOPs add up to the list's."""
    import lstmkit
    from lstmkit.ops import fused

    monkeypatch.syspath_prepend(str(BENCH))
    from bench_ceiling import training_gemms

    T, B, I, H = 5, 3, 4, 6
    module = lstmkit.LSTM(I, H, proj_size=proj, impl="fused")
    x = torch.randn(T, B, I, requires_grad=input_grad)
    expected = sum(g.flops for g in training_gemms(T, B, I, H, proj, input_grad=input_grad))
    # the Python kernel: the C++ one calls its per-step GEMMs in BLAS directly, out of the profiler's sight (the
    # two kernels do the same products, test_cpp_extension checks they compute the same)
    with fused.use_matmul("public"), use_fused_backend("python"):
        assert _profiled_gemm_flops(module, x) == expected


def test_bench_ceiling_reports_floor_and_peers(tmp_path):
    report = tmp_path / "ceiling.json"
    picture = tmp_path / "ceiling.png"
    stdout = _run([str(BENCH / "bench_ceiling.py"), "--quick", "--options", "peephole", "--repeats", "1", "--budget",
                   "0.1", "--threads", "1", "--json", str(report), "--plot", str(picture)])
    assert "possible" in stdout and "peephole loop" in stdout
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    redrawn = tmp_path / "again.png"
    _run([str(BENCH / "bench_ceiling.py"), "--replot", str(report), "--plot", str(redrawn)])
    assert redrawn.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    cells = json.loads(report.read_text())["cells"]
    assert [c["name"] for c in cells] == ["T=35 B=16 H=512 L=1", "T=35 B=64 H=512 L=1 proj=256"]
    for cell in cells:
        assert cell["floor_ms"] > 0
        # the floor is below every peer's time: no implementation does the GEMMs and nothing else faster than that.
        # With one sample each on a loaded machine a burst during the floor's GEMMs can put a peer that runs near the
        # floor (the fused kernels, 1.1-1.4x of it) just under it, so those get a margin; the Python loops over a cell
        # (2-8x the floor wherever measured) must be above it outright
        assert all(ms > 0.7 * cell["floor_ms"] for ms in cell["ms"].values())
        assert all(ms > cell["floor_ms"] for peer, ms in cell["ms"].items() if "loop" in peer)
    assert set(cells[0]["ms"]) == {"gemm-step", "torch", "fused", "fused-python", "cell-loop", "lstmkit:peephole",
                                   "user-loop:peephole"}
    assert set(cells[1]["ms"]) == {"gemm-step", "torch", "auto", "fused"}
    assert "lstmkit fused (" in stdout and ") / floor" in stdout  # issue 11's ratio to the floor
    # the floor's products sampled as a step with the peers, and lstmkit's ratio to it, in both cells
    assert stdout.count("GEMM step sampled / floor") == 2 and stdout.count("lstmkit / GEMM step") == 2


def test_gemm_step_runs_each_product_of_the_floor(monkeypatch):
    """The sampled GEMM step makes exactly the floor's products: each of them `count` times, by the GEMM the floor
    chose for its shape (counted here with the profiler, which sees the public mm calls)."""
    from torch.profiler import profile

    monkeypatch.syspath_prepend(str(BENCH))
    from bench_ceiling import gemm_floor, gemm_step_fn, training_gemms

    gemms = training_gemms(3, 2, 4, 5, 0, input_grad=False)
    cache: dict = {}
    gemm_floor(gemms, repeats=1, cache=cache)
    # the public mm candidates only, so that the profiler counts every product (oneDNN's op is another event name)
    for key, (seconds, how) in list(cache.items()):
        cache[key] = (seconds, "mkl mm(a, b)")
    step = gemm_step_fn(gemms, cache)
    with profile(record_shapes=True) as prof:
        step()
    flops = sum(2 * M * K * N for e in prof.events() if e.name == "aten::mm"
                for (M, K), (_, N) in [e.input_shapes[:2]])
    assert flops == sum(g.flops for g in gemms)


def test_bench_auto_reports_both_sides_and_the_choice(tmp_path):
    report = tmp_path / "auto.json"
    stdout = _run([str(BENCH / "bench_auto.py"), "--kinds", "packed,proj", "--modes", "inference", "--hidden", "16",
                   "--batch", "1,3", "--steps", "4", "--repeats", "1", "--threads", "1", "--json", str(report)])
    assert "auto took" in stdout
    rows = json.loads(report.read_text())["rows"]
    assert [(r["kind"], r["B"]) for r in rows] == [("packed", 1), ("packed", 3), ("proj", 1), ("proj", 3)]
    assert all(r["torch_ms"] > 0 and r["fused"] > 0 and r["auto"] > 0 for r in rows)
    # tiny steps without grad: torch's loop with the Python kernel; the C++ kernel takes batches of 3 sequences
    expected = {("packed", 1): "native", ("packed", 3): "native", ("proj", 1): "native", ("proj", 3): "native"}
    if fused_backend() == "cpp":
        expected.update({("packed", 3): "fused", ("proj", 1): "fused", ("proj", 3): "fused"})
    assert {(r["kind"], r["B"]): r["auto_took"] for r in rows} == expected


def test_bench_auto_cells_times_each_impl(tmp_path):
    report = tmp_path / "cells.json"
    stdout = _run([str(BENCH / "bench_auto.py"), "--cells", "--hidden", "8", "--batch", "2", "--steps", "3",
                   "--modes", "training", "--repeats", "1", "--threads", "1", "--json", str(report)])
    assert "torch.nn.LSTMCell loop's" in stdout
    rows = json.loads(report.read_text())["cells"]
    assert {r["option"] for r in rows} == {"layer_norm", "peephole", "zoneout", "cell_clip"}
    assert all(r[impl] > 0 for r in rows for impl in ("fused", "reference", "auto"))


def test_bench_classify_reports_sentences_per_second_against_the_peer():
    stdout = _run([str(BENCH / "bench_classify.py"), "--threads", "1", "--repeats", "1", "--limit", "40",
                   "--data", str(REPO / "no-such-folder")])
    assert "40 sentences of random sentences" in stdout
    lines = {line.split()[0] + " " + line.split()[1]: line for line in stdout.splitlines() if "sentences/s" in line}
    assert set(lines) == {"lstmkit float32", "lstmkit int8", "lstmkit float32/w1", "lstmkit int8/w1", "lstmkit auto",
                          "module float32", "peer float32", "peer int8"}
    for side in ("lstmkit float32", "peer float32"):  # the fast path and torch's LSTM compute the module's function
        assert lines[side].endswith("predictions equal to the module's on 40/40"), lines[side]
    assert "x the float32 peer" in lines["lstmkit int8"]


def test_bench_classify_floor_times_the_products_alone():
    stdout = _run([str(BENCH / "bench_classify.py"), "--floor", "--repeats", "1", "--limit", "30",
                   "--data", str(REPO / "no-such-folder")])
    lines = [line for line in stdout.splitlines() if "GFLOP/s of the products" in line]
    assert [line.split("  ")[1].strip() for line in lines] == [
        "classify_texts float32, 1 worker", "fast path logits only", "its matrix products only"]
    assert "the matrix products are" in stdout and "GFLOP" in stdout.splitlines()[0]

def test_bench_ddp_runs_two_processes(tmp_path):
    corpus = write_word_corpus(tmp_path / "corpus", train_lines=400)
    stdout = _run([str(BENCH / "bench_ddp.py"), "--data", str(corpus), "--layouts", "2x1", "--rounds", "1",
                   "--steps", "1", "--warmup", "0", "--batch", "4"])
    assert "| 2x1 |" in stdout and "gradient all-reduced per step" in stdout and "that all-reduce alone" in stdout


def test_bench_raw_text_scores_words_by_their_place_in_the_text():
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_raw_text", BENCH / "bench_raw_text.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    text = "The dog can't run."
    gold = ["The", "dog", "ca", "n't", "run", "."]
    tags = ["DET", "NOUN", "AUX", "PART", "VERB", "PUNCT"]
    # split at spaces: "can't" and "run." match no gold word; the rest are tagged right
    assert module.score([text], [gold], [tags], [text.split()], [["DET", "NOUN", "AUX", "VERB"]]) == (2, 2, 6)
    # the treebank cut: every word found; one tag wrong
    guesses = ["DET", "NOUN", "AUX", "PART", "NOUN", "PUNCT"]
    assert module.score([text], [gold], [tags], [gold], [guesses]) == (5, 6, 6)


def test_bench_pause_keeps_real_time_runs_under_the_kernels_throttle(monkeypatch):
    """Under chrt -f the kernel stalls a process that ran more than sched_rt_runtime_us of a period; the pause
    bench_lstm.measure leaves after each call of 20 ms or more keeps every aligned period's run time under that
    limit, for calls up to 50 ms under it at any phase, and is 0 under an ordinary policy or without a limit."""
    import os

    monkeypatch.syspath_prepend(str(BENCH))
    import bench_lstm

    pause = bench_lstm.rt_throttle_pause
    assert pause(0.2, os.SCHED_OTHER, 950_000, 1_000_000) == 0.0
    assert pause(0.2, os.SCHED_FIFO, -1, 1_000_000) == 0.0
    assert pause(0.2, os.SCHED_RR, 1_000_000, 1_000_000) == 0.0
    assert pause(0.019, os.SCHED_FIFO, 950_000, 1_000_000) == 0.0  # small cells' calls: no pause
    for runtime in (950_000, 800_000):
        for run in (r for r in (0.02, 0.05, 0.2, 0.35, 0.5, 0.7, 0.9) if r <= runtime / 1e6 - 0.05):
            idle = pause(run, os.SCHED_FIFO, runtime, 1_000_000)
            cycle, worst = run + idle, 0.0
            for phase in range(0, 1000):  # where the period starts within a cycle, in steps of cycle / 1000
                start, busy = -cycle * phase / 1000, 0.0
                while start < 1.0:
                    busy += max(0.0, min(start + run, 1.0) - max(start, 0.0))
                    start += cycle
                worst = max(worst, busy)
            assert worst < runtime / 1e6, (runtime, run, worst)


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present: tests/nn/test_cuda.py runs bench_cuda.py there")
def test_bench_cuda_says_when_there_is_no_gpu():
    out = subprocess.run([sys.executable, str(BENCH / "bench_cuda.py"), "--quick"], capture_output=True, text=True,
                         timeout=120, cwd=REPO)
    assert out.returncode == 1 and "no CUDA device" in out.stdout, (out.returncode, out.stdout, out.stderr[-500:])
