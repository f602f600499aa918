"""``cdh ls --group``: the dumps of a listing grouped by crash signature, newest activity first.

One group per signature (cdh/stack/signature.py): how many crashes, when it was first and last
seen, in which namespaces and images, and its top frame, so a crash storm of one bug reads as one
line beside the rare other cause. Dumps without a signature (a composer before cdh's stack traces,
``CDH_STACK_TRACE=false``, or a trace that could not sign) form one group of their own, signature
None.

Every column comes from what ``cdh ls`` read: in the listing layout (cdh/keys.py) the key
carries the signature, the image and the top frame, so a bucket is grouped from its listing alone,
without one HEAD; objects named otherwise were read with their metadata.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from cdh.tools.bucket import DumpObject


class Group:
    __slots__ = ("count", "first", "images", "last", "namespaces", "newest", "nodes", "signature",
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

    def add(self, d: DumpObject) -> None:
        self.first = d.time if not self.count else min(self.first, d.time)
        if not self.count or d.time >= self.last:
            self.last, self.newest = d.time, d
            self.top_frame = d.top_frame or self.top_frame
        self.count += 1
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


def few(values: set[str], shown: int = 2) -> str:
    """``a, b +3``: a column that stays short however many values a group has."""
    ordered = sorted(values)
    if not ordered:
        return "-"
    more = len(ordered) - shown
    return ", ".join(ordered[:shown]) + (f" +{more}" if more > 0 else "")
