"""``/healthz`` and ``/readyz`` on ``CDH_METRICS_PORT``, served from the agent's own loop.

- ``/healthz`` (liveness): 200 when every liveness check passes, else 503 (a wedged loop
  times the probe out; the checks catch a loop that runs but no longer works: see
  cdh/agent/probes.py).
- ``/readyz``: 200 when every readiness check passes, else 503.

Both bodies are JSON naming each check. Routes are a table (:meth:`HttpServer.route`);
``/metrics`` is one more entry (cdh/agent/telemetry.py).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from aiohttp import web

from cdh import jsonline

if TYPE_CHECKING:
    from cdh.agent.log import Log

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Checks = Callable[[], dict[str, bool]]


class HttpServer:
    def __init__(self, port: int, ready_checks: Checks, log: Log,
                 host: str = "0.0.0.0",  # CDH_METRICS_ADDRESS; kubelet probes come from the node
                 live_checks: Checks | None = None) -> None:
        self.port = port
        self.host = host
        self.ready_checks = ready_checks
        self.live_checks = live_checks or (lambda: {"loop": True})
        self.log = log
        self.routes: dict[str, Handler] = {"/healthz": self._healthz, "/readyz": self._readyz}
        self._runner: web.AppRunner | None = None

    def route(self, path: str, handler: Handler) -> None:
        """Add a GET route (before :meth:`start`)."""
        self.routes[path] = handler

    async def start(self) -> None:
        app = web.Application()
        for path, handler in self.routes.items():
            app.router.add_get(path, handler)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True)
        await site.start()
        self.log.info("health.listening", address=self.host, port=self.port, paths=sorted(self.routes))

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _healthz(self, request: web.Request) -> web.Response:
        return _verdict("alive", self.live_checks())

    async def _readyz(self, request: web.Request) -> web.Response:
        return _verdict("ready", self.ready_checks())


def _verdict(word: str, checks: dict[str, bool]) -> web.Response:
    ok = all(checks.values())
    return web.Response(status=200 if ok else 503, content_type="application/json",
                        body=jsonline.dumps({word: ok, "checks": checks}))
