"""The encrypted copy of a zip that a route's recipients get (cdh/routes.py, cdh/agecrypt.py): staged
on disk next to the zip, uploaded, then removed, on every path.

Why a staged copy, not encryption on the fly: an upload sends each part with a checksum computed
before it is sent, may send a part again, and is verified afterwards against the bytes it was made
from; age's file key is random per encryption, so the same ciphertext cannot be produced twice.
A copy on disk is read like the zip itself (streamed, a part at a time, bounded memory: store/body.py)
and verified byte for byte by the store. Its cost is disk, not memory: one encrypted copy per upload in
flight, the zip's size plus 16 bytes per 64 KiB and a header (:func:`cdh.agecrypt.size_bound`), and
the CPU of writing it (README "Performance", ``nox -s bench -- --only encrypt``).

The copy is ``CORE_DIR/.<name>.zip.age`` (cdh/ondisk.py): it counts for ``CDH_MAX_USE`` and
``CDH_KEEP_FREE`` like any file there, and it is only made when both limits leave room for it
(reservations of copies still being written included), so staging never cuts a new crash's core
short; with no room the zip waits (``upload.no_room``) and is retried. The copy is created
``O_EXCL``, mode 0600, and held under an exclusive flock until it is removed: after the upload, after
a failure, on cancel. A copy whose lock nobody holds was left by an agent that died (SIGKILL, OOM,
reboot): the janitor removes it (cdh/agent/janitor.py), and the zip, still there, is encrypted again.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from cdh import agecrypt, ondisk, retention

if TYPE_CHECKING:
    from cdh.agent.localzip import LocalZip
    from cdh.config import Settings


class NoRoom(Exception):
    """No room for the encrypted copy under CDH_MAX_USE / CDH_KEEP_FREE: the zip waits."""


class StagedCopy:
    """The encrypted copy, held open and locked: what the store uploads (cdh.store's HeldFile)."""

    def __init__(self, path: str, fd: int, source: LocalZip) -> None:
        self.path = path
        self.fd = fd
        self.source = source
        self.size = 0
        st = os.fstat(fd)
        self._ident = (st.st_dev, st.st_ino)

    @property
    def name(self) -> str:
        return os.path.basename(self.path)

    def still_there(self) -> bool:
        """This copy is still at its path, and the zip it was made from still at its own."""
        try:
            st = os.stat(self.path, follow_symlinks=False)
        except FileNotFoundError:
            return False
        return (st.st_dev, st.st_ino) == self._ident and self.source.still_there()

    def allocated(self) -> int:
        try:
            return os.fstat(self.fd).st_blocks * 512
        except OSError:
            return 0

    def remove(self) -> None:
        """Unlink it (if it is still ours) and close it. Blocking: the last close frees its blocks."""
        try:
            st = os.stat(self.path, follow_symlinks=False)
            if (st.st_dev, st.st_ino) == self._ident:
                os.unlink(self.path)
        except FileNotFoundError:
            pass
        finally:
            os.close(self.fd)


class Staging:
    """Encrypted copies in CORE_DIR: room reserved before each is written, each removed after use."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._reserved: dict[StagedCopy, int] = {}
        self._room = asyncio.Lock()  # one room check + reservation at a time

    def configure(self, settings: Settings) -> None:
        self.settings = settings

    @property
    def reserved_bytes(self) -> int:
        return sum(self._reserved.values())

    @contextlib.asynccontextmanager
    async def encrypted(self, held: LocalZip, recipients: tuple[str, ...]) -> AsyncIterator[StagedCopy]:
        """The zip ``held`` encrypted to ``recipients``, staged; removed when the block ends, however."""
        need = agecrypt.size_bound(held.size, len(recipients))
        async with self._room:
            await asyncio.to_thread(self._check_room, need)
            copy = await asyncio.to_thread(self._create, held)
            self._reserved[copy] = need
        try:
            copy.size = await asyncio.to_thread(agecrypt.encrypt, held.fd, held.size, copy.fd, recipients)
            yield copy
        finally:
            del self._reserved[copy]
            await asyncio.shield(asyncio.to_thread(copy.remove))

    def _check_room(self, need: int) -> None:
        """Raise NoRoom unless both limits leave ``need`` bytes (and MIN_ROOM) besides what copies being
        written have reserved and not yet written."""
        s = self.settings
        dfd = os.open(s.core_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            total, free = retention.fs_space(dfd)
            used = retention.dir_usage(dfd)
        finally:
            os.close(dfd)
        limits = retention.Limits(s, total)
        pending = sum(max(0, n - c.allocated()) for c, n in self._reserved.items())
        room, which = limits.room(used + pending, free - pending)
        if room - retention.MIN_ROOM < need:
            raise NoRoom(f"the encrypted copy needs {need} bytes and {limits.describe(which)} leaves "
                         f"{max(room, 0)}")

    def _create(self, held: LocalZip) -> StagedCopy:
        """``.<name>.zip.age`` created afresh and locked. One left there is stale: we hold the zip's lock,
        so no live uploader of this zip made it."""
        path = os.path.join(os.path.dirname(held.path), ondisk.staged_name(held.name))
        flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            fd = os.open(path, flags, 0o600)
        except FileExistsError:
            os.unlink(path)
            fd = os.open(path, flags, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BaseException:
            os.close(fd)
            raise
        return StagedCopy(path, fd, held)
