"""``cdh ls --group``: the dumps of a listing grouped by crash signature, newest activity first.

One group per signature (cdh/stack/signature.py): how many crashes, when it was first and last
seen, in which namespaces and images, and its top frame, so a crash storm of one bug reads as one
line beside the rare other cause. Dumps without a signature (a composer before cdh's stack traces,
``CDH_STACK_TRACE=false``, or a trace that could not sign) form one group of their own, signature
None.

What a dump's key or listing does not carry (the image and the top frame are in the object's
metadata only) comes from the metadata of a few of its crashes (:func:`fill_from_metadata`): the
newest of each namespace and container in the group, so a storm of 400 crashes of one bug costs a
HEAD per place it crashed in, not one per crash.
"""

from __future__ import annotations

import asyncio

TYPE_CHECKING = False
if TYPE_CHECKING:
    from cdh.store import Store
    from cdh.tools.bucket import DumpObject

MAX_PLACES = 8   # HEADs per group at most: its newest crash in this many (namespace, container) places


class Group:
    __slots__ = ("count", "first", "images", "last", "namespaces", "newest", "nodes", "places", "signature",
                 "top_frame")

    def __init__(self, signature: str | None) -> None:
        self.signature = signature
        self.count = 0
        self.first = self.last = 0.0
        self.namespaces: set[str] = set()
        self.images: set[str] = set()
        self.nodes: set[str] = set()
        self.top_frame: str | None = None
        self.newest: DumpObject | None = None
        self.places: dict[tuple[str, str], DumpObject] = {}  # the newest crash per (namespace, container)

    def add(self, d: DumpObject) -> None:
        self.first = d.time if not self.count else min(self.first, d.time)
        if not self.count or d.time >= self.last:
            self.last, self.newest = d.time, d
            self.top_frame = d.top_frame or self.top_frame
        self.count += 1
        place = self.places.get((d.namespace, d.container))
        if place is None or d.time >= place.time:
            self.places[(d.namespace, d.container)] = d
        for values, value in ((self.namespaces, d.namespace), (self.images, d.image), (self.nodes, d.node)):
            if value:
                values.add(value)

    def as_json(self) -> dict:
        newest = self.newest
        return {"signature": self.signature, "count": self.count, "first_seen": self.first,
                "last_seen": self.last, "top_frame": self.top_frame, "namespaces": sorted(self.namespaces),
                "images": sorted(self.images), "nodes": sorted(self.nodes),
                "newest": {"key": newest.key, "uuid": newest.uuid} if newest else None}


def group(dumps: list[DumpObject]) -> list[Group]:
    """One group per signature, the group with the newest crash first."""
    groups: dict[str | None, Group] = {}
    for d in dumps:
        groups.setdefault(d.signature, Group(d.signature)).add(d)
    return sorted(groups.values(), key=lambda g: (g.last, g.count, g.signature or ""), reverse=True)


async def fill_from_metadata(store: Store, groups: list[Group], concurrency: int) -> None:
    """Images and top frames of dumps read from the listing (their ``metadata`` is None): one HEAD for
    the newest crash of each place of each group (at most :data:`MAX_PLACES` a group, the newest
    places), ``concurrency`` at a time; a dump deleted meanwhile is skipped."""
    from cdh.tools.bucket import from_info, head

    gate = asyncio.Semaphore(concurrency)

    async def one(g: Group, d: DumpObject) -> None:
        async with gate:
            info = await head(store, d.key)
        if info is None:
            return
        read = from_info(info)
        d.image, d.top_frame, d.metadata = read.image, read.top_frame, read.metadata
        if d.image:
            g.images.add(d.image)
        if d is g.newest and d.top_frame:
            g.top_frame = d.top_frame

    await asyncio.gather(*(one(g, d) for g in groups
                           for d in sorted(g.places.values(), key=lambda d: d.time, reverse=True)[:MAX_PLACES]
                           if d.metadata is None))


def few(values: set[str], shown: int = 2) -> str:
    """``a, b +3``: a column that stays short however many values a group has."""
    ordered = sorted(values)
    if not ordered:
        return "-"
    more = len(ordered) - shown
    return ", ".join(ordered[:shown]) + (f" +{more}" if more > 0 else "")
