"""The composer's side of the retention guard (cdh/retention.py explains the design).

:class:`SpaceGuard` measures CORE_DIR's filesystem before the core and while it streams;
:meth:`SpaceGuard.wrap` gives the streamed entry a check before every write, which raises
:class:`OutOfSpace` instead of writing a chunk that would break CDH_MAX_USE or CDH_KEEP_FREE.
The caller then ends the core entry where it is: a valid, shorter core, marked truncated.
"""

from __future__ import annotations

from cdh import retention


class OutOfSpace(Exception):
    """Writing on would break a limit. ``reason`` goes to dump-info; ``fields`` to the log."""

    def __init__(self, reason: str, fields: dict) -> None:
        super().__init__(reason)
        self.reason = reason
        self.fields = fields


class SpaceGuard:
    """Limits for one composer run. ``position()``: how far the zip has grown on disk;
    ``pending()``: bytes handed to the writer thread and not yet on disk (they will land)."""

    def __init__(self, settings, dfd: int, position, pending=lambda: 0) -> None:
        self.dfd = dfd
        self.position = position
        self.pending = pending
        try:
            total, _ = retention.fs_space(dfd)
            self.limits: retention.Limits | None = retention.Limits(settings, total)
            self._scan()
        except OSError:  # cannot measure: write on (a full disk is still handled as a write error)
            self.limits = None

    def _scan(self) -> None:
        self.used_at_scan = retention.dir_usage(self.dfd) if self.limits.max_use is not None else 0
        self.position_at_scan = self.position()

    def check(self, nbytes: int) -> None:
        """Raise OutOfSpace unless ``nbytes`` more may be written now."""
        if nbytes <= 0 or self.limits is None:
            return
        grown = self.position() - self.position_at_scan
        try:
            if self.limits.max_use is not None and grown >= retention.CHECK_EVERY:
                self._scan()  # other composers may have written meanwhile
                grown = 0
            _, free = retention.fs_space(self.dfd)
        except OSError:
            return
        pending = self.pending()
        used = self.used_at_scan + grown + pending
        room, which = self.limits.room(used, free - pending)
        if nbytes > room:
            raise OutOfSpace(self.limits.describe(which),
                             {"limit": which, "room": max(room, 0), "free": free, "used": used,
                              "max_use": self.limits.max_use, "keep_free": self.limits.keep_free})

    def wrap(self, entry):
        return _GuardedEntry(entry, self)


class _GuardedEntry:
    """The streamed entry, with :meth:`SpaceGuard.check` before each chunk goes in."""

    def __init__(self, entry, guard: SpaceGuard) -> None:
        self._entry = entry
        self._guard = guard

    def __getattr__(self, name: str):
        return getattr(self._entry, name)

    def write(self, chunk) -> None:
        self._guard.check(len(chunk))
        self._entry.write(chunk)

    def submit(self, block, n: int) -> None:
        """For an entry fed in pooled blocks: an unwritten block still goes back to the pool."""
        try:
            self._guard.check(n)
        except OutOfSpace:
            self._entry.submit(block, 0)
            raise
        self._entry.submit(block, n)
