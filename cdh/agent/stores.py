"""The agent's current store, swapped on reload while uploads on the old one finish.

Each upload leases the store it starts with and keeps it to the end (a
multipart upload must not change endpoint or keys half-way); a reload builds
a new store for new uploads, and the old one is closed when its last lease
ends. Built by :func:`cdh.store.open_store` from a Destination, never from the
settings as a whole: what lets each destination carry its own credentials.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from cdh.store import open_store

if TYPE_CHECKING:
    from cdh.config import Settings
    from cdh.destination import Destination
    from cdh.jsonline import Logger
    from cdh.store import Store


class _Generation:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.leases = 0
        self.retired = False


class Stores:
    def __init__(self, log: Logger | None = None) -> None:
        self.log = log
        self._current: _Generation | None = None

    @staticmethod
    def pool_size(settings: Settings) -> int:
        # every part in flight + one PUT/HEAD per file + the odd LIST/abort
        return settings.part_concurrency + settings.upload_concurrency + 2

    async def open(self, destination: Destination, settings: Settings) -> None:
        """Build a store for ``destination``; the previous one retires (closes when idle)."""
        store = open_store(destination, pool_size=self.pool_size(settings), log=self.log)
        await store.open()
        old, self._current = self._current, _Generation(store)
        if old is not None:
            old.retired = True
            await self._close_if_idle(old)

    @property
    def destination(self) -> Destination | None:
        return self._current.store.destination if self._current is not None else None

    @contextlib.asynccontextmanager
    async def lease(self) -> AsyncIterator[Store]:
        gen = self._current
        if gen is None:
            raise RuntimeError("no store: Stores.open() first")
        gen.leases += 1
        try:
            yield gen.store
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
            await gen.store.close()
