"""The benchmarks' inputs: real cores, made by crashing a process with a realistic heap.

tests/support/crashers/heap.c fills its heap (zero pages, text records,
pointer arrays, random blobs) and dies of SIGSEGV; the kernel writes the core
to a plain file (core_pattern = <dir>/core.%p) while we hold the machine-wide
kernel lock (tests/support/kernel.py, the same lock the kernel tests take).

The kernel writes never-touched pages as holes in a file core; the core is
copied to a dense file so every tool reads the same bytes from the page cache
(a pipe from the kernel carries those zeros too). Cores are kept in a cache
directory for the run, keyed by size, seed and the crasher's source, so
``--cache DIR`` can reuse them across runs.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

from tests.support.crashes import CRASHERS, compile_program, crash
from tests.support.kernel import exclusive, unavailable

HERE = Path(__file__).parent
SEED = 1


class InputError(Exception):
    """A core could not be made (not root, gcc missing ...)."""


def _key(mib: int) -> str:
    source = (CRASHERS / "heap.c").read_bytes()
    return f"heap-{mib}MiB-seed{SEED}-{hashlib.sha256(source).hexdigest()[:12]}"


def core(cache: Path, mib: int) -> Path:
    """A dense core of a ``mib`` MiB heap in ``cache`` (made now unless already there)."""
    path = cache / f"{_key(mib)}.core"
    if path.exists():
        return path
    why = unavailable()
    if why:
        raise InputError(f"cannot make a core here ({why}): the benchmarks crash a real process")
    binary = compile_program("heap", cache)
    raw_dir = cache / "raw"
    with exclusive():
        raw, _, _ = crash(binary, raw_dir, args=(str(mib), str(SEED)))
    try:
        _densify(raw, path)
    finally:
        raw.unlink()
    return path


def _densify(src: Path, dst: Path) -> None:
    tmp = dst.with_suffix(".tmp")
    subprocess.run(["cp", "--sparse=never", str(src), str(tmp)], check=True)
    os.rename(tmp, dst)


def warm(path: Path) -> None:
    """Read ``path`` once so every run finds it in the page cache (it fits: a few GiB of RAM)."""
    with open(path, "rb") as f:
        while f.read(8 << 20):
            pass


def runner(cache: Path) -> Path:
    """dev/bench/runner.c built into ``cache``: reports a child's own rusage."""
    out = cache / "runner"
    if not out.exists():
        subprocess.run(["gcc", "-O2", "-o", str(out), str(HERE / "runner.c")], check=True,
                       capture_output=True, text=True)
    return out
