"""Small filesystem helpers shared by the composer and the agent (stdlib only)."""

from __future__ import annotations

import os


def fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: str, data: bytes, mode: int = 0o600) -> None:
    """Replace ``path`` with ``data`` so readers see the old or the new file, never a mix.

    A temp file beside it is written, fsynced and renamed over; a running
    process that holds the old file (a composer executing ``cdc``) keeps it.
    """
    directory, name = os.path.split(path)
    tmp = os.path.join(directory, f".{name}.tmp.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fchmod(fd, mode)  # the umask must not widen or narrow what we asked for
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        os.unlink(tmp)
        raise
    os.close(fd)
    os.rename(tmp, path)
    fsync_dir(directory or ".")


def write_if_changed(path: str, data: bytes, mode: int = 0o600) -> bool:
    """:func:`atomic_write` unless ``path`` already holds ``data`` with ``mode``; True when written.

    An agent restarting on a node whose disk is full (cores waiting for it to upload them) must
    not fail for want of space to rewrite files that are already right.
    """
    try:
        st = os.stat(path, follow_symlinks=False)
        if st.st_size == len(data) and (st.st_mode & 0o7777) == mode:
            with open(path, "rb") as f:
                if f.read() == data:
                    return False
    except OSError:
        pass
    atomic_write(path, data, mode)
    return True


def makedirs_private(path: str, mode: int = 0o700) -> None:
    """Create ``path`` (and parents) owned by us with ``mode``; tighten an existing one."""
    os.makedirs(path, mode=mode, exist_ok=True)
    os.chmod(path, mode)


def remove_quietly(path: str) -> bool:
    """Remove a file; True when it was there. Missing is not an error (uninstall must succeed)."""
    try:
        os.unlink(path)
        return True
    except FileNotFoundError:
        return False
