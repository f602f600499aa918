"""The S3 store: uploads (s3upload.py), listing, reading, the bucket check and ``cdh get``'s ETag
check (s3download.py), on one aiobotocore client (s3client.py: the client, errors, arguments).
"""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Any

from cdh import keys
from cdh.store import CHUNK, Failure, ObjectInfo, Store, VerifyError
from cdh.store.s3client import (
    HINTS,
    crc32_b64,
    create_client,
    describe_error,
    encryption_args,
    error_code,
    error_message,
    http_status,
    is_permanent,
)

if TYPE_CHECKING:
    from cdh.destination import Destination, S3Access
    from cdh.store import HeldFile, Transfer


class S3Store(Store):
    kind = "s3"
    hints = HINTS

    def __init__(self, destination: Destination, pool_size: int = 10, log=None) -> None:
        super().__init__(destination, pool_size, log)
        assert destination.s3 is not None
        self.access: S3Access = destination.s3
        self.bucket = destination.bucket
        self.client: Any = None
        self._stack = AsyncExitStack()

    async def open(self) -> None:
        self.client = await self._stack.enter_async_context(create_client(self.access, self.pool_size))

    async def close(self) -> None:
        await self._stack.aclose()

    def failure(self, err: BaseException) -> Failure:
        code = error_code(err)
        return Failure(code=code, message=error_message(err), detail=describe_error(err),
                       permanent=is_permanent(err),
                       status=http_status(err))

    def object_args(self, key: str, metadata: dict[str, str]) -> dict[str, Any]:
        """What every PUT / CreateMultipartUpload carries besides bucket and key."""
        args: dict[str, Any] = {"Metadata": metadata, "ContentType": keys.content_type(key),
                                **encryption_args(self.access)}
        if self.access.storage_class:
            args["StorageClass"] = self.access.storage_class
        return args

    async def upload(self, held: HeldFile, key: str, metadata: dict[str, str], transfer: Transfer) -> str:
        from cdh.store.parts import MAX_SINGLE_PUT_BYTES, MIN_PART_BYTES, PartSizer
        from cdh.store.s3upload import MultipartUpload, abort_stale, check, put_single

        extra = self.object_args(key, metadata)
        if held.size < transfer.multipart_threshold_bytes and held.size <= MAX_SINGLE_PUT_BYTES:
            if held.size >= MIN_PART_BYTES:  # may have gone in parts under an older threshold
                await abort_stale(self.client, self.bucket, key, self.log)
            expected = await put_single(self.client, self.bucket, key, held, transfer.slots, extra)
        else:
            sizer = PartSizer(transfer.part_size_bytes)
            expected = await MultipartUpload(self.client, self.bucket, key, held, sizer, transfer.slots,
                                             self.log).run(extra)
        head = await self.client.head_object(Bucket=self.bucket, Key=key, ChecksumMode="ENABLED")
        if not held.still_there():
            raise VerifyError("the zip changed on disk during the upload")
        return check(head, expected)

    async def check(self) -> None:
        await self.client.head_bucket(Bucket=self.bucket)

    async def list(self, prefix: str) -> AsyncIterator[ObjectInfo]:
        paginator = self.client.get_paginator("list_objects_v2")
        async for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
            for o in page.get("Contents", []):
                yield ObjectInfo(key=o["Key"], size=o["Size"], last_modified=o["LastModified"].timestamp(),
                                 etag=o.get("ETag", ""))

    async def head(self, key: str, **extra) -> ObjectInfo | None:
        try:
            head = await self.client.head_object(Bucket=self.bucket, Key=key, **extra)
        except Exception as err:
            if http_status(err) == 404:
                return None
            raise
        return ObjectInfo(key=key, size=head["ContentLength"], last_modified=head["LastModified"].timestamp(),
                          etag=head.get("ETag", ""),
                          metadata={k.lower(): v for k, v in (head.get("Metadata") or {}).items()},
                          facts={k: head[k] for k in ("ServerSideEncryption", "SSECustomerAlgorithm")
                                 if head.get(k)})

    async def put_bytes(self, key: str, data: bytes) -> None:
        await self.client.put_object(Bucket=self.bucket, Key=key, Body=data, ChecksumAlgorithm="CRC32",
                                     ChecksumCRC32=crc32_b64(zlib.crc32(data)),
                                     **encryption_args(self.access))

    async def get_bytes(self, key: str) -> bytes:
        got = await self.client.get_object(Bucket=self.bucket, Key=key)
        async with got["Body"] as stream:
            return await stream.read()

    async def delete(self, key: str) -> None:
        await self.client.delete_object(Bucket=self.bucket, Key=key)

    async def _read(self, info: ObjectInfo) -> AsyncIterator[bytes]:
        resp = await self.client.get_object(Bucket=self.bucket, Key=info.key, IfMatch=info.etag)
        async with resp["Body"] as body:
            while chunk := await body.read(CHUNK):
                yield chunk

    async def _check_download(self, info: ObjectInfo, path: str, digest: Any) -> str:
        from cdh.store.s3download import check_etag

        return await check_etag(self, info, path, digest.hexdigest())
