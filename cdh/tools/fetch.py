"""``cdh get``: find one dump by key or uuid, download it, verify it, unpack it.

Verification, in order: the byte count against the object's size; the ETag
where it is an MD5 (single PUT) or an MD5 of part MD5s (multipart; the part
sizes come from HEAD with PartNumber), skipped under SSE-KMS/SSE-C where the
ETag is not a digest; then the CRC-32 of every zip entry while unpacking. The
object is read with If-Match on the ETag, so a dump replaced mid-download is
not mixed with its successor.

The download goes to ``.<name>.<random>.part`` beside the target, created with
O_CREAT|O_EXCL|O_NOFOLLOW and mode 0600 (a core is a process's memory; a link planted in a
shared directory is never followed), and becomes the target only when verified, never over
a file that is already there.
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import os
import re
import secrets

import aiofiles

from cdh import ondisk
from cdh.s3 import describe_error, http_status
from cdh.tools.bucket import BucketError, head_all, list_zip_objects
from cdh.tools.progress import Progress

CHUNK = 1 << 20
PART_HEAD_CONCURRENCY = 16
_MD5 = re.compile(r"^[0-9a-f]{32}$")
_MULTIPART = re.compile(r"^([0-9a-f]{32})-(\d+)$")


class VerifyError(Exception):
    """The downloaded bytes are not the object's: the message says which check failed."""


async def resolve(client, bucket: str, wanted: str, prefixes: list[str],
                  concurrency: int = 16) -> tuple[str, dict]:
    """(key, HEAD response) for a key or a dump uuid."""
    if not ondisk.is_uuid(wanted):
        zipped = ondisk.zip_name(wanted)
        for key in (wanted, zipped) if not wanted.endswith(ondisk.ZIP_SUFFIX) else (wanted,):
            head = await _head(client, bucket, key)
            if head is not None:
                return key, head
        raise BucketError(f"no object s3://{bucket}/{wanted}")
    objects = await list_zip_objects(client, bucket, prefixes)
    by_name = [o for o in objects if wanted.lower() in o["Key"].rsplit("/", 1)[-1].lower()]
    if not by_name:  # names without the uuid: ask each object's metadata
        by_name = [{"Key": d.key} for d in await head_all(client, bucket, objects, concurrency)
                   if d.uuid.lower() == wanted.lower()]
    if len(by_name) > 1:
        raise BucketError(f"uuid {wanted} matches {len(by_name)} objects: "
                          + ", ".join(o["Key"] for o in by_name[:5]) + "; give the key instead")
    if not by_name:
        raise BucketError(f"no dump with uuid {wanted} in s3://{bucket}/{prefixes[0] if prefixes else ''}")
    key = by_name[0]["Key"]
    head = await _head(client, bucket, key)
    if head is None:
        raise BucketError(f"s3://{bucket}/{key} vanished while looking it up")
    return key, head


async def _head(client, bucket: str, key: str, **extra) -> dict | None:
    try:
        return await client.head_object(Bucket=bucket, Key=key, **extra)
    except Exception as err:
        if http_status(err) == 404:
            return None
        raise BucketError(f"cannot read s3://{bucket}/{key}: {describe_error(err)}") from None


async def download(client, bucket: str, key: str, head: dict, target: str,
                   progress: Progress | None = None) -> list[str]:
    """Download to ``target`` (via a private part file) and verify; return what was checked."""
    size = head["ContentLength"]
    whole, got = hashlib.md5(usedforsecurity=False), 0
    directory, name = os.path.split(target)
    tmp = os.path.join(directory, f".{name}.{secrets.token_hex(8)}.part")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        # aiofiles: each disk write runs in a worker thread while the event loop goes on
        # receiving the next bytes into aiohttp's buffer (a slow disk does not stall the socket).
        async with aiofiles.open(fd, "wb") as out:
            resp = await client.get_object(Bucket=bucket, Key=key, IfMatch=head["ETag"])
            async with resp["Body"] as body:
                while chunk := await body.read(CHUNK):
                    await out.write(chunk)
                    whole.update(chunk)
                    got += len(chunk)
                    if progress:
                        progress.update(len(chunk))
        if progress:
            progress.finish()
        if got != size:
            raise VerifyError(f"got {got} bytes, the object has {size}")
        checked = [f"size {size} bytes", await _check_etag(client, bucket, key, head, tmp, whole.hexdigest())]
        _publish(tmp, target)
        return checked
    except (VerifyError, BucketError, OSError):
        raise
    except Exception as err:  # botocore, aiohttp: a failed or cut transfer
        raise BucketError(f"cannot download s3://{bucket}/{key}: {describe_error(err)}") from None
    finally:
        _remove(tmp)  # the target is a link to it when the download succeeded


async def _check_etag(client, bucket: str, key: str, head: dict, path: str, md5_hex: str) -> str:
    etag = head.get("ETag", "").strip('"')
    if head.get("ServerSideEncryption") == "aws:kms" or head.get("SSECustomerAlgorithm"):
        return "ETag skipped (not a digest under SSE-KMS/SSE-C)"
    if _MD5.match(etag):
        if md5_hex != etag:
            raise VerifyError(f"MD5 {md5_hex} does not match the ETag {etag}")
        return "ETag (MD5)"
    m = _MULTIPART.match(etag)
    if not m:
        return f"ETag skipped ({etag!r} is not an MD5 form)"
    count = int(m.group(2))
    sizes = await _uniform_part_sizes(client, bucket, key, head["ContentLength"], count)
    if sizes is None or _multipart_etag(_md5_parts(path, sizes)) != etag:
        sizes = await _exact_part_sizes(client, bucket, key, count)  # an uploader with uneven parts
        if _multipart_etag(_md5_parts(path, sizes)) != etag:
            raise VerifyError(f"the bytes do not match the multipart ETag {etag}")
    return f"ETag (MD5 of {count} parts)"


async def _uniform_part_sizes(client, bucket: str, key: str, size: int, count: int) -> list[int] | None:
    """Part sizes if every part but the last is as big as part 1 (what uploaders do), else None."""
    first = await _head(client, bucket, key, PartNumber=1)
    if first is None or not first["ContentLength"]:
        return None
    full, rest = divmod(size, first["ContentLength"])
    sizes = [first["ContentLength"]] * full + ([rest] if rest else [])
    return sizes if len(sizes) == count else None


async def _exact_part_sizes(client, bucket: str, key: str, count: int) -> list[int]:
    gate = asyncio.Semaphore(PART_HEAD_CONCURRENCY)

    async def one(n: int) -> int:
        async with gate:
            part = await _head(client, bucket, key, PartNumber=n)
            return part["ContentLength"] if part else 0

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


def _publish(tmp: str, target: str) -> None:
    """``tmp`` becomes ``target``, never over an existing file or through a planted link."""
    try:
        os.link(tmp, target)  # EEXIST when anything, a dangling link included, has the name
    except OSError as err:
        if err.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.EXDEV):  # no hard links here (vfat)
            raise
        if os.path.lexists(target):
            raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), target) from None
        os.rename(tmp, target)


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
