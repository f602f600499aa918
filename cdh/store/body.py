"""Request bodies that are slices of the held zip, streamed from disk: a part is never in memory.

:class:`FileSlice` is what every PUT and UploadPart sends. It is both

- a seekable file-like object for botocore (``len``, ``read``, ``seek``, ``tell``):
  botocore takes the Content-Length from it, and rewinds it before a retry; and
- an aiohttp ``Payload``, which aiobotocore hands to aiohttp as it is. aiohttp then
  calls :meth:`FileSlice.write_with_length`, which reads the slice in
  :data:`CHUNK_BYTES` pieces (positioned reads on the held descriptor: the bytes of the
  locked file) and writes each to the connection, waiting while the socket's buffer is
  full. Every send starts at the slice's first byte, whatever the cursor: an attempt
  cut off mid-part (a reset connection) is retried from the part's start.

Memory bound (the agent's, from the settings): a request in flight holds at most
two chunks of a file (the one the socket is taking, the next one read), and
:func:`crc32_of_slice` one; requests carrying file data take one of the
``CDH_PART_CONCURRENCY`` slots shared by every upload (cdh/store/__init__.py: Transfer). So the bytes of
zips in memory are at most ``CDH_PART_CONCURRENCY x 2 x CHUNK_BYTES``
(:func:`memory_bound_bytes`), whatever ``CDH_PART_SIZE``,
``CDH_UPLOAD_CONCURRENCY`` and the size of the cores. The kernel's socket buffers
hold more, but they are not the agent's RSS.

Reads: a chunk that is all in the page cache (a core the composer has just written)
is read on the event loop without blocking (``RWF_NOWAIT``); otherwise in a worker
thread, so a cold disk never stalls the loop. A chunk is a fresh object each time:
the transport may keep a view of it until the kernel has taken it.

The CRC32 goes in a header, so it is known before the body is sent: a first pass
reads the slice for it (:func:`crc32_of_slice`, in a worker thread), the send reads
it again. If the bytes change between the two, the store refuses the request (the
CRC32 does not match); if the file ends early, both raise :class:`SourceChanged`:
an error, never a shorter object.
"""

from __future__ import annotations

import asyncio
import os
import zlib
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

from aiohttp import payload

if TYPE_CHECKING:
    from aiohttp.abc import AbstractStreamWriter

try:  # ISA-L's CRC32: several times zlib's speed (README "Performance"), same polynomial, same values
    from isal.isal_zlib import crc32 as _crc32
except ImportError:  # pragma: no cover - isal is a dependency; zlib is the fallback
    _crc32 = zlib.crc32

T = TypeVar("T")
KiB, MiB = 1 << 10, 1 << 20
CHUNK_BYTES = 1 * MiB  # per read and write: few syscalls and loop turns per GB, little memory
_NOWAIT = getattr(os, "RWF_NOWAIT", 0)  # Linux 4.14+


def memory_bound_bytes(part_concurrency: int) -> int:
    """At most this many bytes of zips are in the agent's memory (see the module's docstring)."""
    return part_concurrency * 2 * CHUNK_BYTES


class SourceChanged(OSError):
    """The file ended before the slice did: it shrank while it was being uploaded."""


def _shrank(path: str, at: int, needed: int) -> SourceChanged:
    return SourceChanged(f"{path}: the file ends at byte {at} but the upload needs {needed}"
                         " (it shrank during the upload)")


def crc32(data, value: int = 0) -> int:
    return _crc32(data, value)


def read_at(fd: int, offset: int, length: int, path: str) -> bytes:
    """Exactly ``length`` bytes at ``offset`` (blocking); :class:`SourceChanged` at an early end."""
    data = os.pread(fd, length, offset)
    if len(data) == length:
        return data
    pieces, got = [data], len(data)
    while got < length:  # a short read: go on from where it stopped
        more = os.pread(fd, length - got, offset + got)
        if not more:
            raise _shrank(path, offset + got, offset + length)
        pieces.append(more)
        got += len(more)
    return b"".join(pieces)


