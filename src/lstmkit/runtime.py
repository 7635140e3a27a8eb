"""Process-wide settings for training loops: opt-in for library users, on by default in the ``lstmkit`` commands.

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

__all__ = ["keep_freed_memory", "malloc_setting_from_env"]

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


def malloc_setting_from_env() -> bool:
    """What the commands do at start: :func:`keep_freed_memory` unless ``LSTMKIT_MALLOC=default``."""
    choice = os.environ.get("LSTMKIT_MALLOC", "keep").strip().lower()
    if choice == "default":
        return False
    if choice != "keep":
        raise ValueError(f"LSTMKIT_MALLOC must be 'keep' or 'default', got {choice!r}")
    return keep_freed_memory()
