"""What /healthz and /readyz report, beyond "the HTTP handler ran".

Liveness (a failing probe restarts the pod, so only what a restart fixes):
- the loop's heartbeat: a task that ticks every second; a loop that was starved or
  blocked for :data:`MAX_LAG_S` answers "not alive" even once it answers again;
- the upload workers are all running (one that died of a bug uploads nothing more);
- the intake triggers are running (an inotify watch lost with its directory ends).

Readiness: host setup done, kernel.core_pattern ours (:class:`CorePatternCheck`, read
at every probe and scrape, and every CDH_CHECK_INTERVAL so a change behind the
agent's back is logged even when nobody asks), the bucket reachable at last check.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from cdh import sysctl as sysctls

if TYPE_CHECKING:
    from cdh.agent.log import Log

BEAT_S = 1.0
MAX_LAG_S = 30.0  # well under the liveness probe's 3 x 20 s, well over any GC or fsync pause


class Heartbeat:
    def __init__(self) -> None:
        self.last = time.monotonic()
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._beat(), name="heartbeat")

    async def _beat(self) -> None:
        while True:
            self.last = time.monotonic()
            await asyncio.sleep(BEAT_S)

    def ok(self) -> bool:
        return (self._task is None or not self._task.done()) and time.monotonic() - self.last < MAX_LAG_S

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()


def tasks_alive(tasks: list[asyncio.Task]) -> bool:
    """None ended on its own (returned or raised); cancelled ones are being replaced (a reload)."""
    return not any(t.done() and not t.cancelled() for t in tasks)


class CorePatternCheck:
    """Is kernel.core_pattern still ours? Logs each change, once."""

    def __init__(self, sysctl: sysctls.Sysctl, log: Log) -> None:
        self.sysctl = sysctl
        self.log = log
        self.ours: bool | None = None  # unknown until host setup has run

    def check(self, host_dir: str) -> bool:
        try:
            pattern = self.sysctl.read("kernel.core_pattern")
            ours = sysctls.is_ours(pattern, host_dir)
        except OSError as err:
            pattern, ours = f"<unreadable: {err.strerror}>", False
        if ours != self.ours:
            if ours:
                self.log.info("host.core_pattern_ours", core_pattern=pattern)
            elif self.ours is not None:
                self.log.error("host.core_pattern_changed", core_pattern=pattern,
                               action="crashes on this node are no longer captured",
                               hint="another tool (systemd-coredump, apport, a sysctl.d file) set it; "
                                    "restart the agent pod to install cdh's again")
        self.ours = ours
        return ours
