"""The files the crashing process had mapped executable, opened while the kernel still holds it.

``/proc/<pid>/map_files/<start>-<end>`` opens the exact inode behind a mapping: the file the
process ran, even deleted or replaced since, even inside a container's mount namespace, and it
stays readable through the fd after the process and its container are gone. It answers ESRCH
as soon as the kernel lets the process go, so the composer opens them before it closes stdin:
about 13 µs a file (README "Stack traces"). Needs CAP_SYS_ADMIN (or CAP_CHECKPOINT_RESTORE) in
the initial user namespace, which a core_pattern helper has. Imports only ``os`` and ``stat``.
"""

from __future__ import annotations

import os
import stat

MAX_CODE_FILES = 512          # executable file mappings opened (a JVM has ~60)
MAX_ERRORS = 5                # errors reported per crash; the rest are counted


class CodeFile:
    """An executable file mapping and the fd that keeps its file readable."""
    __slots__ = ("end", "fd", "offset", "path", "start")

    def __init__(self, start: int, end: int, offset: int, path: str, fd: int) -> None:
        self.start, self.end, self.offset, self.path, self.fd = start, end, offset, path, fd


def open_code_files(proc_dfd: int, maps: bytes,
                    limit: int = MAX_CODE_FILES) -> tuple[list[CodeFile], list[str]]:
    """Open ``map_files/<start>-<end>`` of every executable file mapping in ``maps``.

    ``proc_dfd`` is the crashing process's /proc/<pid> directory. Only regular files are kept
    (a device mapped executable is not read). Returns (files, errors); the caller closes the
    fds (:func:`close_code_files`).
    """
    files: list[CodeFile] = []
    errors: list[str] = []
    for line in maps.split(b"\n"):
        parts = line.split(None, 5)
        if len(parts) < 6 or b"x" not in parts[1] or not parts[5].startswith(b"/"):
            continue
        if len(files) >= limit:
            errors.append(f"more than {limit} executable file mappings: the rest not opened")
            break
        try:
            start, end = (int(x, 16) for x in parts[0].split(b"-"))
            offset = int(parts[2], 16)
        except ValueError:
            continue
        rng = f"{start:x}-{end:x}"   # map_files names have no leading zeros; maps pads to 8 digits
        path = parts[5].decode("utf-8", "replace")
        try:
            fd = os.open(f"map_files/{rng}", os.O_RDONLY | os.O_CLOEXEC | os.O_NOCTTY | os.O_NONBLOCK,
                         dir_fd=proc_dfd)
        except OSError as err:
            errors.append(f"map_files/{rng} ({path}): {err.strerror}")
            continue
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                os.close(fd)
                continue
        except OSError:
            os.close(fd)
            continue
        files.append(CodeFile(start, end, offset, path, fd))
    if len(errors) > MAX_ERRORS:
        errors[MAX_ERRORS:] = [f"{len(errors) - MAX_ERRORS} more mapped files could not be opened"]
    return files, errors


def close_code_files(files: list[CodeFile]) -> None:
    for f in files:
        try:
            os.close(f.fd)
        except OSError:
            pass
