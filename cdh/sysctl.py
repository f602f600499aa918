"""The kernel settings cdh owns, read and written through /proc/sys (no ``sysctl`` binary on a node).

- ``kernel.core_pattern`` pipes every crash into HOST_DIR/cdc with the specifiers the composer
  reads (cdh/composer/kernel.py); :func:`is_ours` tells whether it still does.
- ``kernel.core_pipe_limit`` (> 0, or the kernel does not wait for the composer and /proc/<pid>
  may vanish) and ``fs.suid_dumpable``.

The agent sets and restores them (cdh/agent/host.py); its probes and ``cdh doctor`` read them.
Tests point :class:`Sysctl` at a fake tree with ``CDH_TEST_SYSCTL_ROOT``, so the whole host path
runs without touching the machine's core_pattern, which other test runs share. Stdlib only.
"""

from __future__ import annotations

import os
import re

from cdh import ondisk

PROC_SYS = "/proc/sys"
TEST_SYSCTL_ROOT = "CDH_TEST_SYSCTL_ROOT"  # a CDH_TEST_* name: ignored as a setting by cdh.config
CORE_PATTERN_MAX = 127  # the kernel silently truncates longer values (CORENAME_MAX_SIZE - 1)
# Kernel specifiers the composer reads: see core(5). -d is omitted: CORE_DIR comes
# from composer.env, which keeps the pattern short for long HOST_DIRs.
PATTERN_ARGS = "-c=%c -e=%e -p=%p -P=%P -s=%s -t=%t -h=%h -E=%E"


def core_pattern(host_dir: str) -> str:
    """``kernel.core_pattern`` piping into the composer installed in ``host_dir``."""
    return f"|{ondisk.HostDir(host_dir).composer} {PATTERN_ARGS}"


def is_ours(pattern: str, host_dir: str) -> bool:
    return pattern.startswith(f"|{ondisk.HostDir(host_dir).composer} ")


def ibm_pattern(pattern: str) -> tuple[str, str] | None:
    """(HOST_DIR, CORE_DIR) of the IBM Core Dump Handler's pattern, or None: IBM's agent wrote
    ``|<HOST_DIR>/cdc -c=%c -e=%e -p=%p -s=%s -t=%t -d=<CORE_DIR> -h=%h -E=%E``. Never a node's original
    value: cdh backs up what was there before IBM (cdh/agent/takeover.py), never IBM's pattern."""
    m = re.fullmatch(r"\|(/\S*)/cdc -c=%c -e=%e -p=%p -s=%s -t=%t -d=(\S+) -h=%h -E=%E", pattern.strip())
    return (m.group(1) or "/", m.group(2)) if m else None


class Sysctl:
    """Reads and writes /proc/sys (a different root can be given for tests)."""

    def __init__(self, root: str = PROC_SYS) -> None:
        self.root = root

    @classmethod
    def here(cls) -> Sysctl:
        """This machine's, or the fake tree ``CDH_TEST_SYSCTL_ROOT`` names."""
        return cls(os.environ.get(TEST_SYSCTL_ROOT) or PROC_SYS)

    def path(self, name: str) -> str:
        return os.path.join(self.root, *name.split("."))

    def read(self, name: str) -> str:
        with open(self.path(name), encoding="utf-8") as f:
            return f.read().rstrip("\n")

    def write(self, name: str, value: str) -> None:
        # One write() call: /proc/sys handlers take the value from a single write.
        fd = os.open(self.path(name), os.O_WRONLY | os.O_TRUNC)
        try:
            os.write(fd, value.encode())
        finally:
            os.close(fd)
