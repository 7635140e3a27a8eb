"""Training on two processes with DistributedDataParallel (gloo, CPU), started by the tests themselves.

- tests/train/ddp_worker.py, started twice with torchrun's variables, runs every in-process scenario in one
  process group: one DDP step equals one process with the doubled batch; train-lm and train-tagger, whole and
  stopped + resumed; a --max-seconds run.
- ``torchrun --nproc_per_node 2 -m lstmkit train-lm``: the documented command, rank 0 alone reporting; its run
  resumed with another number of processes: refused, or continued when the global batch is kept.
- a rank killed with SIGKILL: the other exits non-zero with one line, well within the process-group timeout.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from helpers import REPO
from lm_corpus import write_word_corpus
from lstmkit.cli import main
from lstmkit.train import load_checkpoint, read_metrics
from lstmkit.train.distributed import Distributed, rank_seed

WORKER = Path(__file__).with_name("ddp_worker.py")
TINY_LM = ["--model.embedding_size=8", "--model.hidden_size=12", "--data.batch_size=2", "--data.bptt=6",
           "--data.eval_batch_size=2", "--train.progress=false", "--train.log_every=1"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rank_env(rank: int, port: int, **extra: str) -> dict[str, str]:
    """What torchrun sets for rank ``rank`` of 2 on this machine."""
    env = dict(os.environ, MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank),
               WORLD_SIZE="2", LOCAL_WORLD_SIZE="2", PYTHONPATH=str(REPO / "src"), **extra)
    return env


def start_ranks(argv: list[str], port: int, **extra: str) -> list[subprocess.Popen]:
    return [subprocess.Popen([sys.executable, *argv], env=rank_env(rank, port, **extra), cwd=REPO,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for rank in range(2)]


def finish(processes: list[subprocess.Popen], timeout: float) -> list[tuple[int, str, str]]:
    out = []
    try:
        for process in processes:
            stdout, stderr = process.communicate(timeout=timeout)
            out.append((process.returncode, stdout, stderr))
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.communicate()
    return out


@pytest.fixture(scope="module")
def worker(tmp_path_factory) -> tuple[Path, dict]:
    work = tmp_path_factory.mktemp("ddp")
    results = finish(start_ranks([str(WORKER), str(work)], free_port()), timeout=240)
    for rank, (code, _, stderr) in enumerate(results):
        assert code == 0, f"rank {rank} failed:\n{stderr[-3000:]}"
    return work, json.loads((work / "result.json").read_text())


def test_one_ddp_step_equals_one_process_with_the_global_batch(worker) -> None:
    _, result = worker
    assert result["world_size"] == 2 and result["dtype"] == "torch.float64"
    assert result["params_moved"] > 1e-2  # the steps did change the weights
    assert result["max_param_diff"] < 1e-6  # 2 ranks x batch 2 == 1 process x batch 4 (two steps, clipping on)
    assert result["ddp_valid_loss"] == pytest.approx(result["one_valid_loss"], rel=1e-12, abs=0)


def test_rank_zero_alone_checkpoints_and_logs(worker) -> None:
    work, result = worker
    calls_rank0, calls_rank1 = result["checkpoint_calls"]
    assert calls_rank0 == [2, 4, 6, 8, 2, 4, 6, 8] and calls_rank1 == []
    steps = [record["step"] for record in read_metrics(work / "lm_whole") if record["split"] == "train"]
    assert steps == list(range(1, 9))  # one record per step: rank 1 wrote none


@pytest.mark.parametrize("name", ["lm", "tagger"])
def test_resume_with_the_same_ranks_is_exact(worker, name) -> None:
    work, _ = worker
    whole, half = load_checkpoint(work / f"{name}_whole"), load_checkpoint(work / f"{name}_half")
    assert whole.extra["loop"]["step"] == half.extra["loop"]["step"] > 0
    for key, value in whole.model_state.items():
        assert torch.equal(value, half.model_state[key]), key
    record = whole.optimizer_state["distributed"]
    assert record["world_size"] == 2 and len(record["rng"]) == 2
    assert not torch.equal(record["rng"][0]["torch"], record["rng"][1]["torch"])  # each rank its own stream
    for a, b in zip(whole.optimizer_state["optimizer"]["state"].values(),
                    half.optimizer_state["optimizer"]["state"].values()):
        for key in a:
            assert torch.equal(a[key], b[key]), key  # momentum / Adam moments / NT-ASGD averages

    def curve(run, split):
        return [(r["step"], r["loss"]) for r in read_metrics(work / run) if r["split"] == split]

    assert curve(f"{name}_whole", "train") == curve(f"{name}_half", "train")
    assert curve(f"{name}_whole", "valid") == curve(f"{name}_half", "valid")
    if name == "lm":
        assert whole.optimizer_state["optimizer"]["ntasgd"]["averaging"]  # NT-ASGD switched under DDP


def test_the_tagger_refuses_a_resume_with_another_number_of_processes(worker, capsys) -> None:
    work, _ = worker
    before = load_checkpoint(work / "tagger_half").extra["loop"]
    capsys.readouterr()
    code = main(["train-tagger", "--resume", str(work / "tagger_half"), "--loop.max_steps=9"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "trained with 2 processes; resume it with the same number (torchrun --nproc_per_node 2), not 1" in err
    assert load_checkpoint(work / "tagger_half").extra["loop"] == before


def test_timer_checkpoints_are_taken_by_every_rank_at_the_same_step(worker) -> None:
    _, result = worker
    assert result["timer_checkpoints"] == [1, 2, 3, 4, 5, 6, 7]  # every step: the timer at odd ones, evaluations


def test_max_seconds_stops_every_rank_at_the_same_step(worker) -> None:
    _, result = worker
    assert result["timed_reason"] == "max_seconds"
    first, second = result["timed_steps"]
    assert first == second > 0


def test_torchrun_train_lm_and_resume_with_another_number_of_processes(tmp_path, capsys) -> None:
    corpus = write_word_corpus(tmp_path / "corpus")
    run = tmp_path / "run"
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                "--master_port", str(free_port()), "-m", "lstmkit"]
    done = subprocess.run([*torchrun, "train-lm", "--data", str(corpus), "--run-dir", str(run), *TINY_LM,
                           "--train.max_steps=4"], cwd=REPO, capture_output=True, text=True, timeout=240,
                          env=dict(os.environ, PYTHONPATH=str(REPO / "src")))
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("distributed: 2 processes (gloo, 2 on this machine)") == 1
    assert done.stdout.count("stopped (max_steps)") == 1  # rank 0 alone reports
    assert load_checkpoint(run).extra["loop"]["step"] == 4

    capsys.readouterr()
    code = main(["train-lm", "--resume", str(run), "--train.max_steps=6"])  # one process x batch 2: refused
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "trained with 2 process(es) x data.batch_size 2 = 4 streams" in err and "--data.batch_size=4" in err

    code = main(["train-lm", "--resume", str(run), "--train.max_steps=6", "--data.batch_size=4"])
    assert code == 0  # the same global batch: the run continues in one process
    resumed = load_checkpoint(run)
    assert resumed.extra["loop"]["step"] == 6 and "distributed" not in resumed.optimizer_state


def test_a_killed_rank_makes_the_other_exit_with_one_line(tmp_path) -> None:
    corpus = write_word_corpus(tmp_path / "corpus")
    run = tmp_path / "run"
    ranks = start_ranks(["-m", "lstmkit", "train-lm", "--data", str(corpus), "--run-dir", str(run), *TINY_LM,
                         "--max-seconds", "600"], free_port(), LSTMKIT_DIST_TIMEOUT="60")
    try:
        deadline = time.monotonic() + 120
        while not any(r.get("split") == "train" for r in read_metrics(run)):  # training is under way
            assert time.monotonic() < deadline and all(p.poll() is None for p in ranks), "training did not start"
            time.sleep(0.2)
        ranks[1].send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
        (code, _, stderr), _ = finish(ranks, timeout=60)
        waited = time.monotonic() - killed_at
    finally:
        for process in ranks:
            if process.poll() is None:
                process.kill()
    assert code == 1 and waited < 60
    lines = stderr.strip().splitlines()
    assert lines[-1].startswith("lstmkit train-lm: error: rank 0 of 2: lost contact with the other processes")


def test_the_one_process_context_changes_nothing() -> None:
    one = Distributed()
    assert not one.enabled and one.is_main
    module = torch.nn.Linear(2, 2)
    assert one.wrap(module) is module
    assert one.sum([1.5, 2]) == [1.5, 2.0]
    assert one.agree_step(0.25, {"loss": 2.0, "tokens": 8}, None, True) == (0.25, {"loss": 2.0, "tokens": 8}, None,
                                                                           True)
    assert one.shard_batches(["a", "b", "c"]) == ["a", "b", "c"]
    assert one.attach_rank_states({"optimizer": {}}) == {"optimizer": {}}


def test_shares_of_columns_and_batches() -> None:
    ranks = [Distributed(rank=r, world_size=3) for r in range(3)]
    assert [list(range(10))[d.shard(10)] for d in ranks] == [[0, 1, 2, 3], [4, 5, 6], [7, 8, 9]]
    assert [d.shard(2) for d in ranks][2] == slice(2, 2)  # fewer columns than ranks: one rank has none
    plans = [d.shard_batches(list("abcde")) for d in ranks]  # torch's DistributedSampler, padded to 2 each
    assert plans == [["a", "d"], ["b", "e"], ["c", "a"]]
    assert rank_seed(7, 0) == 7 and len({rank_seed(7, r) for r in range(4)}) == 4


def test_threads_default_to_the_cores_shared_among_ranks(monkeypatch) -> None:
    monkeypatch.setattr("lstmkit.train.distributed.available_cores", lambda: 8)
    two = Distributed(rank=0, world_size=4, local_world_size=2, backend="gloo")
    assert two.set_threads(0) == 4 and torch.get_num_threads() == 4
    assert two.set_threads(3) == 3
    assert "2 x 3 threads on 8 cores;" in two.describe(3)
    assert "more threads than cores" in two.describe(5)
    assert Distributed().set_threads(0) == torch.get_num_threads()  # one process: torch's own choice
