"""A finished zip on disk, held under an exclusive flock while it is uploaded.

The lock is what keeps ``cdh sweep`` and the agent (or two agents after a
botched rollout) from uploading one file twice: whoever gets it uploads;
the other sees :class:`Busy` and moves on. It is non-blocking, taken on the
open file, and released when the file is closed (also when the process dies,
so a SIGKILLed agent leaves no stale lock behind).
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import stat

from cdh import fsutil, ondisk


class Busy(Exception):
    """Another process holds the file's lock (uploading it, or the composer finishing it)."""


class Gone(Exception):
    """The file vanished or was replaced before we held it (someone else uploaded it)."""


class NotAZip(Exception):
    """Not a regular file (a symlink, a fifo ...): never uploaded, never deleted."""


class LocalZip:
    def __init__(self, path: str) -> None:
        self.path = path
        self.name = os.path.basename(path)
        self.fd = -1
        self.size = 0
        self.mtime = 0.0
        self._ident: tuple[int, int] = (0, 0)

    def __enter__(self) -> LocalZip:
        try:
            self.fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except FileNotFoundError:
            raise Gone(self.path) from None
        except OSError as err:  # ELOOP: a symlink
            raise NotAZip(f"{self.path}: {err.strerror}") from None
        try:
            self._lock()
        except BaseException:
            os.close(self.fd)
            raise
        return self

    def _lock(self) -> None:
        st = os.fstat(self.fd)
        if not stat.S_ISREG(st.st_mode):
            raise NotAZip(f"{self.path} is not a regular file")
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise Busy(self.path) from None
        self.size, self.mtime, self._ident = st.st_size, st.st_mtime, (st.st_dev, st.st_ino)
        if not self.still_there():
            raise Gone(self.path)  # uploaded and deleted by the lock's previous holder

    def __exit__(self, *exc) -> None:
        os.close(self.fd)  # releases the lock
        self.fd = -1

    async def __aenter__(self) -> LocalZip:
        return self.__enter__()  # an open and a non-blocking flock: quick

    async def __aexit__(self, *exc) -> None:
        # Off the event loop: the last close of a deleted zip frees its page cache and its
        # blocks, a long stall for a big core (README "Performance") that every other upload
        # and the probes would wait out.
        await asyncio.to_thread(self.__exit__)

    def still_there(self) -> bool:
        """The path still names the file we hold (not deleted, not replaced)."""
        try:
            st = os.stat(self.path, follow_symlinks=False)
        except FileNotFoundError:
            return False
        return (st.st_dev, st.st_ino) == self._ident

    def read_info(self) -> dict:
        """The dump-info (blocking). Reads through our descriptor, so it is the locked file."""
        with os.fdopen(os.dup(self.fd), "rb") as f:
            return ondisk.read_dump_info(f)

    def delete(self) -> None:
        """Remove the zip we hold (only after the object is confirmed)."""
        if self.still_there():
            os.unlink(self.path)
            fsutil.fsync_dir(os.path.dirname(self.path) or ".")
