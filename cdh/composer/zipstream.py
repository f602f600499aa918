"""A streaming zip writer: one big entry streamed with bounded memory, then small ones.

Why not ``zipfile``: it imports a lot (shutil, bz2, lzma, importlib), cannot
write zstd (method 93) on Python < 3.14, and cannot drop an entry that failed
half-way (disk full). This writer writes straight to a file descriptor:

- The streamed entry gets a local header with a Zip64 extra field (sizes
  unknown up front); when the entry ends, its CRC and sizes are patched in
  place with ``pwrite``. No data descriptors, so every reader is happy.
- :meth:`StreamEntry.abort` cuts the file back to where the entry began
  (``ftruncate``): the archive stays valid without it.
- :meth:`ZipWriter.close` writes the central directory, with Zip64 end records
  only when an offset or count needs them.

Entries are regular files, mode 0444, made by Unix. The streamed entry is
compressed and written by cdh.composer.blocks (worker threads, a fixed pool
of blocks); small entries by one compressor in the calling thread.
"""

from __future__ import annotations

import os
import struct
import time

from cdh.composer.compress import DEFLATED, STORED, ZSTD, _deflate, compressor, crc32

__all__ = ["DEFLATED", "METHODS", "STORED", "ZSTD", "ZipWriter", "_deflate", "available_method", "crc32"]

METHODS = {"none": STORED, "deflate": DEFLATED, "zstd": ZSTD}

_LOCAL = struct.Struct("<IHHHHHIIIHH")
_CENTRAL = struct.Struct("<IHHHHHHIIIHHHHHII")
_EOCD = struct.Struct("<IHHHHIIH")
_EOCD64 = struct.Struct("<IQHHIIQQQQ")
_LOCATOR64 = struct.Struct("<IIQI")
_ZIP64_EXTRA = 0x0001
_MAX32 = 0xFFFFFFFF
_MAX16 = 0xFFFF
_UNIX_FILE_0444 = (0o100444 << 16)
_VERSION = {STORED: 20, DEFLATED: 20, ZSTD: 63}  # "version needed" per APPNOTE 4.4.3
_VERSION_ZIP64 = 45


def available_method(name: str) -> str:
    """``name`` if this node can write it, else ``deflate`` (zstandard missing)."""
    if name == "zstd":
        try:
            import zstandard  # noqa: F401
        except ImportError:
            return "deflate"
    return name


