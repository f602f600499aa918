"""A multipart upload: parts streamed from disk, several in flight, aborted on failure.

Each part is a :class:`~cdh.agent.body.FileSlice` of the held zip (read through its
locked descriptor, so the bytes sent are those of the locked zip), never a buffer of
the whole part. A request slot is taken *before* each part is scheduled (s3transfer's
rule) and given back when its task ends, however it ends; the slots, shared by every
upload, are what bound memory (see body.py).

A restart does not resume parts: it aborts the stale upload and sends the file
again. Resuming would mean trusting parts a dead process sent, which we could
only check by reading and hashing them again; cores are re-read from local disk
far faster than they go over the network, and a fresh upload has one simple
path to verify. The cost is re-sending what was sent before the crash.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from cdh import s3
from cdh.agent import verify
from cdh.agent.body import FileSlice, crc32_of_slice
from cdh.agent.parts import Part, PartSizer

if TYPE_CHECKING:
    from cdh.agent.localzip import LocalZip
    from cdh.agent.log import Log

ABORT_TIMEOUT_S = 10.0  # abort is best effort: the bucket's lifecycle rule is the backstop


async def abort_stale(client: Any, bucket: str, key: str, log: Log) -> int:
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
    def __init__(self, client: Any, bucket: str, key: str, zipfile: LocalZip,
                 sizer: PartSizer, slots: asyncio.Semaphore, log: Log) -> None:
        self.client = client
        self.bucket = bucket
        self.key = key
        self.zipfile = zipfile
        self.sizer = sizer
        self.slots = slots
        self.log = log
        self.upload_id = ""

    async def run(self, extra: dict) -> verify.Expected:
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
        return verify.Expected(size=self.zipfile.size, etag=done["ETag"],
                               crc32=verify.composite([crc for _, crc in sent]))

    async def _send_parts(self, parts: list[Part]) -> list[tuple[dict, int]]:
        tasks: list[asyncio.Task] = []
        try:
            for part in parts:
                await self.slots.acquire()  # before scheduling (s3transfer's rule)
                failed = next((t for t in tasks if t.done() and t.exception()), None)
                if failed is not None:
                    self.slots.release()
                    raise failed.exception()  # type: ignore[misc]
                task = asyncio.create_task(self._upload_part(part), name=f"UploadPart-{part.number}")
                # A callback, not a `finally` in the task: a task cancelled before it first
                # runs never enters its body, and its slot would be lost for good.
                task.add_done_callback(lambda _: self.slots.release())
                tasks.append(task)
            return list(await asyncio.gather(*tasks))
        except BaseException:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise

    async def _upload_part(self, part: Part) -> tuple[dict, int]:
        z = self.zipfile
        crc = await asyncio.to_thread(crc32_of_slice, z.fd, part.offset, part.length, z.path)
        body = FileSlice(z.fd, part.offset, part.length, z.path)
        resp = await body.sent_by(self.client.upload_part(
            Bucket=self.bucket, Key=self.key, UploadId=self.upload_id, PartNumber=part.number,
            Body=body, ChecksumCRC32=s3.crc32_b64(crc)))
        return {"PartNumber": part.number, "ETag": resp["ETag"], "ChecksumCRC32": s3.crc32_b64(crc)}, crc

    async def _abort(self) -> None:
        """Abort this upload, also when we are being cancelled (shielded, bounded)."""
        call = self.client.abort_multipart_upload(Bucket=self.bucket, Key=self.key, UploadId=self.upload_id)
        try:
            await asyncio.wait_for(asyncio.shield(call), ABORT_TIMEOUT_S)
        except BaseException as err:  # the original failure is what the caller raises
            self.log.warning("upload.abort_failed", key=self.key, upload_id=self.upload_id, error=repr(err))
