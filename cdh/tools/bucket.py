"""``cdh ls``: the dumps in the bucket, newest first, from the listing, never downloading a zip.

Objects named in the listing layout (cdh/keys.py, the agent's default) carry every column of
``cdh ls`` in their key: 1,000 dumps per LIST request, no HEAD. The walk (:class:`Walk`) goes one
delimited level per directory of the key prefix template, then lists the day directories of the
layout in parallel, ``concurrency`` requests at a time; with ``--since`` it lists only the days from
then on, and the first of them from ``StartAfter`` the time before it, so ``--since 1h`` costs one
or two requests whatever the bucket holds. A key prefix template such as ``{node}/{namespace}/``
narrows the LIST itself when ``--node``/``--namespace`` fix those values (keys.listing_prefixes).

Other objects (from older cdh agents, from IBM's agent: plain zip names) are read as before, from
their metadata: one HEAD each where the listing carries none (S3), ``concurrency`` at a time, after
dropping those the listing already rules out (``--since``: written before it, or named with an
older crash time).
"""

from __future__ import annotations

import asyncio
import fnmatch
from dataclasses import asdict, dataclass

from cdh import keys, ondisk, signals

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable

    from cdh.store import ObjectInfo, Store

DEFAULT_CONCURRENCY = 16


class BucketError(Exception):
    """The bucket cannot be read; one line that says why (never a credential)."""


@dataclass(slots=True)
class DumpObject:
    key: str
    size: int
    last_modified: float
    etag: str
    time: float                  # crash time: key or metadata, else the name's timestamp, else last modified
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
    metadata: dict[str, str] | None = None  # the object's own (HEAD or a listing with metadata)
    zip_name: str = ""

    def as_json(self) -> dict:
        out = asdict(self)
        if self.metadata is None:  # from the listing: what the metadata would have said
            out["metadata"] = {k: v for k, v in (("namespace", self.namespace), ("pod", self.pod),
                                                  ("container", self.container), ("node", self.node),
                                                  ("exe", self.exe), ("uuid", self.uuid),
                                                  ("image", self.image), ("signature", self.signature or ""),
                                                  ("top-frame", self.top_frame or ""))
                               if v} | ({"signal": str(self.signal)} if self.signal is not None else {})
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


class Walk:
    """Lists prefixes of a bucket: objects in the listing layout become dumps at once, others (and
    encrypted ones, for their recipients) are kept in :attr:`other` for their metadata."""

    def __init__(self, store: Store, since: float | None = None,
                 concurrency: int = DEFAULT_CONCURRENCY) -> None:
        self.store, self.since = store, since
        self.gate = asyncio.Semaphore(concurrency)
        self.dumps: list[DumpObject] = []
        self.other: list[ObjectInfo] = []

    async def run(self, prefixes: list[str], levels: list[int]) -> Walk:
        """Walk each prefix, ``levels[i]`` template directories deep above the layout's days."""
        try:
            await asyncio.gather(*(self.level(p, n) for p, n in zip(prefixes, levels, strict=True)))
        except BucketError:
            raise
        except Exception as err:
            where = self.store.destination.url(prefixes[0] if prefixes else "")
            raise BucketError(f"cannot list {where}: {self.store.failure(err).detail}") from None
        return self

    async def _pages(self, prefix: str, start_after: str = "", directories: bool = False):
        pages = self.store.list_pages(prefix, start_after, directories).__aiter__()
        while True:
            async with self.gate:  # one request in flight per slot, however many directories wait
                try:
                    page = await pages.__anext__()
                except StopAsyncIteration:
                    return
            yield page

    async def level(self, prefix: str, levels: int) -> None:
        """``prefix`` one directory at a time: ``levels`` more template directories, then days."""
        below = []
        async for page in self._pages(prefix, directories=True):
            self._take(page.objects)
            for sub in page.directories:
                if levels > 0:
                    below.append(self.level(sub, levels - 1))
                elif keys.DAY_DIR.fullmatch(sub, len(prefix)):
                    below.append(self.day(sub))
                else:
                    below.append(self.flat(sub))
        await asyncio.gather(*below)

    async def day(self, prefix: str) -> None:
        start = keys.day_start(prefix)
        if self.since is not None and start is not None and start + keys.DAY <= self.since:
            return  # the whole day is before --since
        after = keys.listed_start_after(prefix, self.since) if self.since is not None else None
        await self.flat(prefix, after or "")

    async def flat(self, prefix: str, start_after: str = "") -> None:
        async for page in self._pages(prefix, start_after):
            self._take(page.objects)

    def _take(self, objects: Iterable[ObjectInfo]) -> None:
        for o in objects:
            if not keys.is_dump_key(o.key):
                continue
            listed = keys.parse_listed(o.key)
            if listed is not None and self.since is not None and listed["time"] < self.since:
                continue
            if listed is None or o.key.endswith(keys.ENCRYPTED_SUFFIX):
                self.other.append(o)  # encrypted: its recipients are in its metadata only
            else:
                self.dumps.append(from_listed(o, listed))


