"""Confirm an object before its zip is deleted.

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

import zlib
from dataclasses import dataclass

from cdh.s3 import crc32_b64


class VerifyError(RuntimeError):
    """The object in the bucket is not the file on disk: keep the zip, upload again."""


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
