"""Process-wide settings: the memory allocator and CPU threads; opt-in for library users, on by default in the
``lstmkit`` commands.

Why it matters. On Linux, glibc's ``malloc`` serves large blocks from fresh ``mmap`` pages and hands them back to
the kernel on ``free``; it also returns free memory at the top of its heap once more than ``M_TRIM_THRESHOLD``
bytes are free there. A training step allocates and frees the same large tensors (gates, workspaces, gradients,
dropout masks) every step, so with the defaults each step may page-fault and zero-fill several megabytes again.
How much depends on the exact sequence of allocations: adding one 4 MB tensor per step (a dropped copy of
``weight_hh``) made a T=35, B=16, H=512 training step 12 % slower, and the language model's small preset trains
10 % faster with the settings below (single thread; benchmarks/RESULTS.md, "Memory allocator" and "Language
model").

:func:`keep_freed_memory` raises both thresholds with ``mallopt`` so freed blocks stay in the process and are
reused without page faults. The cost: memory freed by the process is returned to the kernel only when more than
``trim_threshold`` bytes are free at the heap's top, so the resident size stays near its peak. PyTorch's CPU
tuning guide gives the same reason for swapping in jemalloc or tcmalloc with ``LD_PRELOAD``; this needs no
extra library. Other C libraries (macOS, musl) are left alone.

The commands (``lstmkit train-lm`` and the rest) call it at start unless the environment variable
``LSTMKIT_MALLOC`` is ``default``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform

__all__ = [
    "keep_freed_memory",
    "malloc_setting_from_env",
    "release_workspaces",
    "prepare_openmp_environment",
    "parse_thread_count",
    "set_thread_count",
]

_M_TRIM_THRESHOLD = -1  # glibc's malloc.h
_M_MMAP_THRESHOLD = -3
MIB = 1 << 20


def keep_freed_memory(mmap_threshold: int = 256 * MIB, trim_threshold: int = 1024 * MIB) -> bool:
    """Tell glibc to serve blocks up to ``mmap_threshold`` bytes from its heap and to keep up to
    ``trim_threshold`` free bytes there instead of returning them to the kernel.

    Process-wide and not undone; call it once at the start of a training script. Returns ``True`` when the
    settings were applied, ``False`` where the C library is not glibc (nothing is changed then).
    """
    if mmap_threshold <= 0 or trim_threshold <= 0:
        raise ValueError(
            f"thresholds must be positive byte counts, got mmap_threshold={mmap_threshold}, "
            f"trim_threshold={trim_threshold}"
        )
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    ok_trim = mallopt(_M_TRIM_THRESHOLD, min(trim_threshold, 2**31 - 1)) == 1
    ok_mmap = mallopt(_M_MMAP_THRESHOLD, min(mmap_threshold, 2**31 - 1)) == 1
    return ok_trim and ok_mmap


def release_workspaces() -> int:
    """Free the idle buffers of the C++ kernel's workspace pool and return how many bytes it held idle.

    Without any setting, the kernel (``lstmkit.ops._C``) keeps its large buffers (gate pre-activations, cells, the
    gradient workspaces, zoneout masks: 1 MiB and more) after use and hands one out again only when no tensor refers
    to it any more, so that a training step does not page-fault them in afresh every time (at most 2 GiB in all, and
    no more bytes idle than the most it ever had in use at once). Call this after training to give that memory back; ``LSTMKIT_WORKSPACE_POOL=0`` turns the pool off.
    Returns 0 where the extension is not built.
    """
    from lstmkit.ops.layer_op import _cpp

    stats = getattr(_cpp, "workspace_pool_stats", None)
    if stats is None:
        return 0
    idle = stats()[1]
    _cpp.workspace_pool_clear()
    return idle


def malloc_setting_from_env() -> bool:
    """What the commands do at start: :func:`keep_freed_memory` unless ``LSTMKIT_MALLOC=default``."""
    choice = os.environ.get("LSTMKIT_MALLOC", "keep").strip().lower()
    if choice == "default":
        return False
    if choice != "keep":
        raise ValueError(f"LSTMKIT_MALLOC must be 'keep' or 'default', got {choice!r}")
    return keep_freed_memory()


# ------------------------------------------------------------------------------------------------------- threads
#
# Why the default below. Torch's CPU kernels run on an OpenMP team of torch.get_num_threads() threads (one per
# physical core by default). At the end of every parallel region the team meets at a barrier, and OpenMP's default
# wait policy lets an idle thread spin there before sleeping. When another CPU-bound process holds one of the cores,
# the thread sharing it is descheduled for whole time slices while its team mates spin and take the CPU from it: on a
# 2-core machine a 2-thread eval-lm went from 9.8 s to 121-148 s beside one busy process (issue 14). With idle threads
# going to sleep soon, torch's default count no longer collapses. Sleeping at once (OMP_WAIT_POLICY=PASSIVE) costs a
# wake-up at every parallel region, though: on a quiet machine it cut the language model's training from 11,826 to
# 7,309 tokens/s. A short spin before sleeping (GOMP_SPINCOUNT=1000 for GNU libgomp, which torch's Linux wheels use;
# KMP_BLOCKTIME=0 for Intel's runtime) kept 10,515 quiet and 5,467 beside a busy process (PASSIVE: 5,972; a 10,000
# spin: 2,926). benchmarks/RESULTS.md, "Threads beside a busy process". So the commands keep torch's count and shorten
# the spin. The runtime reads these only when it loads, at `import torch`, so the commands call
# :func:`prepare_openmp_environment` before importing torch.

THREADS_ENV = "LSTMKIT_THREADS"
"""Environment variable giving the commands' default ``--threads`` (an int >= 0; 0 or unset: torch's default)."""


def prepare_openmp_environment(environ: dict[str, str] | None = None) -> None:
    """Make idle OpenMP threads spin only briefly before they sleep: ``GOMP_SPINCOUNT=1000`` (libgomp) and
    ``KMP_BLOCKTIME=0`` (Intel's runtime), each only when the environment does not set it already, and neither
    when ``OMP_WAIT_POLICY`` is set (the user chose a policy).

    Call it before ``import torch`` (the OpenMP runtime reads these once, when it loads); later it changes nothing.
    """
    env = os.environ if environ is None else environ
    if env.get("OMP_WAIT_POLICY"):
        return
    env.setdefault("GOMP_SPINCOUNT", "1000")
    env.setdefault("KMP_BLOCKTIME", "0")


def parse_thread_count(text: str) -> int:
    """A ``--threads`` value: an int >= 0 (0: torch's default). Raises ValueError with a one-line reason otherwise."""
    try:
        value = int(str(text).strip())
    except ValueError:
        raise ValueError(f"expected a whole number of threads, got {text!r}") from None
    if value < 0:
        raise ValueError(f"must be >= 0 (0: torch's default), got {value}")
    return value


def _usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def local_processes() -> int:
    """Processes of this job on this machine: torchrun's ``LOCAL_WORLD_SIZE``, else 1."""
    try:
        return max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1))
    except ValueError:
        return 1


def set_thread_count(threads: int | None) -> int:
    """Set torch's intra-op thread count: ``threads`` when > 0; else ``$LSTMKIT_THREADS`` when set and > 0; else,
    for torchrun's ranks (several on this machine) with ``OMP_NUM_THREADS`` unset or torchrun's own 1, the usable
    CPUs divided among them (at least 1); else torch's default (one per physical core, or ``OMP_NUM_THREADS``).
    Returns the count in use. Imports torch (call :func:`prepare_openmp_environment` first)."""
    import torch

    if not threads:
        from_env = os.environ.get(THREADS_ENV, "").strip()
        if from_env:
            try:
                threads = parse_thread_count(from_env)
            except ValueError as error:
                raise ValueError(f"{THREADS_ENV}: {error}") from None
    processes = local_processes()
    if threads:
        torch.set_num_threads(threads)
    elif processes > 1 and os.environ.get("OMP_NUM_THREADS") in (None, "1"):
        torch.set_num_threads(max(1, _usable_cpus() // processes))
    return torch.get_num_threads()
