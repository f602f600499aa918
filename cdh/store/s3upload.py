"""Uploads to S3: one PUT or a multipart upload, bodies streamed from disk, then confirmed.

Each part is a :class:`~cdh.store.body.FileSlice` of the held zip (read through its
locked descriptor, so the bytes sent are those of the locked zip), never a buffer of
the whole part. A request slot is taken *before* each part is scheduled (s3transfer's
rule) and given back when its task ends, however it ends; the slots, shared by every
upload, are what bound memory (see body.py).

A restart does not resume parts: it aborts the stale upload and sends the file
again. Resuming would mean trusting parts a dead process sent, which we could
only check by reading and hashing them again; cores are re-read from local disk
far faster than they go over the network, and a fresh upload has one simple
path to verify. The cost is re-sending what was sent before the crash.

Why CRC32 and not MD5: a CRC32 costs a small fraction of an MD5 of the same bytes
(ISA-L's, README "Performance"), and S3's flexible checksums give us CRC32 end
to end: we compute each part's CRC32 from the bytes read off disk
(body.crc32_of_slice, in a worker thread) and send it as ``x-amz-checksum-crc32``; the
store recomputes it and refuses the part if the bytes differ. Then HEAD
(``ChecksumMode=ENABLED``) must show

- the same size as the file on disk,
- the ETag the PUT / CompleteMultipartUpload answered (it is this upload's object,
  whatever the store's ETag means: MD5, MD5-of-MD5s, or opaque under SSE-KMS),
- and, when the store returns one, the CRC32 we expect: the whole file's for a
  single PUT, the CRC32 of the part CRC32s for a multipart upload (S3's
  "composite" checksum, shown as ``<b64>-<parts>``).

Stores that return no checksum (older S3-compatible servers) are confirmed by
size and ETag; their transport is still TLS- and TCP-checked.
"""

from __future__ import annotations

import asyncio
import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cdh.store import VerifyError
from cdh.store.body import FileSlice, crc32_of_slice
from cdh.store.parts import send_in_slots
from cdh.store.s3client import crc32_b64

if TYPE_CHECKING:
    from cdh.jsonline import Logger
    from cdh.store import HeldFile
    from cdh.store.parts import Part, PartSizer

ABORT_TIMEOUT_S = 10.0  # abort is best effort: the bucket's lifecycle rule is the backstop


# ---------------------------------------------------------------- verify


def composite(part_crcs: list[int]) -> str:
    """S3's checksum of a multipart object: CRC32 over the parts' big-endian CRC32s."""
    return crc32_b64(zlib.crc32(b"".join(c.to_bytes(4, "big") for c in part_crcs)))


@dataclass(frozen=True)
class Expected:
    size: int
    etag: str           # as the PUT or CompleteMultipartUpload answered
    crc32: str          # base64; composite (without "-N") for multipart


def check(head: dict, expected: Expected) -> str:
    """Raise VerifyError unless ``head`` (a HeadObject answer) matches. Returns what was checked."""
    size = head.get("ContentLength")
    if size != expected.size:
        raise VerifyError(f"object is {size} bytes, the file {expected.size}")
    etag = head.get("ETag", "")
    if expected.etag and etag != expected.etag:
        raise VerifyError(f"object ETag {etag} is not the uploaded {expected.etag}")
    got = head.get("ChecksumCRC32")
    if not got:
        return "size+etag"
    if got.split("-", 1)[0] != expected.crc32:
        raise VerifyError(f"object CRC32 {got} is not the file's {expected.crc32}")
    return "size+etag+crc32"


# ---------------------------------------------------------------- send


async def put_single(client: Any, bucket: str, key: str, held: HeldFile, slots: asyncio.Semaphore,
                     extra: dict) -> Expected:
    """One PUT of the whole file, its CRC32 in the header (read first, in a worker thread)."""
    async with slots:
        crc = crc32_b64(await asyncio.to_thread(crc32_of_slice, held.fd, 0, held.size, held.path))
        body = FileSlice(held.fd, 0, held.size, held.path)
        resp = await body.sent_by(client.put_object(
            Bucket=bucket, Key=key, Body=body, ChecksumAlgorithm="CRC32", ChecksumCRC32=crc, **extra))
    return Expected(size=held.size, etag=resp["ETag"], crc32=crc)


async def abort_stale(client: Any, bucket: str, key: str, log: Logger) -> int:
    """Abort unfinished multipart uploads of exactly ``key`` (a crashed run's leftovers).

    Safe because we hold the zip's lock: nobody else can be uploading this key now.
    """
    aborted = 0
    paginator = client.get_paginator("list_multipart_uploads")
    async for page in paginator.paginate(Bucket=bucket, Prefix=key):
        for upload in page.get("Uploads", []):
            if upload["Key"] == key:
                await client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload["UploadId"])
                aborted += 1
    if aborted:
        log.info("upload.stale_aborted", key=key, uploads=aborted)
    return aborted


class MultipartUpload:
    def __init__(self, client: Any, bucket: str, key: str, zipfile: HeldFile,
                 sizer: PartSizer, slots: asyncio.Semaphore, log: Logger) -> None:
        self.client = client
        self.bucket = bucket
        self.key = key
        self.zipfile = zipfile
        self.sizer = sizer
        self.slots = slots
        self.log = log
        self.upload_id = ""

    async def run(self, extra: dict) -> Expected:
        await abort_stale(self.client, self.bucket, self.key, self.log)
        created = await self.client.create_multipart_upload(
            Bucket=self.bucket, Key=self.key, ChecksumAlgorithm="CRC32", **extra)
        self.upload_id = created["UploadId"]
        try:
            sent = await self._send_parts(self.sizer.parts(self.zipfile.size))
            done = await self.client.complete_multipart_upload(
                Bucket=self.bucket, Key=self.key, UploadId=self.upload_id,
                MultipartUpload={"Parts": [p for p, _ in sent]})
        except BaseException:
            await self._abort()
            raise
        return Expected(size=self.zipfile.size, etag=done["ETag"], crc32=composite([crc for _, crc in sent]))

    async def _send_parts(self, parts: list[Part]) -> list[tuple[dict, int]]:
        return await send_in_slots(parts, self._upload_part, self.slots, "UploadPart")

    async def _upload_part(self, part: Part) -> tuple[dict, int]:
        z = self.zipfile
        crc = await asyncio.to_thread(crc32_of_slice, z.fd, part.offset, part.length, z.path)
        body = FileSlice(z.fd, part.offset, part.length, z.path)
        resp = await body.sent_by(self.client.upload_part(
            Bucket=self.bucket, Key=self.key, UploadId=self.upload_id, PartNumber=part.number,
            Body=body, ChecksumCRC32=crc32_b64(crc)))
        return {"PartNumber": part.number, "ETag": resp["ETag"], "ChecksumCRC32": crc32_b64(crc)}, crc

    async def _abort(self) -> None:
        """Abort this upload, also when we are being cancelled (shielded, bounded)."""
        call = self.client.abort_multipart_upload(Bucket=self.bucket, Key=self.key, UploadId=self.upload_id)
        try:
            await asyncio.wait_for(asyncio.shield(call), ABORT_TIMEOUT_S)
        except BaseException as err:  # the original failure is what the caller raises
            self.log.warning("upload.abort_failed", key=self.key, upload_id=self.upload_id, error=repr(err))
