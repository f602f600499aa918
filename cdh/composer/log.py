"""The composer log: HOST_DIR/composer.log, JSON lines (cdh.jsonline), 0600, size-capped.

Many composers may run at once (one per crash, up to core_pipe_limit), so
rotation happens under an exclusive flock on the current file, and only by
the composer that still sees that file at the log's path. One ``.1`` is kept.
When HOST_DIR does not exist (a manual run), lines go to stderr instead: the
composer never creates HOST_DIR itself.

The log is opened through a checked handle on HOST_DIR (cdh/fsutil.py), without
following a link and without blocking, and used only when it is a regular file
with one link: a FIFO planted at its path would otherwise hold the composer in
open(2), before its deadline starts, and with it every crashing process. A
refused log is said on stderr (``log.refused``) and the lines go there.
"""

from __future__ import annotations

import fcntl
import os

from cdh import fsutil, jsonline, ondisk

LOG_FLAGS = os.O_WRONLY | os.O_APPEND | os.O_CREAT


class ComposerLog(jsonline.Logger):
    def __init__(self, host_dir: str | None, level: str = "info", max_bytes: int = 4 << 20) -> None:
        default = jsonline.LEVELS["info"]
        self.threshold = jsonline.OFF if level == "off" else jsonline.LEVELS.get(level, default)
        self.max_bytes = max_bytes
        self.fd: int | None = None
        self.dfd: int | None = None
        self.context: dict = {}  # fields on every line (the dump's uuid)
        if host_dir:
            try:
                self.dfd = fsutil.open_dir(host_dir)
            except FileNotFoundError:
                pass
            except OSError as err:
                self._refused(ondisk.HostDir(host_dir).composer_log, err)
        if self.dfd is not None:
            self.fd = self._open()

    def _open(self) -> int | None:
        try:
            fd = fsutil.open_regular(ondisk.COMPOSER_LOG, LOG_FLAGS, dir_fd=self.dfd)
        except OSError as err:
            self._refused(ondisk.COMPOSER_LOG, err)
            return None
        try:
            os.fchmod(fd, 0o600)
        except OSError:
            pass
        return fd

    def _refused(self, path: str, err: OSError) -> None:
        try:
            os.write(2, jsonline.line("error", "log.refused", {"path": path, "error": str(err),
                                                               "action": "logging to stderr"}))
        except OSError:
            pass

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
                current = os.stat(ondisk.COMPOSER_LOG, dir_fd=self.dfd, follow_symlinks=False)
                still_ours = (current.st_ino, current.st_dev) == (mine.st_ino, mine.st_dev)
            except FileNotFoundError:
                still_ours = False
            if still_ours and mine.st_size + incoming > self.max_bytes:
                os.replace(ondisk.COMPOSER_LOG, ondisk.COMPOSER_LOG + ondisk.ROTATED_SUFFIX,
                           src_dir_fd=self.dfd, dst_dir_fd=self.dfd)
        finally:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)
        self.fd = self._open()  # another composer may have rotated: follow the path
        if self.fd is None:
            raise OSError("cannot reopen the log")

    def close(self) -> None:
        for fd in (self.fd, self.dfd):
            if fd is not None:
                os.close(fd)
        self.fd = self.dfd = None
