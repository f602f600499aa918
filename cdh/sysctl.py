"""The kernel settings cdh owns, read and written through /proc/sys (no ``sysctl`` binary on a node).

- ``kernel.core_pattern`` pipes every crash into HOST_DIR/cdc with the specifiers the composer
  reads (cdh/composer/kernel.py); :func:`is_ours` tells whether it still does.
- ``kernel.core_pipe_limit`` (> 0, or the kernel does not wait for the composer and /proc/<pid>
  may vanish) and ``fs.suid_dumpable``.

The agent sets and restores them (cdh/agent/host.py); its probes and ``cdh doctor`` read them.
Tests point :class:`Sysctl` at a fake tree with ``CDH_TEST_SYSCTL_ROOT``, so the whole host path
runs without touching the machine's core_pattern, which other test runs share. Stdlib only.

Values are bytes to the kernel: a node's own pattern need not be UTF-8. :meth:`Sysctl.read` gives
text that round-trips (``surrogateescape``), :meth:`Sysctl.read_bytes` the bytes. What may be
written back from a backup is :func:`implausible`'s to judge: the kernel runs a piped program as
root with every capability, so a backup naming one that does not exist, or that someone other than
root could have written, is not restored.
"""

from __future__ import annotations

import os
import re

from cdh import fsutil, ondisk

PROC_SYS = "/proc/sys"
TEST_SYSCTL_ROOT = "CDH_TEST_SYSCTL_ROOT"  # a CDH_TEST_* name: ignored as a setting by cdh.config
CORE_PATTERN_MAX = 127  # the kernel silently truncates longer values (CORENAME_MAX_SIZE - 1)
MAX_BACKUP_BYTES = 4096  # a backup longer than this holds no sysctl's value
# Kernel specifiers the composer reads: see core(5). -d is omitted: CORE_DIR comes
# from composer.env, which keeps the pattern short for long HOST_DIRs.
PATTERN_ARGS = "-c=%c -e=%e -p=%p -P=%P -s=%s -t=%t -h=%h -E=%E"


def core_pattern(host_dir: str) -> str:
    """``kernel.core_pattern`` piping into the composer installed in ``host_dir``."""
    return f"|{ondisk.HostDir(host_dir).composer} {PATTERN_ARGS}"


def is_ours(pattern: str, host_dir: str) -> bool:
    return pattern.startswith(f"|{ondisk.HostDir(host_dir).composer} ")


# What uninstall writes when no usable backup survives: the kernel's defaults (core files named
# "core" in the crasher's directory; no waiting for a pipe helper; no dumps of setuid programs).
SAFE_DEFAULTS = {"kernel.core_pattern": b"core", "kernel.core_pipe_limit": b"0", "fs.suid_dumpable": b"0"}
_RANGES = {"kernel.core_pipe_limit": (0, 1 << 31), "fs.suid_dumpable": (0, 2)}


def implausible(name: str, value: bytes, host_dir: str) -> str | None:
    """Why ``value`` (a backup's content) must not be written to sysctl ``name``, or None."""
    if name in _RANGES:
        lo, hi = _RANGES[name]
        ok = value.isdigit() and lo <= int(value) <= hi
        return None if ok else f"{value[:40]!r} is not a number from {lo} to {hi}"
    if len(value) > CORE_PATTERN_MAX or b"\0" in value or b"\n" in value:
        return "it is not a core_pattern (too long, or a NUL or line break in it)"
    if is_ours(os.fsdecode(value), host_dir):
        return "it is cdh's own pattern"
    if not value.startswith(b"|"):
        return None
    program = os.fsdecode(value[1:].split(maxsplit=1)[0]) if value[1:].split() else ""
    if not program.startswith("/"):
        return f"the program it pipes to ({program!r}) is not an absolute path"
    root = host_root()
    if root is None:
        return None  # not visible from here (a pod without hostPID): the caller says so
    try:
        why = fsutil.untrusted_executable(program, root=root)
    finally:
        os.close(root)
    return f"the kernel would run it as root, but {why}" if why else None


def host_root() -> int | None:
    """A descriptor of the host's root as the kernel's pipe helpers see it, or None when this process
    cannot see it (a pod without hostPID). The kernel starts a pipe helper from kthreadd, PID 2 of
    the host's PID namespace, with its root: /proc/2/root, whatever mount namespace we are in."""
    try:
        with open("/proc/2/comm", "rb") as f:
            if f.read().strip() != b"kthreadd":
                return None
        return os.open("/proc/2/root", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return None


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
        """The value as text; bytes that are not UTF-8 survive as surrogates (``write`` restores them)."""
        return self.read_bytes(name).decode("utf-8", "surrogateescape")

    def read_bytes(self, name: str) -> bytes:
        with open(self.path(name), "rb") as f:
            return f.read().rstrip(b"\n")

    def write(self, name: str, value: str | bytes) -> None:
        if isinstance(value, str):
            value = value.encode("utf-8", "surrogateescape")
        # One write() call: /proc/sys handlers take the value from a single write.
        fd = os.open(self.path(name), os.O_WRONLY | os.O_TRUNC)
        try:
            os.write(fd, value)
        finally:
            os.close(fd)
