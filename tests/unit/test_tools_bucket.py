"""cdh ls's walk (cdh/tools/bucket.py) over a store that can only list everything under a prefix (the
generic Store.list_pages, what a kind without delimited listings gets): the same dumps, each from
its key where the listing layout names it, the others from their metadata."""

from __future__ import annotations

import asyncio

from cdh import destination, keys
from cdh.store import ObjectInfo, Store
from cdh.tools.bucket import Filters, find_dumps

T = 1764650232  # 2025-12-02 04:37:12 UTC
INFO = {"namespace": "shop", "podname": "web-1", "container": "web", "signal": 11, "exe": "segv"}


class ListOnly(Store):
    """In memory: list() and head() only (the rest of a store is not needed to list)."""

    kind = "test"

    def __init__(self, objects: dict[str, dict[str, str] | None]) -> None:
        super().__init__(destination.Destination("s3", "b", s3=destination.S3Access()))
        self.objects, self.heads = objects, []

    async def list(self, prefix):
        for key in sorted(self.objects):
            if key.startswith(prefix):
                yield ObjectInfo(key=key, size=10, last_modified=T + 5)

    async def head(self, key):
        self.heads.append(key)
        return ObjectInfo(key=key, size=10, last_modified=T + 5, metadata=self.objects[key])

    def failure(self, err):
        raise err

    open = close = upload = check = put_bytes = get_bytes = delete = _read = _check_download = None


def _listed(t: int, pod: str, prefix: str = "") -> str:
    return keys.object_key(prefix, {**INFO, "podname": pod}, "node-a", t, f"{pod}.zip")


def test_the_walk_reads_listed_keys_and_heads_only_the_others():
    store = ListOnly({_listed(T, "a"): None, _listed(T - 86400, "b"): None, _listed(T - 5 * 86400, "c"): None,
                      "cores/old-agent.zip": {"pod": "d", "timestamp": str(T - 60)}, "notes.txt": None})
    dumps = asyncio.run(find_dumps(store, [""], Filters()))
    assert [d.pod for d in dumps] == ["a", "d", "b", "c"]
    assert store.heads == ["cores/old-agent.zip"]
    assert dumps[0].time == T and dumps[0].signal == 11 and dumps[0].zip_name == "a.zip"
    recent = asyncio.run(find_dumps(store, [""], Filters(since=T - 3600)))
    assert [d.pod for d in recent] == ["a", "d"]


def test_the_walk_goes_through_template_directories_first():
    store = ListOnly({_listed(T, "a", "node-a/shop/"): None, _listed(T, "b", "node-b/web/"): None})
    dumps = asyncio.run(find_dumps(store, [""], Filters(since=T - 60), levels=[2]))
    assert sorted(d.pod for d in dumps) == ["a", "b"] and store.heads == []
