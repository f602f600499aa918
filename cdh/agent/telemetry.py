"""What the agent shows the people who run it: metrics, probes, Kubernetes Events, the composer's log.

One object per agent, wired in at a few points of cdh/agent/main.py (start, reload,
close, readiness) and otherwise fed by what the agent already says: it taps the
agent's log (cdh/agent/log.py) and the uploader's ``on_zip`` hook. It reads the
agent's state (queue, workers, triggers) but never changes it, and nothing here
can fail or delay an upload: Events are queued, log taps swallow their errors.

Parts: metrics.py (/metrics), probes.py (/healthz, /readyz), k8sevents.py (Events),
composerlog.py (the composer's lines on stdout).
"""

from __future__ import annotations

import asyncio
import os
import stat
import time
from collections import OrderedDict
from typing import TYPE_CHECKING
from urllib.parse import quote

from aiohttp import web

from cdh import keys, ondisk
from cdh.agent import k8sevents
from cdh.agent.composerlog import ComposerLogRelay
from cdh.agent.metrics import Metrics
from cdh.agent.probes import CorePatternCheck, Heartbeat, tasks_alive

if TYPE_CHECKING:
    from cdh.agent.httpserver import HttpServer
    from cdh.agent.localzip import LocalZip
    from cdh.agent.main import Agent
    from cdh.config import Settings

REMEMBERED = 4096          # dump-infos kept between "taken up" and "uploaded" (zips in flight or retrying)
STORAGE_RECHECK_MAX = 10   # while the bucket fails: re-check after 1, 2, 4 ... up to 10 check intervals


