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
a dead process's locks (cdh/retention.py). Publishing is the zip's mode (CDH_ZIP_FILE_MODE:
an uploader of another user reads only whole zips), fsync, rename, fsync of the directory: after a
power cut there is a whole ``<name>.zip`` or none.

Two crashes may render the same name (a template without ``{uuid}``): the
second gets a short uuid suffix rather than overwrite anything.

The event file appears whole under its final name in one step, and that step is a *create*:
IBM's documented consumer is a sidecar running ``inotifywait -e create`` that reads the file at
once, and a rename raises no IN_CREATE for the new name. So the file is written unnamed
(``O_TMPFILE`` in the event directory), fsynced, given its mode, then linked in (``linkat``, as
systemd makes files appear whole): IN_CREATE for the final name, content complete. An open and
close for writing follows, so that ``close_write`` watchers hear of it too (the close of the
unnamed file is reported without a name). Where a filesystem has no O_TMPFILE, a temp file
(O_EXCL|O_NOFOLLOW, unguessable name) is renamed over the final name: still never partial.
Everything goes through a handle on the directory; a planted symlink is never followed.
"""

from __future__ import annotations

import errno
import fcntl
import os

from cdh import fsutil, ondisk
from cdh.composer.naming import MAX_NAME, safe_name


class PartFile:
    def __init__(self, core_dir: str, name: str, uuid: str, mode: int = 0o600) -> None:
        self.core_dir = core_dir
        self.mode = mode  # the finished zip's (CDH_ZIP_FILE_MODE); the part file is 0600 while written
        self.dfd = fsutil.open_dir(core_dir, create=True, mode=ondisk.dir_mode(mode), readers=True)
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
        os.fchmod(self.fd, self.mode)  # readable by others (if asked) only once whole
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


def write_event(event_dir: str, uuid: str, data: bytes, mode: int = 0o600) -> str:
    """Write the event file of dump ``uuid`` with ``mode`` (CDH_EVENT_FILE_MODE); returns its path.
    Raises OSError (the caller logs it; the zip stays)."""
    dfd = fsutil.open_dir(event_dir, create=True, mode=ondisk.dir_mode(mode), readers=True)
    try:
        name = ondisk.event_file_name(uuid)
        if not _link_whole(dfd, name, data, mode):
            _rename_whole(dfd, name, data, mode)
        os.fsync(dfd)
        _announce_close_write(dfd, name)
        return os.path.join(event_dir, name)
    finally:
        os.close(dfd)


_NO_TMPFILE = (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL)


def _link_whole(dfd: int, name: str, data: bytes, mode: int) -> bool:
    """O_TMPFILE + linkat; False when the filesystem (or a missing /proc) does not allow it."""
    try:
        fd = os.open(".", os.O_TMPFILE | os.O_WRONLY | os.O_CLOEXEC, mode, dir_fd=dfd)
    except OSError as err:
        if err.errno in _NO_TMPFILE:
            return False
        raise
    try:
        _write_all(fd, data, mode)
        # linkat(AT_FDCWD, "/proc/self/fd/N", dfd, name, AT_SYMLINK_FOLLOW): dst_dir_fd makes CPython
        # call linkat with the follow flag (link(2) on the /proc path fails with EXDEV).
        os.link(f"/proc/self/fd/{fd}", name, dst_dir_fd=dfd)
        return True
    except FileExistsError:
        return False  # a file of that name (a rerun): replace it as the rename way does
    except OSError as err:
        if err.errno in (errno.ENOENT, errno.EXDEV, errno.EPERM):  # no /proc here (a chroot)
            return False
        raise
    finally:
        os.close(fd)


def _rename_whole(dfd: int, name: str, data: bytes, mode: int) -> None:
    tmp = f".{name}.{os.getpid()}.{os.urandom(4).hex()}.tmp"  # unguessable: cannot be pre-planted
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                 dir_fd=dfd)
    try:
        _write_all(fd, data, mode)
    except BaseException:
        os.close(fd)
        os.unlink(tmp, dir_fd=dfd)
        raise
    os.close(fd)
    os.rename(tmp, name, src_dir_fd=dfd, dst_dir_fd=dfd)


def _write_all(fd: int, data: bytes, mode: int) -> None:
    while data:
        data = data[os.write(fd, data):]
    os.fchmod(fd, mode)  # the umask must not change what the setting asks for
    os.fsync(fd)


def _announce_close_write(dfd: int, name: str) -> None:
    """Open the final name for writing and close it: IN_CLOSE_WRITE <name> (nothing is written)."""
    try:
        fd = os.open(name, os.O_WRONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dfd)
    except OSError:
        return  # replaced meanwhile (a symlink, a fifo without reader): nothing to announce
    os.close(fd)
