"""Build lstmkit's C++ CPU kernels (lstmkit.ops._C) in place with torch.utils.cpp_extension; `make setup` runs this.

The extension is optional: without a C++ compiler, or when the build fails, this prints one line saying the
Python fused path will be used and exits 0, so set-up still succeeds. Under CI (environment CI=true) a failed
build with a compiler present exits 1 instead: CI must not silently test only the Python path.

Compiling against torch's headers is heavy: where several builds share a machine, name a lock file in
LSTMKIT_BUILD_LOCK and the build holds it while it compiles (no lock when the variable is unset).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import sys
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCES = [ROOT / "csrc" / "lstm_layer.cpp"]
PACKAGE = ROOT / "src" / "lstmkit"


def source_hash() -> str:
    """Hash of the C++ sources: compiled into the extension so tests can tell it was built from these files."""
    digest = hashlib.sha256()
    for path in SOURCES:
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


@contextlib.contextmanager
def heavy_lock():
    name = os.environ.get("LSTMKIT_BUILD_LOCK")
    if not name:
        yield
        return
    path = Path(name)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def build() -> None:
    from setuptools import Extension, setup  # noqa: F401  (setuptools must be importable before torch's helper)
    from torch.utils.cpp_extension import BuildExtension, CppExtension

    extension = CppExtension(
        "lstmkit.ops._C",
        [str(p) for p in SOURCES],
        extra_compile_args=["-O3", "-march=native", "-fopenmp", "-fno-math-errno", "-fno-trapping-math",
                            f'-DLSTMKIT_SOURCE_HASH="{source_hash()}"'],
        # OpenMP for the kernel's one parallel region per call: the extension then needs libgomp.so.1, which torch's
        # wheel has already loaded under that name, so the kernel runs on torch's own OpenMP runtime and threads
        extra_link_args=["-fopenmp"],
    )
    setup(
        name="lstmkit-cpp",
        ext_modules=[extension],
        cmdclass={"build_ext": BuildExtension.with_options(use_ninja=shutil.which("ninja") is not None)},
        script_args=["-q", "build_ext", "--build-lib", str(ROOT / "src"), "--build-temp", "."],
    )


def main() -> int:
    work = ROOT / "build" / "csrc"
    work.mkdir(parents=True, exist_ok=True)
    os.chdir(work)  # not the repository root: setuptools would read the project's pyproject.toml
    compiler = shutil.which(os.environ.get("CXX", "g++")) or shutil.which("c++")
    ci = os.environ.get("CI", "").lower() in ("1", "true", "yes")
    if compiler is None:
        print("lstmkit: no C++ compiler found; the C++ kernels are not built and the Python fused path will be used")
        return 0
    try:
        with heavy_lock():
            build()
    except BaseException as error:  # noqa: BLE001  (setuptools exits with SystemExit on compiler errors)
        if ci:
            traceback.print_exc()
            print(f"lstmkit: building the C++ kernels failed under CI ({error!r})", file=sys.stderr)
            return 1
        print(f"lstmkit: building the C++ kernels failed ({type(error).__name__}); the Python fused path will be used")
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
