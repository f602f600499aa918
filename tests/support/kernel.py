"""Exclusive use of the kernel's core dump sysctls, for kernel tests and benchmarks.

core_pattern is global to the machine, so whoever sets it (the ``kernel`` test
fixture in tests/kernel/conftest.py, the benchmarks in tests/bench) holds one
lock file (parallel runs on one machine take turns) and restores the sysctls after.
"""

from __future__ import annotations

import contextlib
import fcntl
import os

SYSCTLS = ("kernel/core_pattern", "kernel/core_pipe_limit", "fs/suid_dumpable")
LOCK = "/tmp/cdh-kernel-tests.lock"


def kernel_unavailable() -> str | None:
    """Why this process cannot set core_pattern, or None."""
    if os.geteuid() != 0:
        return "not root"
    if not os.access("/proc/sys/kernel/core_pattern", os.W_OK):
        return "/proc/sys/kernel/core_pattern is not writable"
    return None


def _read(name: str) -> str:
    with open(f"/proc/sys/{name}") as f:
        return f.read().rstrip("\n")


def _write(name: str, value: str) -> None:
    with open(f"/proc/sys/{name}", "w") as f:
        f.write(value)


@contextlib.contextmanager
def exclusive_kernel():
    """Hold the machine-wide lock; yields the saved sysctls, restored on exit."""
    with open(LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        saved = {name: _read(name) for name in SYSCTLS}
        try:
            yield saved
        finally:
            for name, value in saved.items():
                _write(name, value)
