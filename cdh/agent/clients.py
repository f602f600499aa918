"""The agent's current S3 client, swapped on reload while uploads on the old one finish.

Each upload leases the client it starts with and keeps it to the end (a
multipart upload must not change endpoint or keys half-way); a reload builds
a new client for new uploads, and the old one is closed when its last lease
ends. Built by :func:`cdh.s3.create_client`, the one client factory.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Any

from cdh import s3

if TYPE_CHECKING:
    from cdh.config import Settings


class _Generation:
    def __init__(self, client: Any, stack: AsyncExitStack) -> None:
        self.client = client
        self.stack = stack
        self.leases = 0
        self.retired = False


class Clients:
    def __init__(self) -> None:
        self._current: _Generation | None = None

    @staticmethod
    def pool_size(settings: Settings) -> int:
        # every part in flight + one PUT/HEAD per file + the odd LIST/abort
        return settings.part_concurrency + settings.upload_concurrency + 2

    async def open(self, settings: Settings) -> None:
        """Build a client for ``settings``; the previous one retires (closes when idle)."""
        stack = AsyncExitStack()
        client = await stack.enter_async_context(
            s3.create_client(settings, max_pool_connections=self.pool_size(settings)))
        old, self._current = self._current, _Generation(client, stack)
        if old is not None:
            old.retired = True
            await self._close_if_idle(old)

    @contextlib.asynccontextmanager
    async def lease(self) -> AsyncIterator[Any]:
        gen = self._current
        if gen is None:
            raise RuntimeError("no S3 client: Clients.open() first")
        gen.leases += 1
        try:
            yield gen.client
        finally:
            gen.leases -= 1
            await self._close_if_idle(gen)

    async def close(self) -> None:
        gen, self._current = self._current, None
        if gen is not None:
            gen.retired = True
            await self._close_if_idle(gen)

    @staticmethod
    async def _close_if_idle(gen: _Generation) -> None:
        if gen.retired and gen.leases == 0:
            gen.leases = -1  # closed once
            await gen.stack.aclose()
