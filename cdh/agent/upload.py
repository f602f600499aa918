"""Upload one zip: hold it, read its dump-info, send it, confirm the object, then delete it.

Order is the no-loss rule (README "Agent": verify, then delete): the local zip is
deleted only after the store has confirmed the object (cdh/store/: for S3, HEAD shows
the right size, ETag and, where the store returns it, CRC32). Every failure leaves the
zip where it is and says why; the caller decides when to try again (retry.py).

Memory: the store streams the body from the file (cdh/store/body.py) and each request
carrying file data takes one of ``CDH_PART_CONCURRENCY`` slots shared by every upload
(:class:`~cdh.store.Transfer`). So the bytes of zips in memory stay within
``CDH_PART_CONCURRENCY x 2 x body.CHUNK_BYTES`` (body.memory_bound_bytes), whatever the
part size, the file sizes and ``CDH_UPLOAD_CONCURRENCY``.
"""

from __future__ import annotations

import asyncio
import enum
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cdh import keys, ondisk
from cdh.agent.localzip import Busy, Gone, LocalZip, NotAZip
from cdh.store import Transfer

if TYPE_CHECKING:
    from cdh.agent.log import Log
    from cdh.agent.stores import Stores
    from cdh.config import Settings
    from cdh.destination import Destination
    from cdh.store import Store


class Outcome(enum.Enum):
    DONE = "done"          # confirmed in the bucket, local zip deleted
    BUSY = "busy"          # another process holds the zip: try later
    GONE = "gone"          # the zip vanished (another uploader finished it)
    INVALID = "invalid"    # not a usable zip: reported, left in place, not retried
    FAILED = "failed"      # transient failure: retry with backoff
    DENIED = "denied"      # permanent failure (keys, bucket, permissions): retry slowly


@dataclass(frozen=True)
class Result:
    outcome: Outcome
    key: str = ""
    detail: str = ""


def object_key(destination: Destination, node_name: str, info: dict, zip_name: str, mtime: float) -> str:
    """The destination's prefix and key template rendered + zip name (cdh/keys.py); the date is the
    crash's, else the zip's mtime."""
    return keys.object_key(destination.key_prefix_template, info, keys.node_of(info, node_name),
                           keys.crash_time(info, mtime), zip_name)


def object_metadata(settings: Settings, info: dict) -> dict[str, str]:
    """The object metadata of a zip (cdh/keys.py), the same for every kind of store."""
    return keys.metadata(info, keys.node_of(info, settings.node_name))


class Uploader:
    def __init__(self, settings: Settings, stores: Stores, log: Log) -> None:
        self.stores = stores
        self.log = log
        self.storage_ok: bool | None = None  # last word from the store (for /readyz)
        # Called with the held zip and its dump-info before each attempt (cdh/agent/telemetry.py:
        # Kubernetes Events). Must not block or raise.
        self.on_zip: Callable[[LocalZip, dict], None] | None = None
        self.configure(settings)

    def configure(self, settings: Settings) -> None:
        """New settings (reload). Uploads in flight keep the limits and slots they started with."""
        self.settings = settings
        # Requests carrying file data in flight, across every upload: what bounds memory.
        self.transfer = Transfer(slots=asyncio.Semaphore(settings.part_concurrency),
                                 part_size_bytes=settings.part_size_bytes,
                                 multipart_threshold_bytes=settings.multipart_threshold_bytes)

    @property
    def slots(self) -> asyncio.Semaphore:
        return self.transfer.slots

    async def upload(self, path: str) -> Result:
        try:
            async with LocalZip(path) as held:
                return await self._upload_held(held)
        except Busy:
            return Result(Outcome.BUSY, detail="held by another process")
        except Gone:
            return Result(Outcome.GONE)
        except NotAZip as err:
            self.log.error("upload.invalid", file=path, error=str(err))
            return Result(Outcome.INVALID, detail=str(err))

    async def _upload_held(self, held: LocalZip) -> Result:
        try:
            info = await asyncio.to_thread(held.read_info)
        except ondisk.DumpInfoError as err:
            self.log.error("upload.invalid", file=held.path, error=str(err),
                           action="left in place, not uploaded")
            return Result(Outcome.INVALID, detail=str(err))
        if self.on_zip is not None:
            self.on_zip(held, info)
        transfer, metadata = self.transfer, object_metadata(self.settings, info)
        async with self.stores.lease() as store:  # kept to the end, whatever a reload does meanwhile
            key = object_key(store.destination, self.settings.node_name, info, held.name, held.mtime)
            started = time.monotonic()
            try:
                checked = await store.upload(held, key, metadata, transfer)
            except Exception as err:  # anything: the zip stays, the caller retries
                return self._failed(store, held, key, err)
        await asyncio.to_thread(held.delete)  # unlink and fsync the directory: off the loop
        self.storage_ok = True
        elapsed = time.monotonic() - started
        self.log.info("upload.done", file=held.path, key=key, bytes=held.size, seconds=round(elapsed, 3),
                      mib_per_s=round(held.size / 1048576 / max(elapsed, 1e-6), 1), verified=checked,
                      kind=store.kind, url=store.destination.object_url(key))
        return Result(Outcome.DONE, key=key)

    def _failed(self, store: Store, held: LocalZip, key: str, err: Exception) -> Result:
        failure = store.failure(err)
        fields = {"file": held.path, "key": key, "kind": store.kind, "bucket": store.destination.bucket,
                  "code": failure.code, "error": str(err) or repr(err), "action": "left in place, will retry"}
        if failure.permanent:
            self.storage_ok = False
            specific = store.hints.get(failure.code)
            hint = store.hints[""] + (f" ({specific})" if specific else "")
            self.log.error("upload.denied", **fields, hint=f"{hint}; reload with SIGHUP")
            return Result(Outcome.DENIED, key=key, detail=failure.code)
        self.log.warning("upload.failed", **fields)
        return Result(Outcome.FAILED, key=key, detail=failure.code)
