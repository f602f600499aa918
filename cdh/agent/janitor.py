"""The agent's side of the retention guard (cdh/retention.py has the design and the table of what
may go): it clears what composers that died left behind, and keeps CORE_DIR within its limits
with the only files it may ever delete. Every decision is one log line.

It runs at start, every INTERVAL_S, PART_GRACE_S after inotify reports a ``.part`` closed
(a composer that dies closes its file, so the agent hears of it at once), and, while a limit
is broken, after each upload (which is what frees space).

Abandoned ``.part`` files: the composer holds an exclusive flock on its ``.part`` until the zip is
complete, and the kernel drops the locks of a dead process. So a ``.part`` whose lock we get, and
that nobody has written for PART_GRACE_S (the grace covers the instants between the composer's
open and its flock, and between its unlock and its rename), was left by a composer that died.
Holding its lock, we look inside: a whole zip with its dump-info (the composer died between its
last write and the rename) is renamed to ``<name>.zip`` and uploaded as usual
(``retention.part_recovered``); anything else cannot be uploaded and is deleted
(``retention.part_abandoned``: the crash's core was lost with its composer).

Abandoned encrypted copies (``.<name>.zip.age``, cdh/agent/staging.py): the uploader holds each one's
flock until it removes it, so one whose lock we get, PART_GRACE_S after it was last written, was left
by an agent (or ``cdh sweep``) that died mid-upload. It is deleted (``retention.staged_removed``); its
zip is still in CORE_DIR and is encrypted again at its next upload.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import stat
import time
from typing import TYPE_CHECKING

from cdh import ondisk, retention

if TYPE_CHECKING:
    from cdh.agent.log import Log
    from cdh.config import Settings

INTERVAL_S = 60.0
OVER_LIMIT_REPEAT_S = 600.0  # while over a limit, say so again this often


class Janitor:
    def __init__(self, settings: Settings, log: Log) -> None:
        self.settings = settings
        self.log = log
        self._pending: dict[str, asyncio.TimerHandle] = {}
        self._tasks: set[asyncio.Future] = set()
        self._over_since: float | None = None
        self._over_logged = 0.0
        self._young: float | None = None  # seconds until the youngest unlocked part may be judged

    def configure(self, settings: Settings) -> None:
        self.settings = settings

    # ------------------------------------------------------------ when

    async def every(self, interval_s: float = INTERVAL_S) -> None:
        """Run now and every ``interval_s`` until cancelled."""
        while True:
            await self._pass(self.parts, self.enforce)
            await asyncio.sleep(interval_s)

    def part_closed(self, path: str) -> None:
        """inotify saw a ``.part`` closed: look at the parts once its grace has passed."""
        self._later(retention.PART_GRACE_S + 0.5, self.parts)

    def uploaded(self) -> None:
        """A zip left the node: when over a limit, see at once whether that was enough."""
        if self._over_since is not None:
            self._later(0.5, self.enforce)

    def _later(self, delay_s: float, step) -> None:
        """Run ``step`` in ``delay_s`` (once, however often this is asked meanwhile)."""
        name = step.__name__
        if name not in self._pending:
            self._pending[name] = asyncio.get_running_loop().call_later(delay_s, self._now, name, step)

    def _now(self, name: str, step) -> None:
        del self._pending[name]
        self._tasks.add(task := asyncio.ensure_future(self._pass(step)))
        task.add_done_callback(self._tasks.discard)

    async def _pass(self, *steps) -> None:
        self._young = None
        await asyncio.to_thread(self.run, *steps)
        if self._young is not None:  # an unlocked part too young to judge: look again when it is not
            self._later(self._young + 0.2, self.parts)

    # ------------------------------------------------------------ what

    def run(self, *steps) -> None:
        """``steps`` (default: parts, then the limits). Never raises: a janitor must not stop the agent."""
        for step in steps or (self.parts, self.enforce):
            try:
                step()
            except OSError as err:
                self.log.error("retention.failed", dir=self.settings.core_dir, error=str(err))

    def parts(self) -> None:
        core_dir = self.settings.core_dir
        try:
            dfd = os.open(core_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as err:
            self.log.error("retention.failed", dir=core_dir, error=err.strerror)
            return
        try:
            for name in sorted(os.listdir(dfd)):
                if ondisk.is_part(name):
                    self._unlocked(dfd, name, self._part)
                elif ondisk.is_staged(name):
                    self._unlocked(dfd, name, self._staged)
        finally:
            os.close(dfd)

    def _unlocked(self, dfd: int, name: str, then) -> None:
        """Call ``then(dfd, fd, name, path, st, age)`` with ``name`` open and its lock held, when nobody
        else holds it and nobody wrote it for PART_GRACE_S."""
        try:
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dfd)
        except OSError:
            return  # gone (published, uploaded or discarded), or a symlink: not ours
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode) or st.st_nlink == 0:
                return
            path = os.path.join(self.settings.core_dir, name)
            age = time.time() - st.st_mtime
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if then == self._part:
                    self.log.info("retention.part_live", file=path, bytes=st.st_size, age_s=round(age, 1),
                                  action="left alone: its composer holds the lock")
                return  # a composer is writing it, or an uploader is sending it
            if age < retention.PART_GRACE_S:
                wait = retention.PART_GRACE_S - age
                self._young = wait if self._young is None else min(self._young, wait)
                return
            then(dfd, fd, name, path, st, age)
        finally:
            os.close(fd)

    def _staged(self, dfd: int, fd: int, name: str, path: str, st: os.stat_result, age: float) -> None:
        try:
            now = os.stat(name, dir_fd=dfd, follow_symlinks=False)
        except FileNotFoundError:
            return
        if (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino):
            return  # an uploader replaced it since we opened it: its copy, under its lock
        os.unlink(name, dir_fd=dfd)
        self.log.warning("retention.staged_removed", file=path, bytes=st.st_size, age_s=round(age, 1),
                         action="deleted: an encrypted copy left by an uploader that died; its zip stays "
                                "and is encrypted again when it is uploaded")

    def _part(self, dfd: int, fd: int, name: str, path: str, st: os.stat_result, age: float) -> None:
        if self._recover(dfd, fd, name, path, st.st_size, age):
            return
        os.unlink(name, dir_fd=dfd)
        os.fsync(dfd)
        self.log.error("retention.part_abandoned", file=path, bytes=st.st_size, age_s=round(age, 1),
                       action="deleted: its composer died before the zip was finished; "
                              "this crash's core is lost")

    def _recover(self, dfd: int, fd: int, name: str, path: str, size: int, age: float) -> bool:
        """Rename a whole zip left unrenamed to ``<name>.zip``; False when it is not one."""
        try:
            with os.fdopen(os.dup(fd), "rb") as f:
                ondisk.read_dump_info(f)
        except ondisk.DumpInfoError:
            return False
        target = ondisk.zip_name_of_part(name)
        try:
            os.stat(target, dir_fd=dfd, follow_symlinks=False)
            return False  # never over an existing file
        except FileNotFoundError:
            pass
        os.rename(name, target, src_dir_fd=dfd, dst_dir_fd=dfd)
        os.fsync(dfd)
        self.log.warning("retention.part_recovered", file=path, zip=target, bytes=size, age_s=round(age, 1),
                         action="its composer died after the zip was complete: renamed, to be uploaded")
        return True

    # ------------------------------------------------------------ the limits

    def enforce(self) -> None:
        """Room under both limits: nothing. A limit reached (less than MIN_ROOM left under it): delete
        uploaded leftovers, oldest first, and say what stays."""
        s = self.settings
        dfd = os.open(s.core_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            total, free = retention.fs_space(dfd)
            limits = retention.Limits(s, total)
            used = retention.dir_usage(dfd)
            device = os.fstat(dfd).st_dev
        finally:
            os.close(dfd)
        short = limits.keep_free + retention.MIN_ROOM - free
        if short > 0:
            free += self._free_leftovers(device, short, limits)
        room, which = limits.room(used, free)
        if room < retention.MIN_ROOM:
            self._over_limit(limits, used, free, which)
        elif self._over_since is not None:
            self._over_since = None
            self.log.info("retention.ok", used=used, free=free, max_use=limits.max_use,
                          keep_free=limits.keep_free)

    def _free_leftovers(self, device: int, needed: int, limits: retention.Limits) -> int:
        """Delete uploaded leftovers on CORE_DIR's filesystem, oldest first; the bytes freed.

        Only the floor is helped: leftovers live outside CORE_DIR, so they never count for CDH_MAX_USE.
        """
        freed = 0
        for path, st in self._leftovers(device):
            if freed >= needed:
                break
            try:
                os.unlink(path)
            except FileNotFoundError:
                continue
            freed += st.st_blocks * 512
            self.log.info("retention.deleted", file=path, bytes=st.st_size,
                          age_s=round(time.time() - st.st_mtime),
                          reason=f"{limits.describe('CDH_KEEP_FREE')}; its core is uploaded")
        return freed

    def _leftovers(self, device: int) -> list[tuple[str, os.stat_result]]:
        """Event files whose zip is gone from CORE_DIR (oldest first), then the rotated composer log."""
        s = self.settings
        found = []
        try:
            names = [n for n in os.listdir(s.event_dir) if n.endswith(ondisk.EVENT_SUFFIX)]
        except OSError:
            names = []
        for name in names:
            path = os.path.join(s.event_dir, name)
            st = _regular(path)
            if st is not None and st.st_dev == device and not self._zip_still_here(path):
                found.append((path, st))
        found.sort(key=lambda item: item[1].st_mtime)
        rotated = ondisk.HostDir(s.host_dir).rotated_log
        log = _regular(rotated)
        if log is not None and log.st_dev == device:
            found.append((rotated, log))
        return found

    def _zip_still_here(self, event_path: str) -> bool:
        """True unless the event names a zip that is no longer in CORE_DIR (uploaded)."""
        try:
            with open(event_path, "rb") as f:
                zip_name = json.loads(f.read(1 << 20)).get("zip")
        except (OSError, ValueError, AttributeError):
            return True  # unreadable: not provably uploaded, keep it
        if not isinstance(zip_name, str) or "/" in zip_name:
            return True
        return os.path.lexists(os.path.join(self.settings.core_dir, zip_name))

    def _over_limit(self, limits: retention.Limits, used: int, free: int, which: str) -> None:
        now = time.monotonic()
        if self._over_since is not None and now - self._over_logged < OVER_LIMIT_REPEAT_S:
            return
        self._over_since = self._over_since or now
        self._over_logged = now
        zips = [n for n in os.listdir(self.settings.core_dir) if ondisk.is_finished_zip(n)]
        self.log.warning("retention.over_limit", limit=which, detail=limits.describe(which), used=used,
                         free=free, zips_kept=len(zips),
                         action="zips not yet uploaded are never deleted; new cores are cut short "
                                "at the limit until uploads free space")


def _regular(path: str) -> os.stat_result | None:
    try:
        st = os.lstat(path)
    except OSError:
        return None
    return st if stat.S_ISREG(st.st_mode) else None

