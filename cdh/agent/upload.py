"""Upload one zip: hold it, read its dump-info, send it, confirm the object, then delete it.

Order is the no-loss rule (README "Agent": verify, then delete): the local zip is
deleted only after the store has confirmed the object (cdh/store/: for S3, HEAD shows
the right size, ETag and, where the store returns it, CRC32). Every failure leaves the
zip where it is and says why; the caller decides when to try again (retry.py).

Where it goes is decided at each attempt, by the routes in force then (cdh/routes.py, held
with the stores: stores.py): the zip's namespace picks a route and its store, or the main
destination, or keep (it stays, reported) or drop (deleted unsent, reported). A route with
recipients gets the zip encrypted to them (staging.py): what is uploaded and verified is
that encrypted copy, ``<name>.zip.age``, and the zip is deleted only once it is confirmed.

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

from cdh import agecrypt, keys, ondisk, routes
from cdh.agent.localzip import Busy, Gone, LocalZip, NotAZip
from cdh.agent.staging import NoRoom, Staging
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
    KEPT = "kept"          # the routes keep it on the node: reported, not retried until a reload
    DROPPED = "dropped"    # the routes drop it: deleted unsent, reported


@dataclass(frozen=True)
class Result:
    outcome: Outcome
    key: str = ""
    detail: str = ""


def object_key(destination: Destination, node_name: str, info: dict, zip_name: str, mtime: float) -> str:
    """The destination's prefix and key template rendered + zip name (cdh/keys.py); the date is the
    crash's, else the zip's mtime."""
    return keys.object_key(destination.key_prefix_template, info, keys.node_of(info, node_name),
                           keys.crash_time(info, mtime), zip_name, destination.key_layout)


def object_metadata(settings: Settings, info: dict, route: routes.Route | None = None) -> dict[str, str]:
    """The object metadata of a zip (cdh/keys.py), the same for every kind of store; through a route,
    its name and, when it encrypts, the recipients' fingerprints."""
    metadata = keys.metadata(info, keys.node_of(info, settings.node_name))
    if route is not None:
        metadata |= keys.route_metadata(route.name, agecrypt.fingerprints(route.recipients))
    return metadata


class Uploader:
    def __init__(self, settings: Settings, stores: Stores, log: Log) -> None:
        self.stores = stores
        self.log = log
        # The last word from each destination's store (by route name or MAIN), for /readyz and metrics.
        self.storage: dict[str, bool] = {}
        # Called with the held zip and its dump-info before each attempt (cdh/agent/telemetry.py:
        # Kubernetes Events). Must not block or raise.
        self.on_zip: Callable[[LocalZip, dict], None] | None = None
        self.staging = Staging(settings)
        self.configure(settings)

    def configure(self, settings: Settings) -> None:
        """New settings (reload). Uploads in flight keep the limits and slots they started with."""
        self.settings = settings
        self.staging.configure(settings)
        # Requests carrying file data in flight, across every upload: what bounds memory.
        self.transfer = Transfer(slots=asyncio.Semaphore(settings.part_concurrency),
                                 part_size_bytes=settings.part_size_bytes,
                                 multipart_threshold_bytes=settings.multipart_threshold_bytes)

    @property
    def storage_ok(self) -> bool | None:
        """Every destination's last word was good (None: no word yet)."""
        return all(self.storage.values()) if self.storage else None

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
        choice = self.stores.table.choose(info.get("namespace"))
        if choice.action != "upload":
            return await self._not_sent(held, info, choice)
        route = choice.route
        metadata = object_metadata(self.settings, info, route)
        async with self.stores.lease(choice.name) as store:  # kept to the end, whatever a reload does
            key = object_key(store.destination, self.settings.node_name, info, held.name, held.mtime)
            started = time.monotonic()
            try:
                if route is not None and route.encrypted:
                    key = keys.encrypted_name(key)
                checked, sent = await self._send(store, held, key, metadata, route)
            except NoRoom as err:
                self.log.warning("upload.no_room", file=held.path, route=choice.name, kind=store.kind,
                                 error=str(err), action="left in place, will retry when uploads free space")
                return Result(Outcome.FAILED, key=key, detail="no room to encrypt")
            except Exception as err:  # anything: the zip stays, the caller retries
                return self._failed(store, held, key, err, choice.name)
        await asyncio.to_thread(held.delete)  # unlink and fsync the directory: off the loop
        self.storage[choice.name] = True
        elapsed = time.monotonic() - started
        self.log.info("upload.done", file=held.path, key=key, bytes=held.size, seconds=round(elapsed, 3),
                      mib_per_s=round(held.size / 1048576 / max(elapsed, 1e-6), 1), verified=checked,
                      route=choice.name, kind=store.kind, encrypted=bool(route and route.encrypted),
                      sent_bytes=sent, url=store.destination.object_url(key), namespace=info.get("namespace"),
                      podname=info.get("podname"), signature=info.get("signature"),
                      top_frame=info.get("top_frame"))
        return Result(Outcome.DONE, key=key)

    async def _send(self, store: Store, held: LocalZip, key: str, metadata: dict[str, str],
                    route: routes.Route | None) -> tuple[str, int]:
        """Upload the zip, or its encrypted copy for a route with recipients (removed after, however it
        ends); (what the store checked, the bytes it holds)."""
        if route is None or not route.encrypted:
            return await store.upload(held, key, metadata, self.transfer), held.size
        async with self.staging.encrypted(held, route.recipients) as copy:
            return await store.upload(copy, key, metadata, self.transfer), copy.size

    async def _not_sent(self, held: LocalZip, info: dict, choice: routes.Choice) -> Result:
        """The routes keep the zip on the node (reported once until a reload) or drop it (deleted)."""
        namespace = info.get("namespace") or None
        if choice.action == routes.KEEP:
            self.log.warning("upload.kept", file=held.path, namespace=namespace, reason=choice.why,
                             action="kept on the node, not uploaded; a reload routes it again")
            return Result(Outcome.KEPT, detail=choice.why)
        await asyncio.to_thread(held.delete)
        self.log.warning("upload.dropped", file=held.path, namespace=namespace, bytes=held.size,
                         reason=choice.why, action="deleted, not uploaded")
        return Result(Outcome.DROPPED, detail=choice.why)

    def _failed(self, store: Store, held: LocalZip, key: str, err: Exception, route: str) -> Result:
        failure = store.failure(err)
        fields = {"file": held.path, "key": key, "route": route, "kind": store.kind,
                  "bucket": store.destination.bucket, "code": failure.code, "error": str(err) or repr(err),
                  "action": "left in place, will retry"}
        if failure.permanent:
            self.storage[route] = False
            specific = store.hints.get(failure.code)
            hint = store.hints[""] + (f" ({specific})" if specific else "")
            self.log.error("upload.denied", **fields, hint=f"{hint}; reload with SIGHUP")
            return Result(Outcome.DENIED, key=key, detail=failure.code)
        if hint := store.server_error_hint(failure):
            fields["hint"] = hint
        self.log.warning("upload.failed", **fields)
        return Result(Outcome.FAILED, key=key, detail=failure.code)
