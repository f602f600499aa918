"""``cdh ls --group`` over dumps read from the listing: the image and top frame come from one HEAD
of the newest crash per namespace and container of each group, never one per crash."""

from __future__ import annotations

import asyncio

from cdh.store import ObjectInfo
from cdh.tools.bucket import DumpObject
from cdh.tools.groups import MAX_PLACES, fill_from_metadata, group


class HeadCounter:
    """A store that answers HEAD from a dict of metadata by key, counting requests."""

    def __init__(self, metadata: dict[str, dict]) -> None:
        self.metadata, self.heads = metadata, []

    async def head(self, key: str) -> ObjectInfo | None:
        self.heads.append(key)
        meta = self.metadata.get(key)
        return None if meta is None else ObjectInfo(key=key, size=1, last_modified=0, metadata=meta)


def listed(key: str, t: float, signature: str | None, namespace: str = "shop", container: str = "cart"):
    """A dump as the listing layout gives it: no metadata read, so no image and no top frame."""
    d = DumpObject(key=key, size=1, last_modified=t, etag="", time=t, namespace=namespace,
                   container=container, signature=signature)
    d.metadata = None
    return d


def test_a_storm_costs_one_head_per_place_and_the_newest_gives_the_top_frame():
    storm = [listed(f"a{i}", 100 + i, "1-aaaa") for i in range(400)]
    storm += [listed(f"c{i}", 50 + i, "1-aaaa", namespace="shop-canary") for i in range(10)]
    rare = [listed("b0", 10, "1-bbbb", namespace="pay", container="ledger")]
    store = HeadCounter({
        "a399": {"image": "reg/cart:2.4", "top-frame": "cart!apply_coupon"},
        "c9": {"image": "reg/cart:2.5-rc1", "top-frame": "cart!apply_coupon"},
        "b0": {"image": "reg/ledger:7", "top-frame": "ledger!post_entry"},
    })
    groups = group(storm + rare)
    asyncio.run(fill_from_metadata(store, groups, 4))
    assert sorted(store.heads) == ["a399", "b0", "c9"]
    big, small = groups
    assert (big.signature, big.count, big.top_frame) == ("1-aaaa", 410, "cart!apply_coupon")
    assert big.images == {"reg/cart:2.4", "reg/cart:2.5-rc1"}
    assert (small.top_frame, small.images) == ("ledger!post_entry", {"reg/ledger:7"})


def test_dumps_read_from_metadata_cost_no_head_and_places_are_capped():
    from_metadata = DumpObject(key="m", size=1, last_modified=5, etag="", time=5, signature="1-cccc",
                               image="reg/x:1", top_frame="x!f")
    many = [listed(f"p{i}", i, "1-dddd", namespace=f"ns{i}") for i in range(MAX_PLACES + 5)]
    store = HeadCounter({})   # every HEAD finds the object gone: skipped
    groups = group([from_metadata, *many])
    asyncio.run(fill_from_metadata(store, groups, 4))
    assert "m" not in store.heads and len(store.heads) == MAX_PLACES
    assert set(store.heads) == {f"p{i}" for i in range(5, MAX_PLACES + 5)}  # the newest places
    meta_group = next(g for g in groups if g.signature == "1-cccc")
    assert (meta_group.top_frame, meta_group.images) == ("x!f", {"reg/x:1"})
