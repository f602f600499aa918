"""What the composer leaves on disk: the zip (``CORE_DIR/.<name>.zip.part`` while written,
``<name>.zip`` when complete) and its event file (``EVENT_DIR/<uuid>-event.json``).

CORE_DIR and EVENT_DIR are reached as cdh/fsutil.py's ``open_dir`` says: never through a symlink,
never one that someone else could write in, and an existing one is never chmodded (a CORE_DIR that
names /tmp or / is refused, and said so in the log, rather than tightened to 0700 for everyone).
The part file is created through a handle on CORE_DIR with
O_CREAT|O_EXCL|O_NOFOLLOW, mode 0600, and held under an exclusive flock
until it is complete, so the agent (which skips ``.part`` files and locked
files) never reads half a zip. The lock is also how the agent tells a live
composer's ``.part`` from one left by a composer that died: the kernel drops
a dead process's locks (cdh/retention.py). Publishing is fsync, rename, fsync of the
directory: after a power cut there is a whole ``<name>.zip`` or none.

Two crashes may render the same name (a template without ``{uuid}``): the
second gets a short uuid suffix rather than overwrite anything.

The event file is written the same careful way (a temp file created with O_EXCL|O_NOFOLLOW
through a handle on the directory, fsynced, renamed over the final name): a consumer sees a
whole file or none, and a symlink planted in the directory is never followed.
"""

from __future__ import annotations

import fcntl
import os

from cdh import fsutil, ondisk
from cdh.composer.naming import MAX_NAME, safe_name


class PartFile:
    def __init__(self, core_dir: str, name: str, uuid: str) -> None:
        self.core_dir = core_dir
        self.dfd = fsutil.open_dir(core_dir, create=True)
        self.fd = -1
        try:
            self.name = self._create(name, uuid)
        except BaseException:
            os.close(self.dfd)
            raise
        self.zip_name: str | None = None  # set when published

    @property
    def part_name(self) -> str:
        return ondisk.part_name(self.name)

    def _create(self, name: str, uuid: str) -> str:
        candidates = (name, safe_name(f"{name[:MAX_NAME - 9]}-{uuid[:8]}"), safe_name(uuid))
        for candidate in candidates:
            if self._exists(ondisk.zip_name(candidate)):
                continue
            try:
                self.fd = os.open(ondisk.part_name(candidate),
                                  os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                                  0o600, dir_fd=self.dfd)
            except FileExistsError:
                continue
            fcntl.flock(self.fd, fcntl.LOCK_EX)
            if os.fstat(self.fd).st_nlink == 0:
                # The agent judged it abandoned in the instant between open and flock (it never does
                # for a file this young, but a stopped composer can age): start over under a new name.
                os.close(self.fd)
                self.fd = -1
                continue
            return candidate
        raise FileExistsError(f"every name for this dump is taken in {self.core_dir}")

    def _exists(self, entry: str) -> bool:
        try:
            os.stat(entry, dir_fd=self.dfd, follow_symlinks=False)
            return True
        except FileNotFoundError:
            return False

    def publish(self) -> str:
        """fsync, unlock, rename to ``<name>.zip`` (never over an existing file), fsync CORE_DIR.

        The lock goes before the rename: the agent sees ``<name>.zip`` at once (inotify)
        and finds it locked means busy, try again later (seconds later). The file is
        whole by then, and still named ``.part``, which the agent never takes.
        """
        os.fsync(self.fd)
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        final = ondisk.zip_name(self.name)
        if self._exists(final):  # appeared while we wrote: keep both
            final = ondisk.zip_name(f"{self.name}-{os.getpid()}")
        os.rename(self.part_name, final, src_dir_fd=self.dfd, dst_dir_fd=self.dfd)
        os.fsync(self.dfd)
        self.zip_name = final
        return final

    def discard(self) -> None:
        """Remove the part file (nothing worth keeping could be written)."""
        try:
            os.unlink(self.part_name, dir_fd=self.dfd)
        except FileNotFoundError:
            pass

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)  # releases the flock
            self.fd = -1
        if self.dfd >= 0:
            os.close(self.dfd)
            self.dfd = -1


def write_event(event_dir: str, uuid: str, data: bytes) -> str:
    """Write the event file of dump ``uuid``; returns its path. Raises OSError (the caller logs it;
    the zip stays)."""
    dfd = fsutil.open_dir(event_dir, create=True)
    try:
        name = ondisk.event_file_name(uuid)
        tmp = f".{name}.{os.getpid()}.{os.urandom(4).hex()}.tmp"  # unguessable: cannot be pre-planted
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o600, dir_fd=dfd)
        try:
            while data:
                data = data[os.write(fd, data):]
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            os.unlink(tmp, dir_fd=dfd)
            raise
        os.close(fd)
        os.rename(tmp, name, src_dir_fd=dfd, dst_dir_fd=dfd)
        os.fsync(dfd)
        return os.path.join(event_dir, name)
    finally:
        os.close(dfd)
