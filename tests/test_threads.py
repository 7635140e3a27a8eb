"""One thread option on every command (issue 14): --threads N and --threads=N, LSTMKIT_THREADS, and idle OpenMP
threads that sleep instead of spinning (set before torch loads)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from helpers import REPO
from lstmkit import runtime
from lstmkit.cli import COMMANDS, main

ENV = dict(os.environ, PYTHONPATH=str(REPO / "src"))
ENV.pop("OMP_WAIT_POLICY", None)
ENV.pop("GOMP_SPINCOUNT", None)
ENV.pop("KMP_BLOCKTIME", None)
ENV.pop("LSTMKIT_THREADS", None)
ENV.pop("OMP_NUM_THREADS", None)


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_takes_threads_in_both_spellings(command, capsys):
    for spelling in (["--threads", "1"], ["--threads=1"]):
        with pytest.raises(SystemExit) as stopped:
            main([command, *spelling, "--help"])
        assert stopped.value.code == 0
        assert "--threads N" in capsys.readouterr().out


@pytest.mark.parametrize("value", ["-1", "two", "1.5"])
def test_a_bad_thread_count_is_one_line_and_exit_2(value, capsys):
    assert main(["eval-lm", "nowhere", f"--threads={value}"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "argument --threads" in err


def test_the_environment_variable_is_checked(monkeypatch, capsys):
    monkeypatch.setenv("LSTMKIT_THREADS", "-3")
    assert main(["plot", "nowhere"]) == 2
    assert capsys.readouterr().err == "lstmkit plot: error: LSTMKIT_THREADS: must be >= 0 (0: torch's default), got -3\n"


def test_threads_reach_torch_in_a_command(tmp_path):
    """In a fresh process: the command module is imported (and torch loaded) only after the OpenMP environment is
    set, and --threads sets torch's count."""
    probe = (
        "import os, sys\n"
        "import lstmkit.cli as cli\n"
        "assert 'torch' not in sys.modules, 'importing the CLI must not load torch'\n"
        "code = cli.main(['eval-lm', sys.argv[1], '--threads', '1'])\n"
        "import torch\n"
        "print(code, os.environ['GOMP_SPINCOUNT'], os.environ['KMP_BLOCKTIME'], torch.get_num_threads())\n"
    )
    out = subprocess.run([sys.executable, "-c", probe, str(tmp_path / "none")], capture_output=True, text=True,
                         env=ENV, timeout=120)
    assert out.stdout.split() == ["2", "1000", "0", "1"], out.stderr


def test_a_wait_policy_the_user_set_is_kept():
    env = dict(ENV, OMP_WAIT_POLICY="ACTIVE")
    probe = ("import os, lstmkit.cli as c; c.prepare_openmp_environment(); "
             "print(os.environ['OMP_WAIT_POLICY'], os.environ.get('GOMP_SPINCOUNT', '-'))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=60)
    assert out.stdout.split() == ["ACTIVE", "-"], out.stderr


def test_default_is_torchs_count_unless_set(monkeypatch):
    import torch

    monkeypatch.delenv("LSTMKIT_THREADS", raising=False)
    before = torch.get_num_threads()
    assert runtime.set_thread_count(0) == before  # torch's own choice is kept
    monkeypatch.setenv("LSTMKIT_THREADS", "1")
    assert runtime.set_thread_count(0) == 1
    assert runtime.set_thread_count(2) == 2  # --threads wins over the environment
    torch.set_num_threads(before)


@pytest.mark.parametrize("field, value", [("threads", "-1"), ("threads", "true")])
def test_configs_reject_bad_thread_counts(field, value):
    from lstmkit.train import ConfigError
    from lstmkit.lm.task import make_config
    from lstmkit.tagger.task import TrainTaggerConfig
    from lstmkit.train.config import merge_from_args

    with pytest.raises(ConfigError, match="threads"):
        make_config("small", [f"--{field}={value}"])
    with pytest.raises(ConfigError, match="threads"):
        merge_from_args(TrainTaggerConfig(), [f"--{field}={value}"])


@pytest.mark.parametrize("cpus, omp, expected", [(8, None, 4), (8, "1", 4), (3, None, 1), (8, "3", None)])
def test_torchrun_ranks_share_the_cpus(cpus, omp, expected, monkeypatch):
    """Two ranks here: the usable CPUs divided between them, unless OMP_NUM_THREADS says otherwise (torchrun's own
    OMP_NUM_THREADS=1 counts as unset)."""
    import torch

    monkeypatch.setattr(runtime, "_usable_cpus", lambda: cpus)
    monkeypatch.delenv("LSTMKIT_THREADS", raising=False)  # the suite's conftest sets it
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    if omp is None:
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    else:
        monkeypatch.setenv("OMP_NUM_THREADS", omp)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(7)
        assert runtime.set_thread_count(0) == (7 if expected is None else expected)  # None: left as it was
    finally:
        torch.set_num_threads(threads)