def dos_datetime(t: float) -> tuple[int, int]:
    tm = time.localtime(t)
    year = min(max(tm.tm_year, 1980), 2107)
    date = ((year - 1980) << 9) | (tm.tm_mon << 5) | tm.tm_mday
    clock = (tm.tm_hour << 11) | (tm.tm_min << 5) | (tm.tm_sec // 2)
    return date, clock


class _Entry:
    __slots__ = ("compressed", "crc", "method", "name", "offset", "size", "zip64")

    def __init__(self, name: bytes, method: int, offset: int, zip64: bool) -> None:
        self.name = name
        self.method = method
        self.offset = offset
        self.zip64 = zip64
        self.crc = 0
        self.size = 0
        self.compressed = 0


class ZipWriter:
    """Writes a zip to ``fd`` (opened for writing at offset 0). Not thread-safe."""

    def __init__(self, fd: int, mtime: float) -> None:
        self.fd = fd
        self.offset = 0
        self.entries: list[_Entry] = []
        self._date, self._time = dos_datetime(mtime)
        self._open: StreamEntry | None = None

    def _write(self, data) -> None:
        view = memoryview(data)
        while view:
            n = os.write(self.fd, view)
            view = view[n:]
            self.offset += n

    def _local_header(self, e: _Entry, csize: int, size: int, extra: bytes) -> bytes:
        version = _VERSION_ZIP64 if e.zip64 else _VERSION[e.method]
        return _LOCAL.pack(0x04034B50, version, 0, e.method, self._time, self._date,
                           e.crc, csize, size, len(e.name), len(extra)) + e.name + extra

    def add(self, name: str, data: bytes, method: int = DEFLATED) -> None:
        """Add a small entry held in memory (metadata, logs)."""
        if self._open is not None:
            raise RuntimeError("a streamed entry is still open")
        if method == ZSTD:
            method = DEFLATED  # small entries stay readable by every unzip
        e = _Entry(name.encode(), method, self.offset, zip64=False)
        e.crc = crc32(data)
        e.size = len(data)
        if method == DEFLATED:
            comp = compressor(DEFLATED)
            payload = comp.compress(data) + comp.flush()
        else:
            payload = data
        e.compressed = len(payload)
        if e.size >= _MAX32 or e.compressed >= _MAX32:
            raise ValueError(f"{name}: too big for a small entry")
        try:
            self._write(self._local_header(e, e.compressed, e.size, b"") + payload)
        except OSError:
            self.rollback(e.offset)  # disk full: the archive so far stays valid without it
            raise
        self.entries.append(e)

    def rollback(self, offset: int) -> None:
        """Cut the file back to ``offset`` (the start of an entry that could not be written)."""
        os.ftruncate(self.fd, offset)
        os.lseek(self.fd, offset, os.SEEK_SET)
        self.offset = offset

    def stream(self, name: str, method: int) -> StreamEntry:
        """Start the big entry; write chunks to the returned object, then finish or abort it."""
        if self._open is not None:
            raise RuntimeError("a streamed entry is still open")
        self._open = StreamEntry(self, _Entry(name.encode(), method, self.offset, zip64=True))
        return self._open

    def close(self) -> int:
        """Write the central directory and end records; returns the archive's size."""
        if self._open is not None:
            raise RuntimeError("a streamed entry is still open")
        cd_offset = self.offset
        self._write(b"".join(self._central(e) for e in self.entries))
        cd_size = self.offset - cd_offset
        count = len(self.entries)
        if cd_offset >= _MAX32 or cd_size >= _MAX32 or count >= _MAX16:
            eocd64_offset = self.offset
            self._write(_EOCD64.pack(0x06064B50, 44, (3 << 8) | _VERSION_ZIP64, _VERSION_ZIP64,
                                     0, 0, count, count, cd_size, cd_offset)
                        + _LOCATOR64.pack(0x07064B50, 0, eocd64_offset, 1))
        self._write(_EOCD.pack(0x06054B50, 0, 0, min(count, _MAX16), min(count, _MAX16),
                               min(cd_size, _MAX32), min(cd_offset, _MAX32), 0))
        return self.offset

    def _central(self, e: _Entry) -> bytes:
        extra = b""
        size, csize, offset = e.size, e.compressed, e.offset
        if e.zip64 or max(size, csize, offset) >= _MAX32:
            # APPNOTE 4.5.3: only the fields whose header value is 0xFFFFFFFF, in this order.
            fields = [size, csize]
            size = csize = _MAX32
            if offset >= _MAX32:
                fields.append(offset)
                offset = _MAX32
            extra = struct.pack(f"<HH{len(fields)}Q", _ZIP64_EXTRA, 8 * len(fields), *fields)
        version = _VERSION_ZIP64 if extra else _VERSION[e.method]
        return _CENTRAL.pack(0x02014B50, (3 << 8) | version, version, 0, e.method, self._time,
                             self._date, e.crc, csize, size, len(e.name), len(extra), 0, 0, 0,
                             _UNIX_FILE_0444, offset) + e.name + extra


class StreamEntry:
    """The one big entry (the core): fill :meth:`free` blocks and :meth:`submit` them
    (or :meth:`write` bytes), then :meth:`finish` or :meth:`abort`.

    Blocks are compressed and written on threads (cdh.composer.blocks): a write
    error (disk full) is raised by a later :meth:`submit` or by :meth:`finish`.
    """

    def __init__(self, zw: ZipWriter, entry: _Entry) -> None:
        from cdh.composer.blocks import Blocks

        self.zw = zw
        self.entry = entry
        # Local header with a Zip64 extra holding placeholder sizes, patched in finish().
        extra = struct.pack("<HHQQ", _ZIP64_EXTRA, 16, 0, 0)
        header = zw._local_header(entry, _MAX32, _MAX32, extra)
        self._extra_at = entry.offset + len(header) - 16
        zw._write(header)
        self._data_at = zw.offset
        self._blocks = Blocks(entry.method, zw._write)

    @property
    def size(self) -> int:
        """Uncompressed bytes submitted so far."""
        return self._blocks.size

    @property
    def pending(self) -> int:
        """Bytes submitted but not yet written: what the file may still grow by (about) for them."""
        return self._blocks.size - self._blocks.settled

    def free(self) -> bytearray:
        """An empty block to fill (``len()`` is the most it holds); waits while all are busy."""
        return self._blocks.free()

    def submit(self, block: bytearray, n: int) -> None:
        """Add ``block[:n]`` to the entry; the block goes back to the pool once written."""
        self._blocks.submit(block, n)

    def write(self, data) -> None:
        """Add ``data`` (any size), copied into blocks."""
        self._blocks.write(data)

    def finish(self) -> None:
        self._blocks.close()  # everything written, or the write error raised
        e = self.entry
        e.crc, e.size, e.compressed = self._blocks.crc, self._blocks.size, self.zw.offset - self._data_at
        fd = self.zw.fd
        _pwrite_all(fd, struct.pack("<I", e.crc), e.offset + 14)
        _pwrite_all(fd, struct.pack("<QQ", e.size, e.compressed), self._extra_at)
        self.zw.entries.append(e)
        self.zw._open = None

    def abort(self) -> None:
        """Drop the entry: cut the file back to where it began (frees the space)."""
        self._blocks.abort()
        self.zw._open = None
        self.zw.rollback(self.entry.offset)


def _pwrite_all(fd: int, data: bytes, offset: int) -> None:
    view = memoryview(data)
    while view:
        n = os.pwrite(fd, view, offset)
        view, offset = view[n:], offset + n
