"""The retention guard: how much CORE_DIR may hold, and what may ever be deleted to keep to it.

Two limits, like systemd-coredump's MaxUse and KeepFree (a size, or a % of CORE_DIR's filesystem):

- ``CDH_MAX_USE`` (default 25%): the bytes allocated to the files in CORE_DIR.
- ``CDH_KEEP_FREE`` (default 10%): the space that stays free on CORE_DIR's filesystem (what an
  unprivileged writer sees, ``f_bavail``). 10% is the kubelet's default hard-eviction threshold for
  ``nodefs.available``: below it the kubelet evicts pods, so cdh never takes a node there itself.

What lives in and around CORE_DIR, and what the guard may delete:

============================================  ==========================  =========================
file                                          what it is                  deleted by the guard
============================================  ==========================  =========================
``CORE_DIR/<name>.zip``                       a core not yet uploaded     never
``CORE_DIR/.<name>.zip.part``, flock held     a composer writing it       never
``CORE_DIR/.<name>.zip.part``, no lock,       its composer died (SIGKILL, always: renamed to
older than PART_GRACE_S                       OOM, reboot)                ``<name>.zip`` when whole,
                                                                          else deleted and reported
``EVENT_DIR/<uuid>-event.json`` whose zip     the event of an uploaded    only over a limit,
is gone from CORE_DIR                         core                        oldest first
``HOST_DIR/composer.log.1``                   the rotated composer log    only over a limit, last
anything else                                 not ours                    never (but counted)
============================================  ==========================  =========================

An uploaded core leaves nothing in CORE_DIR (the agent deletes each zip once the object is
confirmed), so "uploaded leftovers" are its event file and old logs. When those are gone and a
limit is still broken, what is left are cores not yet uploaded: they stay (the agent logs
``retention.over_limit`` with how much it keeps and why), and the composer protects the node:

The composer measures before the core and again while it streams (free space on every write,
CORE_DIR's usage every CHECK_EVERY bytes). When the next write would break a limit it stops there:
the core entry ends (a valid entry holding the core's first bytes; the ELF headers and the notes
with every thread's registers come first in a core), dump-info says ``truncated: true`` with the
limit in ``truncated_reason``, the log says ``core.space_limited``, and stdin is closed so the
kernel lets the dying process go. With no room at all the zip holds the metadata alone: a record
that the crash happened and why its core is missing. The entries after the core (bounded: log
tails, /proc files) and the central directory may go a few MiB past the floor: the floor is their
margin. Refusing the whole core instead would lose the registers and stack that usually suffice.

Stdlib only: the composer imports this on every crash.
"""

from __future__ import annotations

import os
import stat

CHECK_EVERY = 16 << 20  # the composer re-scans CORE_DIR's usage this often while it streams
MIN_ROOM = 1 << 20      # a limit counts as reached with less left under it: a composer block (blocks.BLOCK)
PART_GRACE_S = 5.0      # a .part younger than this is never judged abandoned (open → flock window)


def resolve(limit: tuple[float, str] | None, fs_total: int) -> int | None:
    """Bytes from a parsed CDH_MAX_USE / CDH_KEEP_FREE value; None: no limit."""
    if limit is None:
        return None
    amount, unit = limit
    return int(fs_total * amount / 100) if unit == "%" else int(amount)


class Limits:
    """The two limits in bytes for one filesystem."""

    __slots__ = ("keep_free", "max_use")

    def __init__(self, settings, fs_total: int) -> None:
        self.max_use = resolve(settings.max_use, fs_total)
        self.keep_free = resolve(settings.keep_free, fs_total) or 0

    def room(self, used: int, free: int) -> tuple[int, str]:
        """(bytes that may still be written, the setting that limits them)."""
        room, which = free - self.keep_free, "CDH_KEEP_FREE"
        if self.max_use is not None and self.max_use - used < room:
            room, which = self.max_use - used, "CDH_MAX_USE"
        return room, which

    def describe(self, which: str) -> str:
        if which == "CDH_MAX_USE":
            return f"CDH_MAX_USE: CORE_DIR may hold at most {self.max_use} bytes"
        if not self.keep_free:
            return "CORE_DIR's filesystem is full"
        return f"CDH_KEEP_FREE: at least {self.keep_free} bytes stay free on CORE_DIR's filesystem"


def fs_space(fd: int) -> tuple[int, int]:
    """(size, free bytes) of the filesystem holding the open file or directory ``fd``."""
    st = os.fstatvfs(fd)
    return st.f_blocks * st.f_frsize, st.f_bavail * st.f_frsize


def dir_usage(dfd: int) -> int:
    """Bytes allocated to the regular files directly in the open directory ``dfd`` (no links followed)."""
    total = 0
    with os.scandir(dfd) as it:
        for entry in it:
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue  # removed while we looked
            if stat.S_ISREG(st.st_mode):
                total += st.st_blocks * 512
    return total
