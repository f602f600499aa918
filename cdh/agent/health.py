"""``/healthz`` and ``/readyz`` on ``CDH_METRICS_PORT``, served from the agent's own loop.

- ``/healthz``: 200 while the event loop answers (a wedged loop times the probe out).
- ``/readyz``: 200 when every readiness check passes, else 503; the body lists them.

Routes are a table (:meth:`HealthServer.route`), so ``/metrics`` (issue 8) is one more entry.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from aiohttp import web

from cdh import jsonline

if TYPE_CHECKING:
    from cdh.agent.log import Log

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class HealthServer:
    def __init__(self, port: int, ready_checks: Callable[[], dict[str, bool]], log: Log,
                 host: str = "0.0.0.0") -> None:  # kubelet probes come from the node
        self.port = port
        self.host = host
        self.ready_checks = ready_checks
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
        self.log.info("health.listening", port=self.port, paths=sorted(self.routes))

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def _readyz(self, request: web.Request) -> web.Response:
        checks = self.ready_checks()
        ok = all(checks.values())
        return web.Response(status=200 if ok else 503, content_type="application/json",
                            body=jsonline.dumps({"ready": ok, "checks": checks}))
