"""The agent's stores, one per destination (the main one and each route's: cdh/routes.py), swapped
on reload while uploads on the old ones finish.

Each upload leases the store it starts with and keeps it to the end (a
multipart upload must not change endpoint or keys half-way); a reload builds
new stores for new uploads, and an old one is closed when its last lease
ends. A destination the reload left exactly as it was keeps its store (its
connections stay warm). Built by :func:`cdh.store.open_store` from a Destination,
never from the settings as a whole: what lets each route carry its own credentials.

The route table and the stores are swapped together, in one step of the event loop, so
that a zip routed by the table always finds its route's store (:meth:`Stores.lease`).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from cdh import routes
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
        self._current: dict[str, _Generation] = {}
        self.table: routes.RouteTable = routes.NONE

    @staticmethod
    def pool_size(settings: Settings) -> int:
        # every part in flight + one PUT/HEAD per file + the odd LIST/abort
        return settings.part_concurrency + settings.upload_concurrency + 2

    async def open(self, destination: Destination | None, settings: Settings,
                   table: routes.RouteTable = routes.NONE) -> None:
        """Stores for ``destination`` (the main one: None when no zip goes there) and for each route of
        ``table``; those no longer wanted retire (closed when idle). Raises, with nothing swapped,
        when a store cannot be built."""
        wanted = {} if destination is None else {routes.MAIN: destination}
        wanted |= {r.name: routes.destination_of(r, settings) for r in table.routes}
        fresh: dict[str, _Generation] = {}
        try:
            for name, dest in wanted.items():
                kept = self._current.get(name)
                if kept is not None and kept.store.destination == dest:
                    fresh[name] = kept
                    continue
                store = open_store(dest, pool_size=self.pool_size(settings), log=self.log)
                await store.open()
                fresh[name] = _Generation(store)
        except BaseException:
            for name, gen in fresh.items():
                if gen is not self._current.get(name):
                    await gen.store.close()
            raise
        old, self._current, self.table = self._current, fresh, table
        for name, gen in old.items():
            if fresh.get(name) is not gen:
                gen.retired = True
                await self._close_if_idle(gen)

    @property
    def destination(self) -> Destination | None:
        """The main destination (None when no zip goes there)."""
        gen = self._current.get(routes.MAIN)
        return gen.store.destination if gen is not None else None

    @property
    def destinations(self) -> list[Destination]:
        """Every destination in use: the main one first, then the routes' in the file's order."""
        return [gen.store.destination for gen in self._current.values()]

    @contextlib.asynccontextmanager
    async def lease(self, name: str = routes.MAIN) -> AsyncIterator[Store]:
        """The current store of destination ``name`` (a route's name, or MAIN), kept to the block's end."""
        gen = self._current.get(name)
        if gen is None:
            raise RuntimeError(f"no store for {name!r}: Stores.open() first")
        gen.leases += 1
        try:
            yield gen.store
        finally:
            gen.leases -= 1
            await self._close_if_idle(gen)

    async def close(self) -> None:
        old, self._current = self._current, {}
        for gen in old.values():
            gen.retired = True
            await self._close_if_idle(gen)

    @staticmethod
    async def _close_if_idle(gen: _Generation) -> None:
        if gen.retired and gen.leases == 0:
            gen.leases = -1  # closed once
            await gen.store.close()
