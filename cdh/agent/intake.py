"""Every way a zip reaches the upload queue, and the queue itself.

Triggers: inotify on CORE_DIR (a finished zip appears by rename, so MOVED_TO,
plus CLOSE_WRITE for tools that write in place), a sweep at start, a sweep
every ``CDH_INTERVAL`` and on every ``CDH_SCHEDULE`` tick. All of them
:meth:`Intake.offer` paths; a path that is queued, in flight or waiting for a
retry is not queued again, so triggers may overlap freely.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import stat
import time
from typing import TYPE_CHECKING

from cdh import fsutil, ondisk

if TYPE_CHECKING:
    from collections.abc import Callable

    from cdh.agent.log import Log
    from cdh.config.cron import Schedule


WATCH_RETRY_S = 1.0


class Intake:
    def __init__(self, core_dir: str, log: Log, dir_mode: int = 0o700) -> None:
        self.core_dir = core_dir
        self.dir_mode = dir_mode  # a new CORE_DIR's, as the composer would make it
        self.log = log
        self.queue: asyncio.Queue[str] = asyncio.Queue()
        self.known: set[str] = set()   # queued, in flight, or waiting to retry
        self._retries: dict[str, asyncio.TimerHandle] = {}
        self._closed = asyncio.Event()
        self.on_part_closed: Callable[[str], None] | None = None  # a composer closed (or died on) a .part

    # ------------------------------------------------------------ the queue

    def offer(self, path: str) -> bool:
        """Queue ``path`` if it is a finished zip we do not already have."""
        if self._closed.is_set() or path in self.known or not ondisk.is_finished_zip(os.path.basename(path)):
            return False
        try:
            if not stat.S_ISREG(os.lstat(path).st_mode):
                return False  # symlinks, fifos, directories named *.zip
        except FileNotFoundError:
            return False
        self.known.add(path)
        self.queue.put_nowait(path)
        return True

    async def get(self) -> str | None:
        """The next path to upload, or None once the intake is closed."""
        if self._closed.is_set():
            return None
        getter = asyncio.ensure_future(self.queue.get())
        closed = asyncio.ensure_future(self._closed.wait())
        try:
            await asyncio.wait({getter, closed}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            closed.cancel()
            if not getter.done():
                getter.cancel()
        if getter.done() and not getter.cancelled():
            path = getter.result()
            if not self._closed.is_set():
                return path
            self.known.discard(path)  # taken as we closed: it stays on disk for next time
        return None

    def finished(self, path: str) -> None:
        self.known.discard(path)

    def retry_later(self, path: str, delay_s: float) -> None:
        """Keep ``path`` known and queue it again after ``delay_s``."""
        loop = asyncio.get_running_loop()
        self._retries[path] = loop.call_later(delay_s, self._requeue, path)

    def _requeue(self, path: str) -> None:
        self._retries.pop(path, None)
        self.known.discard(path)
        self.offer(path)

    def retry_now(self) -> int:
        """Every file waiting for a retry is queued now (after a reload)."""
        waiting = list(self._retries)
        for path in waiting:
            self._retries.pop(path).cancel()
            self._requeue(path)
        return len(waiting)

    def close(self) -> None:
        self._closed.set()
        for handle in self._retries.values():
            handle.cancel()
        self._retries.clear()

    @property
    def waiting(self) -> int:
        return len(self._retries)

    # ------------------------------------------------------------ triggers

    def sweep(self, reason: str) -> int:
        """Offer every finished zip in CORE_DIR; returns how many were new."""
        try:
            names = os.listdir(self.core_dir)
        except OSError as err:
            self.log.error("intake.sweep_failed", dir=self.core_dir, error=err.strerror)
            return 0
        new = sum(self.offer(os.path.join(self.core_dir, n)) for n in sorted(names))
        self.log.debug("intake.sweep", reason=reason, new=new)
        return new

    async def watch(self) -> None:
        """inotify on CORE_DIR until cancelled. A queue overflow falls back to a sweep. A lost watch
        (CORE_DIR removed, moved or unmounted) is set up again on a new CORE_DIR, as the next
        composer would make it, so that an inotify-only agent never goes deaf, probes or not.
        Any other failure (inotify limits) ends the task: the liveness probe then restarts us."""
        while True:
            await self._watch_once()
            self.log.error("intake.watch_lost", dir=self.core_dir, action="watching a new CORE_DIR")
            while True:
                try:
                    fsutil.check_dir(self.core_dir, create=True, mode=self.dir_mode, readers=True)
                    break
                except OSError as err:
                    self.log.error("intake.watch_failed", dir=self.core_dir, error=err.strerror)
                    await asyncio.sleep(WATCH_RETRY_S)

    async def _watch_once(self) -> None:
        """Until the watch is lost (returns) or the task is cancelled."""
        from asyncinotify import Inotify, Mask

        with Inotify() as inotify:
            try:
                inotify.add_watch(self.core_dir, Mask.MOVED_TO | Mask.CLOSE_WRITE | Mask.MOVE_SELF
                                  | Mask.ONLYDIR)
            except FileNotFoundError:  # removed again before we watched it: make it once more
                return
            self.sweep("watch started")  # anything that arrived before the watch existed
            async for event in inotify:
                if event.mask & Mask.Q_OVERFLOW:
                    self.log.warning("intake.overflow", action="sweeping CORE_DIR")
                    self.sweep("inotify overflow")
                elif event.mask & (Mask.IGNORED | Mask.MOVE_SELF):
                    return
                elif event.name is not None:
                    self._on_event(str(event.name))

    def _on_event(self, name: str) -> None:
        path = os.path.join(self.core_dir, name)
        if not ondisk.is_part(name):
            self.offer(path)
        elif self.on_part_closed is not None:
            self.on_part_closed(path)

    async def every(self, interval_s: float) -> None:
        """A sweep every ``interval_s`` (any length: a monotonic clock, no 60 s cap)."""
        next_at = time.monotonic() + interval_s
        while True:
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            next_at += interval_s
            self.sweep("interval")

    async def on_schedule(self, schedule: Schedule) -> None:
        """A sweep at each tick of ``schedule`` (cdh/config/cron.py: standard cron, or IBM's)."""
        while True:
            at = schedule.next_after(time.time())
            if at is None:
                self.log.warning("intake.schedule_ended", schedule=str(schedule),
                                 note="the schedule has no more ticks (its years have passed)")
                await self._closed.wait()
                return
            while (left := at - time.time()) > 0:
                await asyncio.sleep(min(left, 60.0))  # re-read the clock: it may have been stepped
            self.sweep("schedule")


async def cancel_all(tasks: list[asyncio.Task]) -> None:
    for t in tasks:
        t.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.gather(*tasks, return_exceptions=True)
