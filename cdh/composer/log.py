"""The composer log: HOST_DIR/composer.log, JSON lines (cdh.jsonline), 0600, size-capped.

Many composers may run at once (one per crash, up to core_pipe_limit), so
rotation happens under an exclusive flock on the current file, and only by
the composer that still sees that file at the log's path. One ``.1`` is kept.
When HOST_DIR does not exist (a manual run), lines go to stderr instead: the
composer never creates HOST_DIR itself.
"""

from __future__ import annotations

import fcntl
import os

from cdh import jsonline, ondisk


class ComposerLog(jsonline.Logger):
    def __init__(self, host_dir: str | None, level: str = "info", max_bytes: int = 4 << 20) -> None:
        self.path = ondisk.HostDir(host_dir).composer_log if host_dir else None
        default = jsonline.LEVELS["info"]
        self.threshold = jsonline.OFF if level == "off" else jsonline.LEVELS.get(level, default)
        self.max_bytes = max_bytes
        self.fd: int | None = None
        self.context: dict = {}  # fields on every line (the dump's uuid)
        if self.path and os.path.isdir(host_dir):
            self.fd = self._open()

    def _open(self) -> int | None:
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC,
                         0o600)
        except OSError:
            return None
        try:
            os.fchmod(fd, 0o600)
        except OSError:
            pass
        return fd

    def emit(self, level: str, event: str, fields: dict) -> None:
        """Never raises: a log that cannot be written must not cost the core."""
        if not self.enabled(level):
            return
        try:
            data = jsonline.line(level, event, {**self.context, **fields})
            if self.fd is None:
                os.write(2, data)
                return
            self._rotate_if_full(len(data))
            os.write(self.fd, data)
        except Exception:
            pass

    def _rotate_if_full(self, incoming: int) -> None:
        if os.fstat(self.fd).st_size + incoming <= self.max_bytes:
            return
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        try:
            mine = os.fstat(self.fd)
            try:
                current = os.stat(self.path, follow_symlinks=False)
                still_ours = (current.st_ino, current.st_dev) == (mine.st_ino, mine.st_dev)
            except FileNotFoundError:
                still_ours = False
            if still_ours and mine.st_size + incoming > self.max_bytes:
                os.replace(self.path, self.path + ondisk.ROTATED_SUFFIX)
        finally:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)
        self.fd = self._open()  # another composer may have rotated: follow the path
        if self.fd is None:
            raise OSError("cannot reopen the log")

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
