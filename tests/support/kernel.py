"""Exclusive use of the kernel's core dump sysctls, for tests, the demo and the benchmarks.

kernel.core_pattern is global to the machine, so every user here holds one lock file
(parallel runs on one machine take turns) and restores the sysctls afterwards.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator

SYSCTLS = ("kernel/core_pattern", "kernel/core_pipe_limit", "fs/suid_dumpable")
LOCK = "/tmp/cdh-kernel-tests.lock"


def unavailable() -> str | None:
    """Why the real kernel cannot be used here, or None."""
    if os.geteuid() != 0:
        return "not root"
    if not os.access("/proc/sys/kernel/core_pattern", os.W_OK):
        return "/proc/sys/kernel/core_pattern is not writable"
    return None


def read(name: str) -> str:
    with open(f"/proc/sys/{name}") as f:
        return f.read().rstrip("\n")


def write(name: str, value: str) -> None:
    with open(f"/proc/sys/{name}", "w") as f:
        f.write(value)


@contextlib.contextmanager
def exclusive() -> Iterator[dict[str, str]]:
    """Hold the machine-wide lock; yield the saved sysctls; restore them on the way out."""
    with open(LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        saved = {name: read(name) for name in SYSCTLS}
        try:
            yield saved
        finally:
            for name, value in saved.items():
                write(name, value)
