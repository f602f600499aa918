"""Moving the core from the kernel's pipe (stdin) into the zip, with bounded memory.

The kernel writes the core into a pipe as fast as we drain it and holds the
dying process meanwhile, so: the pipe is enlarged (F_SETPIPE_SZ, up to
fs.pipe-max-size), and reads go straight into the entry's blocks (a fixed
pool, no per-read allocation); each full block is handed to the threads
that compress and write it (cdh.composer.blocks) while this thread reads on.
Memory is that pool, whatever the core's size.

The deadline is checked with ``poll`` before each read, so a writer that
stops writing cannot hold the composer past it.
"""

from __future__ import annotations

import fcntl
import os
import select
import time

STDIN = 0
PIPE_FALLBACK = 1 << 20  # when fs.pipe-max-size cannot be read

TYPE_CHECKING = False
if TYPE_CHECKING:
    from cdh.composer.zipstream import StreamEntry


def enlarge_pipe(fd: int = STDIN) -> int | None:
    """Grow the pipe behind ``fd`` to fs.pipe-max-size; its new size, or None (not a pipe)."""
    try:
        with open("/proc/sys/fs/pipe-max-size", "rb") as f:
            want = int(f.read())
    except (OSError, ValueError):
        want = PIPE_FALLBACK
    for size in (want, PIPE_FALLBACK):
        try:
            return fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, size)
        except OSError:
            continue
    return None


class Deadline(Exception):
    """The composer's deadline came while reading."""


def stream(entry: StreamEntry, deadline: float, fd: int = STDIN, tap=None) -> str | None:
    """Copy ``fd`` to ``entry`` until EOF. Returns None, or why it stopped early.

    Reasons: ``deadline``, ``read error: ...``. Write errors (disk full) are
    raised as OSError for the caller, who drops the entry. ``tap(view)``, when
    given, sees every block before it is handed on (cdh/stack/tap.py: a few
    microseconds a block; it never raises).
    """
    poller = select.poll()
    poller.register(fd, select.POLLIN | select.POLLHUP | select.POLLERR)
    reason = None
    eof = False
    while not eof and reason is None:
        block = entry.free()
        filled, reason, eof = _fill(fd, block, poller, deadline)
        if tap is not None and filled:
            with memoryview(block) as view:
                tap(view[:filled])
        entry.submit(block, filled)  # an empty block too: it goes back to the pool
    return reason


def _fill(fd: int, block: bytearray, poller, deadline: float) -> tuple[int, str | None, bool]:
    """Read into ``block`` until full; (bytes read, why it stopped early, EOF seen)."""
    filled = 0
    with memoryview(block) as view:
        while filled < len(block):
            try:
                n = _read(fd, view[filled:], poller, deadline)
            except Deadline:
                return filled, "deadline", False
            except OSError as err:
                return filled, f"read error: {err.strerror}", False
            if n == 0:
                return filled, None, True
            filled += n
    return filled, None, False


def _read(fd: int, into: memoryview, poller, deadline: float) -> int:
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise Deadline
        if poller.poll(min(int(left * 1000) + 1, 60_000)):
            return os.readv(fd, [into])


def release_stdin() -> None:
    """Close the core pipe (the kernel then lets the dying process go); fd 0 becomes /dev/null.

    dup2 rather than close: fd 0 must not be reused by a file we open later.
    """
    try:
        null = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        os.close(STDIN)
        return
    os.dup2(null, STDIN, inheritable=False)
    os.close(null)
