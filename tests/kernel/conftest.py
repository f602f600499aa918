"""The real kernel: tests here set kernel.core_pattern and crash real processes.

They need root and a writable /proc/sys/kernel/core_pattern. Where that is not
possible they skip, unless CDH_REQUIRE_KERNEL=1 (CI), which makes it a failure.
core_pattern is global to the machine: every test here holds one lock file
(tests/support/kernel.py) and the sysctls are restored after.
"""

from __future__ import annotations

import os

import pytest

from tests.support import kernel as kernel_support


@pytest.fixture
def kernel():
    """Exclusive use of the kernel's core dump sysctls; restored afterwards."""
    why = kernel_support.unavailable()
    if why:
        if os.environ.get("CDH_REQUIRE_KERNEL") == "1":
            pytest.fail(f"kernel tests required (CDH_REQUIRE_KERNEL=1) but cannot run: {why}")
        pytest.skip(f"kernel tests cannot run here: {why}")
    with kernel_support.exclusive() as saved:
        yield saved
