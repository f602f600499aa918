"""Small filesystem helpers shared by the composer and the agent (stdlib only).

cdh runs as root and writes where the kernel, the composer and crictl will execute or read as root,
so the directories it writes in and the files it executes or trusts are reached the way systemd's
``chase()`` and sudo's secure path do (:func:`open_dir`, :func:`open_regular`,
:func:`untrusted_executable`):

- every directory on the way is owned by root (or by whoever runs cdh) and no one else can write
  in it, except that a sticky directory such as /tmp may be passed through (others cannot rename
  or remove what they do not own there);
- the directory cdh writes in is never a symlink and no one else can write in it, sticky or not;
  a symlink above it (RHCOS's /mnt -> /var/mnt) is followed only when root owns it;
- an existing directory is checked, never chmodded: only a directory made here gets a mode (one
  exception, :func:`open_to_readers`: the read bits CDH_ZIP_FILE_MODE and CDH_EVENT_FILE_MODE ask
  CORE_DIR and EVENT_DIR to give);
- a file is opened without following a link and without blocking (a FIFO planted at a log's
  path would hold the opener forever), and used only when it is a regular file with one link,
  owned by root (or by whoever runs cdh).
"""

from __future__ import annotations

import errno
import os
import stat

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
CREATE_NEW = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC  # a file no one planted
MAX_LINKS = 40  # the kernel's own limit on symlinks in one lookup


class UnsafePath(OSError):
    """A directory or file that someone other than root could change: refused, one line saying why."""

    def __init__(self, path: str, why: str) -> None:
        super().__init__(errno.EPERM, f"{path} {why}")
        self.filename = path

    def __str__(self) -> str:
        return self.strerror


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
    remove_quietly(tmp)  # left by a process that had our pid; then created afresh, never through a link
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
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


def open_dir(path: str, create: bool = False, mode: int = 0o700, follow_last: bool = False,
             root: int | None = None, readers: bool = False) -> int:
    """A descriptor of directory ``path``, reached and checked as the module docstring says.

    ``create``: missing directories are made (the last ``mode``, those above it 0755). ``readers``:
    the read and search bits ``mode`` gives the group and others are added to an existing one too
    (:func:`open_to_readers`).
    ``follow_last``: the last component may itself be a root-owned symlink (a directory of programs,
    such as k3s's ``data/current``); cdh's own directories never are. ``root``: a descriptor of the
    directory ``/`` means (another mount namespace's root). Raises :class:`UnsafePath`, or the
    OSError of the lookup (FileNotFoundError without ``create``).
    """
    if not path.startswith("/"):
        raise UnsafePath(path, "is not an absolute path")
    todo = [p for p in reversed(path.split("/")) if p and p != "."]
    top = (lambda: os.open("/", DIR_FLAGS)) if root is None else (lambda: os.dup(root))
    fd = top()
    links = 0
    try:
        _check_dir(os.fstat(fd), path, "/", last=not todo)
        while todo:
            name = todo.pop()
            last = not todo
            try:
                child = os.open(name, DIR_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                if not create or name == "..":
                    raise
                child = _make_dir(fd, name, mode if last else 0o755)
            except OSError as err:
                if err.errno not in (errno.ELOOP, errno.ENOTDIR):
                    raise
                target = _safe_link(fd, name, path, last and not follow_last)
                links += 1
                if links > MAX_LINKS:
                    raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), path) from None
                todo.extend(p for p in reversed(target.split("/")) if p and p != ".")
                if target.startswith("/"):
                    os.close(fd)
                    fd = top()
                continue
            os.close(fd)
            fd = child
            _check_dir(os.fstat(fd), path, name, last)
        if readers:
            open_to_readers(fd, mode)
        return fd
    except BaseException:
        os.close(fd)
        raise


def check_dir(path: str, create: bool = False, mode: int = 0o700, readers: bool = False) -> None:
    """:func:`open_dir` for its checks (and ``create``, ``readers``) alone."""
    os.close(open_dir(path, create, mode, readers=readers))


def open_to_readers(fd: int, mode: int) -> None:
    """Add to checked directory ``fd`` the read and search bits ``mode`` gives its group and others
    (CORE_DIR and EVENT_DIR, for an uploader or sidecar that reads files of CDH_ZIP_FILE_MODE or
    CDH_EVENT_FILE_MODE: ondisk.dir_mode): never a write bit, and never one taken away, so a
    directory cdh did not make is opened at most as far as asked."""
    have = stat.S_IMODE(os.fstat(fd).st_mode)
    if (have | (mode & 0o055)) != have:
        os.fchmod(fd, have | (mode & 0o055))