def read_cached(fd: int, offset: int, length: int) -> bytearray | None:
    """The ``length`` bytes at ``offset`` if all are in the page cache (never blocks), else None."""
    if not _NOWAIT:
        return None
    buf = bytearray(length)
    try:
        got = os.preadv(fd, [buf], offset, _NOWAIT)
    except OSError:  # EAGAIN: not all cached; EOPNOTSUPP: a filesystem without RWF_NOWAIT
        return None
    return buf if got == length else None


def fold_slice(fd: int, offset: int, length: int, path: str, fold: Callable[[memoryview, T], T],
               value: T) -> T:
    """``value = fold(chunk, value)`` over ``length`` bytes at ``offset``, read in chunks into one
    buffer (blocking): a checksum of a slice in one pass, at most one chunk in memory."""
    view = memoryview(bytearray(min(length, CHUNK_BYTES)))
    done = 0
    while done < length:
        got = os.preadv(fd, [view[:min(len(view), length - done)]], offset + done)
        if got == 0:
            raise _shrank(path, offset + done, offset + length)
        value = fold(view[:got], value)
        done += got
    return value


def crc32_of_slice(fd: int, offset: int, length: int, path: str) -> int:
    """CRC32 of ``length`` bytes at ``offset`` (blocking)."""
    return fold_slice(fd, offset, length, path, _crc32, 0)


class FileSlice(payload.Payload):
    """``length`` bytes at ``offset`` of the open file ``fd`` (borrowed: never closed here)."""

    _autoclose = True  # nothing of its own to close

    def __init__(self, fd: int, offset: int, length: int, path: str = "") -> None:
        super().__init__(None, content_type="application/octet-stream")
        self.fd, self.offset, self.length, self.path = fd, offset, length, path
        self._size = length
        self._pos = 0  # botocore's cursor (read, seek, tell); sends do not use it
        self.failure: SourceChanged | None = None

    async def sent_by(self, request: Awaitable[T]) -> T:
        """Await ``request``, the call that sends this body, and return its answer.

        The HTTP stack reports a body that could not be read as a connection error
        ("Could not connect to the endpoint URL"); this raises the real cause instead.
        """
        try:
            return await request
        except Exception as err:
            if self.failure is not None:
                raise self.failure from err
            raise

    # botocore's side: a seekable file-like object -------------------------------------
    def __len__(self) -> int:
        return self.length

    def tell(self) -> int:
        return self._pos

    def seek(self, pos: int, whence: int = os.SEEK_SET) -> int:
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self._pos, os.SEEK_END: self.length}[whence]
        self._pos = min(max(base + pos, 0), self.length)
        return self._pos

    def read(self, n: int | None = -1) -> bytes:
        """Blocking, as a file's read (botocore reads a body only to hash it; ours carry a CRC32)."""
        left = self.length - self._pos
        n = left if n is None or n < 0 else min(n, left)
        data = read_at(self.fd, self.offset + self._pos, n, self.path) if n else b""
        self._pos += n
        return data

    # aiohttp's side: a payload ------------------------------------------------------------
    async def write(self, writer: AbstractStreamWriter) -> None:
        await self.write_with_length(writer, None)

    async def write_with_length(self, writer: AbstractStreamWriter, content_length: int | None) -> None:
        end = self.length if content_length is None else min(self.length, content_length)
        sent = 0
        while sent < end:
            n = min(CHUNK_BYTES, end - sent)
            at = self.offset + sent
            chunk = read_cached(self.fd, at, n)
            if chunk is None:
                try:
                    chunk = await asyncio.to_thread(read_at, self.fd, at, n, self.path)
                except SourceChanged as err:
                    self.failure = err
                    raise
            await writer.write(chunk)  # waits while the socket's buffer is full
            sent += n

    def decode(self, encoding: str = "utf-8", errors: str = "strict") -> str:
        return read_at(self.fd, self.offset, self.length, self.path).decode(encoding, errors)

    def __repr__(self) -> str:  # botocore logs the body it rewinds
        return f"<FileSlice {self.path or self.fd} bytes {self.offset}+{self.length}>"