def from_listed(obj: ObjectInfo, f: dict) -> DumpObject:
    signal = f["signal"]
    return DumpObject(key=obj.key, size=obj.size, last_modified=obj.last_modified, etag=obj.etag.strip('"'),
                      time=f["time"], namespace=f["namespace"], pod=f["pod"], container=f["container"],
                      node=f["node"], exe=f["exe"], signal=int(signal) if signal.isdigit() else None,
                      uuid=f["uuid"] or ondisk.find_uuid(f["zip_name"]), image=f["image"],
                      signature=f["signature"] or None, top_frame=f["top-frame"] or None,
                      metadata=obj.metadata, zip_name=f["zip_name"])


async def head(store: Store, key: str) -> ObjectInfo | None:
    """The object with its metadata, None when there is none; BucketError when it cannot be read."""
    try:
        return await store.head(key)
    except Exception as err:
        raise BucketError(f"cannot read {store.destination.url(key)}: {store.failure(err).detail}") from None


async def with_metadata(store: Store, objects: list[ObjectInfo], concurrency: int) -> list[DumpObject]:
    """Each object as a dump from its metadata. Where the listing carried none (S3), one HEAD per
    object, ``concurrency`` workers; objects deleted meanwhile are skipped."""
    todo = iter(objects)
    found: list[DumpObject] = []

    async def worker() -> None:
        for obj in todo:
            info = obj if obj.metadata is not None else await head(store, obj.key)
            if info is not None:
                found.append(from_info(info))

    await asyncio.gather(*(worker() for _ in range(min(concurrency, len(objects)))))
    return found


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
        signature=meta.get("signature") or None, top_frame=meta.get("top-frame") or None,
        encrypted_to=encryption[1] if encryption else None, metadata=meta,
        zip_name=keys.zip_name_of(info.key))


def _number(v: str | None) -> float | None:
    try:
        return float(v) if v else None
    except ValueError:
        return None


def may_be_since(obj: ObjectInfo, since: float) -> bool:
    """False when the listing already shows the crash is older than ``since``: the object was written
    before it (an object is written after its crash), or its default name says so."""
    named = _number(ondisk.parse_default_name(obj.key).get("timestamp"))
    return obj.last_modified >= since and (named is None or named >= since)


async def find_dumps(store: Store, prefixes: list[str], filters: Filters,
                     concurrency: int = DEFAULT_CONCURRENCY,
                     levels: list[int] | None = None) -> list[DumpObject]:
    """The dumps under ``prefixes`` that match ``filters``, newest first (``levels``: see Walk.run)."""
    walk = await Walk(store, filters.since, concurrency).run(prefixes, levels or [0] * len(prefixes))
    other = walk.other
    if filters.since is not None:
        other = [o for o in other if may_be_since(o, filters.since)]
    dumps = [d for d in walk.dumps if filters.match(d)]
    dumps += [d for d in await with_metadata(store, other, concurrency) if filters.match(d)]
    dumps.sort(key=lambda d: (d.time, d.key), reverse=True)
    return dumps
