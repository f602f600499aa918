"""The real kernel: tests here set kernel.core_pattern and crash real processes.

They need root and a writable /proc/sys/kernel/core_pattern. Where that is not
possible they skip, unless CDH_REQUIRE_KERNEL=1 (CI), which makes it a failure.
core_pattern is global to the machine, so every test here holds one lock file
(parallel test runs on one machine take turns) and restores the sysctls after.
"""

from __future__ import annotations

import fcntl
import os

import pytest

SYSCTLS = ("kernel/core_pattern", "kernel/core_pipe_limit", "fs/suid_dumpable")
LOCK = "/tmp/cdh-kernel-tests.lock"


def _kernel_unavailable() -> str | None:
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


@pytest.fixture
def kernel():
    """Exclusive use of the kernel's core dump sysctls; restored afterwards."""
    why = _kernel_unavailable()
    if why:
        if os.environ.get("CDH_REQUIRE_KERNEL") == "1":
            pytest.fail(f"kernel tests required (CDH_REQUIRE_KERNEL=1) but cannot run: {why}")
        pytest.skip(f"kernel tests cannot run here: {why}")
    with open(LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        saved = {name: _read(name) for name in SYSCTLS}
        try:
            yield saved
        finally:
            for name, value in saved.items():
                _write(name, value)
