"""``cdh ls``: the dumps in the bucket, newest first, from object metadata, never downloading a zip.

Cost: one LIST call per 1,000 keys under the narrowed prefixes (see keys.py),
then, where the listing carries no metadata (S3), one HEAD per remaining object,
``concurrency`` at a time. Objects last
modified before ``--since`` are dropped before their HEAD: an object is written
after its crash, so it cannot hold a newer one. With a key prefix template such
as ``{node}/{namespace}/{date}/``, ``--node``/``--namespace``/``--since`` narrow
the LIST itself, so a bucket of millions of dumps lists only the slice asked for.
"""

from __future__ import annotations

import asyncio
import fnmatch
from dataclasses import asdict, dataclass, field

from cdh import keys, ondisk, signals

TYPE_CHECKING = False
if TYPE_CHECKING:
    from cdh.store import ObjectInfo, Store

DEFAULT_CONCURRENCY = 16


class BucketError(Exception):
    """The bucket cannot be read; one line that says why (never a credential)."""


@dataclass
class DumpObject:
    key: str
    size: int
    last_modified: float
    etag: str
    time: float                  # crash time: metadata, else the name's timestamp, else last modified
    namespace: str = ""
    pod: str = ""
    container: str = ""
    node: str = ""
    exe: str = ""
    signal: int | None = None
    uuid: str = ""
    image: str = ""
    signature: str | None = None  # the crash's cause (cdh/stack/signature.py); None: not signed
    top_frame: str | None = None
    encrypted_to: list[str] | None = None  # age recipients' fingerprints when the body is encrypted
    metadata: dict[str, str] = field(default_factory=dict)

    def as_json(self) -> dict:
        out = asdict(self)
        out["signal_name"] = signals.name(self.signal) if self.signal is not None else None
        return out


@dataclass
class Filters:
    namespace: str | None = None
    pod: str | None = None
    node: str | None = None
    since: float | None = None   # epoch seconds
    signature: str | None = None

    def match(self, d: DumpObject) -> bool:
        return (_glob(self.namespace, d.namespace) and _glob(self.pod, d.pod)
                and _glob(self.node, d.node) and (self.since is None or d.time >= self.since)
                and (self.signature is None or fnmatch.fnmatchcase(d.signature or "", self.signature)))


def _glob(pattern: str | None, value: str) -> bool:
    return pattern is None or fnmatch.fnmatchcase(value, pattern)


async def list_zip_objects(store: Store, prefixes: list[str]) -> list[ObjectInfo]:
    """Every dump object (``*.zip``, ``*.zip.age``: cdh/keys.py) under the prefixes (LIST only)."""
    out = []
    try:
        for prefix in prefixes:
            out.extend([o async for o in store.list(prefix) if keys.is_dump_key(o.key)])
    except Exception as err:
        raise BucketError(f"cannot list {store.destination.url(prefixes[0] if prefixes else '')}: "
                          f"{store.failure(err).detail}") from None
    return out


async def head(store: Store, key: str) -> ObjectInfo | None:
    """The object with its metadata, None when there is none; BucketError when it cannot be read."""
    try:
        return await store.head(key)
    except Exception as err:
        raise BucketError(f"cannot read {store.destination.url(key)}: {store.failure(err).detail}") from None


async def with_metadata(store: Store, objects: list[ObjectInfo], concurrency: int) -> list[DumpObject]:
    """Each object as a dump. Where the listing carried no metadata (S3), one HEAD per object,
    ``concurrency`` at a time; objects deleted meanwhile are skipped."""
    gate = asyncio.Semaphore(concurrency)

    async def one(obj: ObjectInfo) -> DumpObject | None:
        if obj.metadata is not None:
            return from_info(obj)
        async with gate:
            found = await head(store, obj.key)
        return from_info(found) if found is not None else None

    found = await asyncio.gather(*(one(o) for o in objects))
    return [d for d in found if d is not None]


def from_info(info: ObjectInfo) -> DumpObject:
    meta = dict(info.metadata or {})
    named = ondisk.parse_default_name(keys.zip_name_of(info.key))
    modified = info.last_modified
    signal = meta.get("signal") or named.get("signal")
    encryption = keys.encryption_of(info.key, meta)
    return DumpObject(
        key=info.key, size=info.size, last_modified=modified, etag=info.etag.strip('"'),
        time=_number(meta.get("timestamp")) or _number(named.get("timestamp")) or modified,
        namespace=meta.get("namespace", ""), pod=meta.get("pod", ""), container=meta.get("container", ""),
        node=meta.get("node", ""), exe=meta.get("exe", ""),
        signal=int(signal) if signal and str(signal).isdigit() else None,
        uuid=meta.get("uuid") or named.get("uuid", ""), image=meta.get("image", ""),
        signature=meta.get("signature") or None, top_frame=meta.get("top-frame") or None, metadata=meta,
        encrypted_to=encryption[1] if encryption else None)


def _number(v: str | None) -> float | None:
    try:
        return float(v) if v else None
    except ValueError:
        return None


async def find_dumps(store: Store, prefixes: list[str], filters: Filters,
                     concurrency: int = DEFAULT_CONCURRENCY) -> list[DumpObject]:
    """The dumps under ``prefixes`` that match ``filters``, newest first."""
    objects = await list_zip_objects(store, prefixes)
    if filters.since is not None:
        objects = [o for o in objects if o.last_modified >= filters.since]
    dumps = await with_metadata(store, objects, concurrency)
    return sorted((d for d in dumps if filters.match(d)), key=lambda d: (d.time, d.key), reverse=True)


