"""Moving the core from the kernel's pipe (stdin) into the zip, with bounded memory.

The kernel writes the core into a pipe as fast as we drain it and holds the
dying process meanwhile, so: the pipe is enlarged (F_SETPIPE_SZ, up to
fs.pipe-max-size), reads fill one reused 1 MiB buffer (no per-read
allocation), and each full buffer goes to the compressor in one call.
Memory is that buffer plus one compressor, whatever the core's size.

The deadline is checked with ``poll`` before each read, so a writer that
stops writing cannot hold the composer past it.
"""

from __future__ import annotations

import fcntl
import os
import select
import time

CHUNK = 1 << 20
STDIN = 0

TYPE_CHECKING = False
if TYPE_CHECKING:
    from cdh.composer.zipstream import StreamEntry


def enlarge_pipe(fd: int = STDIN) -> int | None:
    """Grow the pipe behind ``fd`` to fs.pipe-max-size; its new size, or None (not a pipe)."""
    try:
        with open("/proc/sys/fs/pipe-max-size", "rb") as f:
            want = int(f.read())
    except (OSError, ValueError):
        want = CHUNK
    for size in (want, CHUNK):
        try:
            return fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, size)
        except OSError:
            continue
    return None


class Deadline(Exception):
    """The composer's deadline came while reading."""


def stream(entry: StreamEntry, deadline: float, fd: int = STDIN) -> str | None:
    """Copy ``fd`` to ``entry`` until EOF. Returns None, or why it stopped early.

    Reasons: ``deadline``, ``read error: ...``. Write errors (disk full) are
    raised as OSError for the caller, who drops the entry.
    """
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    poller = select.poll()
    poller.register(fd, select.POLLIN | select.POLLHUP | select.POLLERR)
    reason = None
    eof = False
    while not eof and reason is None:
        filled = 0
        while filled < CHUNK:
            try:
                n = _read(fd, view[filled:], poller, deadline)
            except Deadline:
                reason = "deadline"
                break
            except OSError as err:
                reason = f"read error: {err.strerror}"
                break
            if n == 0:
                eof = True
                break
            filled += n
        if filled:
            entry.write(view[:filled])
    view.release()
    return reason


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
