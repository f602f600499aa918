"""The real kernel: tests here set kernel.core_pattern and crash real processes.

They need root and a writable /proc/sys/kernel/core_pattern. Where that is not
possible they skip, unless CDH_REQUIRE_KERNEL=1 (CI), which makes it a failure.
core_pattern is global to the machine: every test here holds one lock file
(tests/support/kernel.py) and the sysctls are restored after: the ``kernel`` fixture
in tests/conftest.py, which the reliability suite uses too.
"""