class Telemetry:
    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        self.metrics = Metrics()
        self.heartbeat = Heartbeat()
        self.core_pattern = CorePatternCheck(agent.sysctl, agent.log)
        self.events = k8sevents.EventPoster(agent.log)
        self.relay = ComposerLogRelay(agent.settings.host_dir, agent.log)
        self._infos: OrderedDict[str, dict] = OrderedDict()  # zip path -> dump-info
        self._captured: OrderedDict[str, None] = OrderedDict()  # uuids whose CoreDumpCaptured is out
        self._tasks: list[asyncio.Task] = []
        agent.log.taps += [self.metrics.tap, self._tap]
        agent.uploader.on_zip = self.zip_taken

    # ------------------------------------------------------------ life

    async def start(self) -> None:
        """After host setup (HOST_DIR exists), before the health server."""
        self.heartbeat.start()
        self.core_pattern_ours()  # logs the first state; later changes are logged as they are seen
        self._tasks = [asyncio.create_task(self.relay.run(), name="composer-log"),
                       asyncio.create_task(self._checks(), name="checks")]
        if self.agent.settings.k8s_events:
            await self.events.start()

    def add_routes(self, health: HttpServer) -> None:
        health.route("/metrics", self._metrics)

    async def configure(self, settings: Settings) -> None:
        """After a reload: Events follow CDH_K8S_EVENTS."""
        if settings.k8s_events and not self.events.enabled:
            await self.events.start()
        elif not settings.k8s_events and self.events.enabled:
            await self.events.stop()
            self.agent.log.info("k8s_events.stopped")

    async def stop(self) -> None:
        self.heartbeat.stop()
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.events.stop()

    # ------------------------------------------------------------ probes

    def core_pattern_ours(self) -> bool:
        return self.core_pattern.check(self.agent.settings.host_dir)

    def liveness(self) -> dict[str, bool]:
        stopping = self.agent.stopping
        workers, intake = self.agent.running_tasks()
        return {"loop": self.heartbeat.ok(),
                "workers": stopping or tasks_alive(workers),
                "intake": stopping or tasks_alive(intake)}

    async def _checks(self) -> None:
        """Every CDH_CHECK_INTERVAL: core_pattern; and the bucket while it is unreachable."""
        wait = 1
        due = time.monotonic()
        while True:
            await asyncio.sleep(self.agent.settings.check_interval_s)
            self.core_pattern_ours()
            if self.agent.uploader.storage_ok is not False:
                wait, due = 1, time.monotonic()
            elif time.monotonic() >= due:
                await self.agent.check_storage()
                wait = min(wait * 2, STORAGE_RECHECK_MAX)
                due = time.monotonic() + wait * self.agent.settings.check_interval_s

    # ------------------------------------------------------------ metrics

    async def _metrics(self, request: web.Request) -> web.Response:
        await self._sample()
        body, content_type = self.metrics.render(request.headers.get("Accept", ""))
        return web.Response(body=body, headers={"Content-Type": content_type})

    async def _sample(self) -> None:
        a, m = self.agent, self.metrics
        queued, uploading, waiting = a.intake.queue.qsize(), len(a.in_flight), a.intake.waiting
        for state, n in (("queued", queued), ("uploading", uploading), ("retry_wait", waiting)):
            m.queue_depth.labels(state).set(n)
        count, oldest, free = await asyncio.to_thread(scan_core_dir, a.settings.core_dir)
        m.pending_zips.set(count)
        m.oldest_pending.set(max(0.0, time.time() - oldest) if oldest is not None else 0)
        if free is not None:
            m.core_dir_free.set(free)
        m.core_pattern_ours.set(1 if self.core_pattern_ours() else 0)
        m.storage_ok.set(1 if a.uploader.storage_ok else 0)

    # ------------------------------------------------------------ Events

    def zip_taken(self, held: LocalZip, info: dict) -> None:
        """The uploader holds a zip and has read its dump-info (each attempt; once per core counts)."""
        try:
            self._zip_taken(held, info)
        except Exception as err:  # never in the upload's way
            self.agent.log.debug("k8s_events.internal_error", error=repr(err))

    def _zip_taken(self, held: LocalZip, info: dict) -> None:
        _remember(self._infos, held.path, info)
        uuid = str(info.get("uuid") or held.name)
        if uuid in self._captured:
            return
        _remember(self._captured, uuid, None)
        self._post(k8sevents.captured(info, self._node(info), held.name, held.size, time.time()))

    def _tap(self, level: str, event: str, fields: dict) -> None:
        if event != "upload.done" or fields.get("component"):
            return
        info = self._infos.pop(str(fields.get("file")), None)
        if info is not None:
            url = object_url(self.agent.settings, str(fields.get("key")))
            self._post(k8sevents.uploaded(info, self._node(info), url, int(fields.get("bytes") or 0),
                                          time.time()))

    def _post(self, event: dict | None) -> None:
        if event is not None:
            self.events.post(event)

    def _node(self, info: dict) -> str:
        return str(keys.node_of(info, self.agent.settings.node_name) or keys.UNKNOWN)


def object_url(settings: Settings, key: str) -> str:
    """Where the object is: ``s3://bucket/key`` on AWS, the path-style URL on a custom endpoint."""
    if settings.s3_endpoint:
        return f"{settings.s3_endpoint.rstrip('/')}/{settings.s3_bucket}/{quote(key)}"
    return f"s3://{settings.s3_bucket}/{key}"


def scan_core_dir(core_dir: str) -> tuple[int, float | None, int | None]:
    """(finished zips, oldest mtime or None, free bytes or None) of CORE_DIR (blocking)."""
    count, oldest = 0, None
    try:
        with os.scandir(core_dir) as it:
            for entry in it:
                if not ondisk.is_finished_zip(entry.name):
                    continue
                try:
                    st = entry.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue  # uploaded while we looked
                if not stat.S_ISREG(st.st_mode):
                    continue  # the agent never uploads symlinks, fifos ...
                count += 1
                oldest = st.st_mtime if oldest is None else min(oldest, st.st_mtime)
        vfs = os.statvfs(core_dir)
        free = vfs.f_bavail * vfs.f_frsize
    except OSError:
        return count, oldest, None
    return count, oldest, free


def _remember(table: OrderedDict, key: str, value: object) -> None:
    table[key] = value
    table.move_to_end(key)
    while len(table) > REMEMBERED:
        table.popitem(last=False)
