"""lstmkit.runtime: keeping freed memory in the process (glibc's mallopt), and the commands' switch for it."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

from helpers import REPO
from lstmkit.runtime import keep_freed_memory

GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"

# Allocates and frees a 96 MB tensor; prints how much of it is still resident afterwards (MB).
PROBE = """
import sys, torch
def rss():
    with open('/proc/self/status') as f:
        return next(int(line.split()[1]) for line in f if line.startswith('VmRSS')) / 1024
if sys.argv[1] == 'keep':
    from lstmkit.runtime import keep_freed_memory
    assert keep_freed_memory()
before = rss()
block = torch.ones(96 << 18)  # 96 MB of float32, every page touched
del block
print(round(rss() - before))
"""


def _resident_after_free(mode: str) -> int:
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True,
                         env={"PYTHONPATH": str(REPO / "src"), "PATH": "/usr/bin:/bin"})
    return int(out.stdout.strip())


@pytest.mark.skipif(not GLIBC, reason="mallopt is glibc's; elsewhere keep_freed_memory changes nothing")
def test_freed_block_stays_in_the_process_only_when_asked():
    assert _resident_after_free("default") < 16, "glibc's default: a 96 MB block is mmapped and unmapped on free"
    assert _resident_after_free("keep") > 80, "with keep_freed_memory the block stays in the heap for reuse"


def test_thresholds_must_be_positive():
    with pytest.raises(ValueError, match="thresholds must be positive byte counts, got mmap_threshold=0"):
        keep_freed_memory(mmap_threshold=0)


def test_commands_reject_a_bad_setting_in_one_line():
    import os

    env = dict(os.environ, LSTMKIT_MALLOC="sometimes", PYTHONPATH=str(REPO / "src"))
    out = subprocess.run([sys.executable, "-m", "lstmkit.cli", "plot", "nowhere"], capture_output=True, text=True,
                         env=env)
    assert out.returncode == 2
    assert out.stderr.strip() == "lstmkit plot: error: LSTMKIT_MALLOC must be 'keep' or 'default', got 'sometimes'"


def test_release_workspaces_frees_the_kernel_pool_idle_buffers():
    """lstmkit.runtime.release_workspaces() gives back the C++ kernel's idle pooled buffers (and says how many bytes
    they were); buffers still referenced stay."""
    import torch

    from lstmkit.ops import cpp_extension_error
    from lstmkit.runtime import release_workspaces

    if cpp_extension_error() is not None:
        assert release_workspaces() == 0
        return
    from lstmkit.ops import _C

    release_workspaces()
    held_before = _C.workspace_pool_stats()[0]  # buffers other live tensors still hold
    kept = _C.pooled_empty([1 << 19], torch.float32)  # 2 MiB: pooled
    gone = _C.pooled_empty([1 << 19], torch.float64)  # 4 MiB
    del gone
    assert _C.workspace_pool_stats()[:2] == (held_before + (6 << 20), 4 << 20)
    assert release_workspaces() == 4 << 20
    assert _C.workspace_pool_stats()[:2] == (held_before + (2 << 20), 0)
    del kept
    assert release_workspaces() == 2 << 20
