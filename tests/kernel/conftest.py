"""The real kernel: tests here set kernel.core_pattern and crash real processes.

They need root and a writable /proc/sys/kernel/core_pattern. Where that is not
possible they skip, unless CDH_REQUIRE_KERNEL=1 (CI), which makes it a failure.
core_pattern is global to the machine, so every test here holds one lock file
(parallel test runs on one machine take turns) and restores the sysctls after
(tests/support/kernel.py, shared with the benchmarks).
"""

from __future__ import annotations

import os

import pytest

from tests.support.kernel import exclusive_kernel, kernel_unavailable


@pytest.fixture
def kernel():
    """Exclusive use of the kernel's core dump sysctls; restored afterwards."""
    why = kernel_unavailable()
    if why:
        if os.environ.get("CDH_REQUIRE_KERNEL") == "1":
            pytest.fail(f"kernel tests required (CDH_REQUIRE_KERNEL=1) but cannot run: {why}")
        pytest.skip(f"kernel tests cannot run here: {why}")
    with exclusive_kernel() as saved:
        yield saved
