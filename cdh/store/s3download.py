"""``cdh get`` on S3: is the downloaded file the object? Its ETag says, where it is a digest.

The ETag is an MD5 (single PUT) or an MD5 of part MD5s (multipart; the part sizes come from HEAD
with PartNumber), and no digest at all under SSE-KMS/SSE-C: then it is skipped. The object is read
with If-Match on the ETag (S3Store._read), so a dump replaced mid-download is not mixed with its
successor; the CRC-32 of every zip entry is checked while unpacking (cdh/tools/dumpzip.py).
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from typing import TYPE_CHECKING

from cdh.store import CHUNK, ObjectInfo, VerifyError

if TYPE_CHECKING:
    from cdh.store import Store

PART_HEAD_CONCURRENCY = 16
_MD5 = re.compile(r"^[0-9a-f]{32}$")
_MULTIPART = re.compile(r"^([0-9a-f]{32})-(\d+)$")


async def check_etag(store: Store, info: ObjectInfo, path: str, md5_hex: str) -> str:
    etag = info.etag.strip('"')
    if info.facts.get("ServerSideEncryption") == "aws:kms" or info.facts.get("SSECustomerAlgorithm"):
        return "ETag skipped (not a digest under SSE-KMS/SSE-C)"
    if _MD5.match(etag):
        if md5_hex != etag:
            raise VerifyError(f"MD5 {md5_hex} does not match the ETag {etag}")
        return "ETag (MD5)"
    m = _MULTIPART.match(etag)
    if not m:
        return f"ETag skipped ({etag!r} is not an MD5 form)"
    count = int(m.group(2))
    sizes = await _uniform_part_sizes(store, info, count)
    if sizes is None or _multipart_etag(_md5_parts(path, sizes)) != etag:
        sizes = await _exact_part_sizes(store, info.key, count)  # an uploader with uneven parts
        if _multipart_etag(_md5_parts(path, sizes)) != etag:
            raise VerifyError(f"the bytes do not match the multipart ETag {etag}")
    return f"ETag (MD5 of {count} parts)"


async def _uniform_part_sizes(store: Store, info: ObjectInfo, count: int) -> list[int] | None:
    """Part sizes if every part but the last is as big as part 1 (what uploaders do), else None."""
    first = await store.head(info.key, PartNumber=1)
    if first is None or not first.size:
        return None
    full, rest = divmod(info.size, first.size)
    sizes = [first.size] * full + ([rest] if rest else [])
    return sizes if len(sizes) == count else None


async def _exact_part_sizes(store: Store, key: str, count: int) -> list[int]:
    gate = asyncio.Semaphore(PART_HEAD_CONCURRENCY)

    async def one(n: int) -> int:
        async with gate:
            part = await store.head(key, PartNumber=n)
            return part.size if part else 0

    return list(await asyncio.gather(*(one(n) for n in range(1, count + 1))))


def _multipart_etag(digests: list[bytes]) -> str:
    return f"{hashlib.md5(b''.join(digests), usedforsecurity=False).hexdigest()}-{len(digests)}"


def _md5_parts(path: str, sizes: list[int]) -> list[bytes]:
    out = []
    with open(path, "rb") as f:
        for n in sizes:
            h = hashlib.md5(usedforsecurity=False)
            while n > 0 and (data := f.read(min(CHUNK, n))):
                h.update(data)
                n -= len(data)
            out.append(h.digest())
    return out
