"""Upload one zip: hold it, read its dump-info, send it, confirm the object, then delete it.

Order is the no-loss rule (README "Agent": verify, then delete): the local zip is
deleted only after HEAD shows the object with the right size, ETag and (where
the store returns it) CRC32; see verify.py. Every failure leaves the zip where
it is and says why; the caller decides when to try again (retry.py).

Memory: a file below ``CDH_MULTIPART_THRESHOLD`` is sent in one PUT, anything
bigger in parts (multipart.py); either way the body streams from the file
(body.FileSlice) and each request takes one of ``CDH_PART_CONCURRENCY`` slots
shared by every upload. So the bytes of zips in memory stay within
``CDH_PART_CONCURRENCY x 2 x body.CHUNK_BYTES`` (body.memory_bound_bytes),
whatever the part size, the file sizes and ``CDH_UPLOAD_CONCURRENCY``.
"""

from __future__ import annotations

import asyncio
import enum
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cdh import keys, ondisk, s3
from cdh.agent import retry, verify
from cdh.agent.body import FileSlice, crc32_of_slice
from cdh.agent.localzip import Busy, Gone, LocalZip, NotAZip
from cdh.agent.multipart import MultipartUpload, abort_stale
from cdh.agent.parts import MAX_SINGLE_PUT_BYTES, MIN_PART_BYTES, PartSizer

if TYPE_CHECKING:
    from cdh.agent.clients import Clients
    from cdh.agent.log import Log
    from cdh.config import Settings


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


def object_key(settings: Settings, info: dict, zip_name: str, mtime: float) -> str:
    """Rendered CDH_S3_KEY_PREFIX + zip name (cdh/keys.py); the date is the crash's, else the zip's mtime."""
    return keys.object_key(settings.s3_key_prefix, info, keys.node_of(info, settings.node_name),
                           keys.crash_time(info, mtime), zip_name)


def object_args(settings: Settings, info: dict) -> dict[str, Any]:
    """What every PUT / CreateMultipartUpload carries besides bucket and key."""
    metadata = keys.metadata(info, keys.node_of(info, settings.node_name))
    args: dict[str, Any] = {"Metadata": metadata, "ContentType": "application/zip",
                            **s3.encryption_args(settings)}
    if settings.s3_storage_class:
        args["StorageClass"] = settings.s3_storage_class
    return args


class Uploader:
    def __init__(self, settings: Settings, clients: Clients, log: Log) -> None:
        self.clients = clients
        self.log = log
        self.storage_ok: bool | None = None  # last word from the store (for /readyz)
        # Called with the held zip and its dump-info before each attempt (cdh/agent/telemetry.py:
        # Kubernetes Events). Must not block or raise.
        self.on_zip: Callable[[LocalZip, dict], None] | None = None
        self.configure(settings)

    def configure(self, settings: Settings) -> None:
        """New settings (reload). Uploads in flight keep the sizer and slots they started with."""
        self.settings = settings
        self.sizer = PartSizer(settings.part_size_bytes)
        # Requests carrying file data in flight, across every upload: what bounds memory.
        self.slots = asyncio.Semaphore(settings.part_concurrency)

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
        key = object_key(self.settings, info, held.name, held.mtime)
        started = time.monotonic()
        try:
            checked = await self._send_and_verify(held, key, info)
        except Exception as err:  # anything: the zip stays, the caller retries
            return self._failed(held, key, err)
        await asyncio.to_thread(held.delete)  # unlink and fsync the directory: off the loop
        self.storage_ok = True
        elapsed = time.monotonic() - started
        self.log.info("upload.done", file=held.path, key=key, bytes=held.size, seconds=round(elapsed, 3),
                      mib_per_s=round(held.size / 1048576 / max(elapsed, 1e-6), 1), verified=checked,
                      namespace=info.get("namespace"), podname=info.get("podname"),
                      signature=info.get("signature"), top_frame=info.get("top_frame"))
        return Result(Outcome.DONE, key=key)

    async def _send_and_verify(self, held: LocalZip, key: str, info: dict) -> str:
        s = self.settings
        extra = object_args(s, info)
        async with self.clients.lease() as client:
            if held.size < s.multipart_threshold_bytes and held.size <= MAX_SINGLE_PUT_BYTES:
                if held.size >= MIN_PART_BYTES:  # may have gone in parts under an older threshold
                    await abort_stale(client, s.s3_bucket, key, self.log)
                expected = await self._put_single(client, held, key, extra)
            else:
                expected = await MultipartUpload(client, s.s3_bucket, key, held, self.sizer,
                                                 self.slots, self.log).run(extra)
            head = await client.head_object(Bucket=s.s3_bucket, Key=key, ChecksumMode="ENABLED")
        if not held.still_there():
            raise verify.VerifyError("the zip changed on disk during the upload")
        return verify.check(head, expected)

    async def _put_single(self, client: Any, held: LocalZip, key: str, extra: dict) -> verify.Expected:
        async with self.slots:
            crc = s3.crc32_b64(await asyncio.to_thread(crc32_of_slice, held.fd, 0, held.size, held.path))
            body = FileSlice(held.fd, 0, held.size, held.path)
            resp = await body.sent_by(client.put_object(
                Bucket=self.settings.s3_bucket, Key=key, Body=body, ChecksumAlgorithm="CRC32",
                ChecksumCRC32=crc, **extra))
        return verify.Expected(size=held.size, etag=resp["ETag"], crc32=crc)

    def _failed(self, held: LocalZip, key: str, err: Exception) -> Result:
        permanent = retry.is_permanent(err)
        code = s3.error_code(err)
        fields = {"file": held.path, "key": key, "bucket": self.settings.s3_bucket, "code": code,
                  "error": str(err) or repr(err), "action": "left in place, will retry"}
        if permanent:
            self.storage_ok = False
            self.log.error("upload.denied", **fields,
                           hint="check CDH_S3_BUCKET, the keys and the bucket policy; reload with SIGHUP")
            return Result(Outcome.DENIED, key=key, detail=code)
        self.log.warning("upload.failed", **fields)
        return Result(Outcome.FAILED, key=key, detail=code)
