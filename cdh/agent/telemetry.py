"""What the agent shows the people who run it: metrics, probes, Kubernetes Events, the composer's log.

One object per agent. It sees the agent through :class:`AgentStatus`, a narrow read-only view,
and is fed by what the agent already says: the agent, where it is assembled (cdh/agent/main.py),
adds :meth:`Telemetry.log_taps` to its log (cdh/agent/log.py) and :meth:`Telemetry.zip_taken` as
the uploader's ``on_zip`` hook. It never changes the agent, and nothing here can fail or delay an
upload: Events are queued, log taps swallow their errors.

Parts: metrics.py (/metrics), probes.py (the checks of /healthz and /readyz), httpserver.py
(serves all three), k8sevents.py (Events), composerlog.py (the composer's lines on stdout).
"""

from __future__ import annotations

import asyncio
import os
import stat
import time
from collections import OrderedDict
from typing import TYPE_CHECKING, Protocol

from aiohttp import web

from cdh import keys, ondisk
from cdh.agent import k8sevents
from cdh.agent.composerlog import ComposerLogRelay
from cdh.agent.metrics import Metrics
from cdh.agent.probes import CorePatternCheck, Heartbeat, tasks_alive

if TYPE_CHECKING:
    from cdh.agent.httpserver import HttpServer
    from cdh.agent.localzip import LocalZip
    from cdh.agent.log import Log, Tap
    from cdh.config import Settings
    from cdh.sysctl import Sysctl

REMEMBERED = 4096          # dump-infos kept between "taken up" and "uploaded" (zips in flight or retrying)


class AgentStatus(Protocol):
    """What telemetry reads of the agent, and all it may touch: it only reads."""

    @property
    def settings(self) -> Settings: ...

    @property
    def host_ready(self) -> bool: ...  # host setup done

    @property
    def storage_ok(self) -> bool | None: ...  # every destination's last check or upload succeeded

    @property
    def storage(self) -> dict[str, bool]: ...  # each destination's (main, each route's), by route name

    @property
    def kinds(self) -> dict[str, str]: ...  # each destination's kind (s3, gs, azblob), by route name

    @property
    def kept(self) -> set[str]: ...  # zips the routes keep on the node

    @property
    def stopping(self) -> bool: ...

    def running_tasks(self) -> tuple[list[asyncio.Task], list[asyncio.Task]]: ...  # workers, intake

    def queue_depth(self) -> dict[str, int]: ...  # zips queued, uploading, waiting to retry


class Telemetry:
    def __init__(self, agent: AgentStatus, sysctl: Sysctl, log: Log) -> None:
        self.agent = agent
        self.log = log
        self.metrics = Metrics()
        self.heartbeat = Heartbeat()
        self.core_pattern = CorePatternCheck(sysctl, log)
        self.events = k8sevents.EventPoster(log)
        self.relay = ComposerLogRelay(agent.settings.host_dir, log)
        self._infos: OrderedDict[str, dict] = OrderedDict()  # zip path -> dump-info
        self._captured: OrderedDict[str, None] = OrderedDict()  # uuids whose CoreDumpCaptured is out
        self._tasks: list[asyncio.Task] = []
        self._server: HttpServer | None = None

    def log_taps(self) -> list[Tap]:
        """What the agent's log feeds: the metrics (they count what the log says) and the Events."""
        return [self.metrics.tap, self._tap]

    # ------------------------------------------------------------ life

    async def start(self) -> None:
        """After host setup (HOST_DIR exists): the checks, the relay, Events, then the HTTP server."""
        self.heartbeat.start()
        self.metrics.use_routes(self.agent.kinds)
        self.core_pattern_ours()  # logs the first state; later changes are logged as they are seen
        self._tasks = [asyncio.create_task(self.relay.run(), name="composer-log"),
                       asyncio.create_task(self._watch_core_pattern(), name="checks")]
        if self.agent.settings.k8s_events:
            await self.events.start()
        await self._serve()

    async def _serve(self) -> None:
        """/healthz, /readyz and /metrics on CDH_METRICS_ADDRESS:CDH_METRICS_PORT (port 0: none)."""
        s = self.agent.settings
        if not s.metrics_port:
            return
        from cdh.agent.httpserver import HttpServer

        self._server = HttpServer(s.metrics_port, self.readiness, self.log, host=s.metrics_address,
                                  live_checks=self.liveness)
        self._server.route("/metrics", self._metrics)
        await self._server.start()

    async def configure(self, settings: Settings) -> None:
        """After a reload: Events follow CDH_K8S_EVENTS; the route series the routes (and their kinds)."""
        self.metrics.use_routes(self.agent.kinds)
        if settings.k8s_events and not self.events.enabled:
            await self.events.start()
        elif not settings.k8s_events and self.events.enabled:
            await self.events.stop()
            self.log.info("k8s_events.stopped")

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.stop()
            self._server = None
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

    def readiness(self) -> dict[str, bool]:
        return {"host_setup": self.agent.host_ready, "core_pattern": self.core_pattern_ours(),
                "storage": self.agent.storage_ok is True}

    async def _watch_core_pattern(self) -> None:
        """Every CDH_CHECK_INTERVAL, so a change behind the agent's back is logged even unasked."""
        while True:
            await asyncio.sleep(self.agent.settings.check_interval_s)
            self.core_pattern_ours()

    # ------------------------------------------------------------ metrics

    async def _metrics(self, request: web.Request) -> web.Response:
        await self._sample()
        body, content_type = self.metrics.render(request.headers.get("Accept", ""))
        return web.Response(body=body, headers={"Content-Type": content_type})

    async def _sample(self) -> None:
        a, m = self.agent, self.metrics
        for state, n in a.queue_depth().items():
            m.queue_depth.labels(state).set(n)
        kept = set(a.kept)
        count, oldest, free = await asyncio.to_thread(scan_core_dir, a.settings.core_dir, kept)
        m.pending_zips.set(count)
        m.zips_kept.set(len(kept))
        m.oldest_pending.set(max(0.0, time.time() - oldest) if oldest is not None else 0)
        if free is not None:
            m.core_dir_free.set(free)
        m.core_pattern_ours.set(1 if self.core_pattern_ours() else 0)
        for route, ok in a.storage.items():
            m.storage_ok.labels(route).set(1 if ok else 0)

    # ------------------------------------------------------------ Events

    def zip_taken(self, held: LocalZip, info: dict) -> None:
        """The uploader holds a zip and has read its dump-info (each attempt; once per core counts)."""
        try:
            self._zip_taken(held, info)
        except Exception as err:  # never in the upload's way
            self.log.debug("k8s_events.internal_error", error=repr(err))

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
            url = str(fields.get("url") or fields.get("key"))
            self._post(k8sevents.uploaded(info, self._node(info), url, str(fields.get("kind") or ""),
                                          int(fields.get("bytes") or 0),
                                          time.time()))

    def _post(self, event: dict | None) -> None:
        if event is not None:
            self.events.post(event)

    def _node(self, info: dict) -> str:
        return str(keys.node_of(info, self.agent.settings.node_name) or keys.UNKNOWN)


def scan_core_dir(core_dir: str, kept: set[str] = frozenset()) -> tuple[int, float | None, int | None]:
    """(finished zips, oldest mtime or None, free bytes or None) of CORE_DIR (blocking); zips the routes
    keep on the node (``kept``: their paths) are not pending."""
    count, oldest = 0, None
    try:
        with os.scandir(core_dir) as it:
            for entry in it:
                if not ondisk.is_finished_zip(entry.name) or entry.path in kept:
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