def _make_dir(parent: int, name: str, mode: int) -> int:
    try:
        os.mkdir(name, mode, dir_fd=parent)
    except FileExistsError:  # another composer made it this instant: check it like any other
        return os.open(name, DIR_FLAGS, dir_fd=parent)
    fd = os.open(name, DIR_FLAGS, dir_fd=parent)
    if os.fstat(fd).st_uid == os.geteuid():
        os.fchmod(fd, mode)  # made here: the umask must not widen or narrow it
    return fd


def _owners() -> tuple[int, ...]:
    return (0, os.geteuid())


def _check_dir(st: os.stat_result, path: str, name: str, last: bool) -> None:
    where = path if last else f"{path} (at {name!r})"
    if st.st_uid not in _owners():
        raise UnsafePath(where, f"is owned by uid {st.st_uid}, not root")
    writable = st.st_mode & 0o022
    if writable and (last or not st.st_mode & stat.S_ISVTX):
        who = "everyone" if st.st_mode & 0o002 else "its group"
        raise UnsafePath(where, f"is writable by {who} (mode {stat.S_IMODE(st.st_mode):04o})")


def _safe_link(parent: int, name: str, path: str, refuse: bool) -> str:
    """The target of symlink ``name`` in ``parent``, if it may be followed; else UnsafePath."""
    st = os.stat(name, dir_fd=parent, follow_symlinks=False)
    if not stat.S_ISLNK(st.st_mode):
        raise UnsafePath(path, f"is not a directory (at {name!r})")
    if refuse:
        raise UnsafePath(path, "is a symlink: cdh never follows one to a directory it writes in")
    if st.st_uid not in _owners():
        raise UnsafePath(path, f"passes through a symlink owned by uid {st.st_uid} (at {name!r})")
    return os.readlink(name, dir_fd=parent)


def open_regular(name: str, flags: int, dir_fd: int | None = None, mode: int = 0o600) -> int:
    """``os.open(name, flags)`` without following a link or blocking; the descriptor only if it is a
    regular file with one link, owned by root (or us). Else UnsafePath (or the open's OSError)."""
    fd = os.open(name, flags | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, mode, dir_fd=dir_fd)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise UnsafePath(name, "is not a regular file")
        if st.st_nlink != 1:
            raise UnsafePath(name, f"has {st.st_nlink} hard links")
        if st.st_uid not in _owners():
            raise UnsafePath(name, f"is owned by uid {st.st_uid}, not root")
    except BaseException:
        os.close(fd)
        raise
    return fd


def untrusted_executable(path: str, root: int | None = None) -> str | None:
    """Why root must not execute ``path``, or None when it may: a regular executable file that root
    owns and no one else can write, in directories no one else can write (symlinks on the way are
    followed only where root owns them). A missing file is a reason too. ``root``: as for open_dir."""
    for _ in range(MAX_LINKS):
        directory, name = os.path.split(path)
        try:
            dfd = open_dir(directory or "/", follow_last=True, root=root)
        except OSError as err:
            return str(err) if isinstance(err, UnsafePath) else f"{path}: {err.strerror}"
        try:
            st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
            if stat.S_ISLNK(st.st_mode):
                if st.st_uid not in _owners():
                    return f"{path} is a symlink owned by uid {st.st_uid}"
                path = os.path.join(directory, os.readlink(name, dir_fd=dfd))  # ".." resolved by open_dir
                continue
        except OSError as err:
            return f"{path}: {err.strerror}"
        finally:
            os.close(dfd)
        if not stat.S_ISREG(st.st_mode) or not st.st_mode & 0o111:
            return f"{path} is not an executable file"
        if st.st_uid not in _owners():
            return f"{path} is owned by uid {st.st_uid}, not root"
        if st.st_mode & 0o022:
            return f"{path} is writable by others (mode {stat.S_IMODE(st.st_mode):04o})"
        return None
    return f"{path}: too many symlinks"


def publish(tmp: str, target: str) -> None:
    """``tmp`` becomes ``target``, never over an existing file or through a planted link (FileExistsError)."""
    try:
        os.link(tmp, target)  # EEXIST when anything, a dangling link included, has the name
    except OSError as err:
        if err.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.EXDEV):  # no hard links here (vfat)
            raise
        if os.path.lexists(target):
            raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), target) from None
        os.rename(tmp, target)


def remove_quietly(path: str) -> bool:
    """Remove a file; True when it was there. Missing is not an error (uninstall must succeed)."""
    try:
        os.unlink(path)
        return True
    except FileNotFoundError:
        return False
