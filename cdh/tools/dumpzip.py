"""A dump as the composer writes it, read from its zip or from the directory it was unpacked to.

Entries (flat, named after the dump): ``<name>-dump-info.json``, ``<name>.core``,
``<name>-pod-info.json``, ``<name>-runtime-info.json``, ``<name>-ps-info.json``,
per container i ``<name>-<i>.log`` and ``<name>-<i>-image-info.json``, and the
crasher's /proc files under ``<name>-proc/``.

The core may be deflated, stored, or zstd-compressed (zip method 93, which the
stdlib's zipfile cannot open): zstd entries are read from their raw bytes with
the zstandard package. Unpacking (``cdh get``) is cdh/tools/unpack.py.

The zip is the bucket writer's, every byte of it: whatever zipfile, zlib or zstandard raise on
a damaged or crafted zip (and a read past the end or at an offset of 2^63) ends here as one
:class:`DumpError` line, and no read is bigger than what the file or the entry holds.
"""

from __future__ import annotations

import os
import struct
import zipfile
import zlib
from collections.abc import Callable
from typing import BinaryIO

from cdh import ondisk

ZIP_ZSTD = 93
CHUNK = 1 << 20
MAX_SMALL_ENTRY = 64 << 20   # JSON and logs are read into memory; a bigger one is not ours
METHODS = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflate", ZIP_ZSTD: "zstd"}


class DumpError(Exception):
    """A dump cannot be read or is damaged; the message says which entry and why, in one line."""


def read_errors() -> tuple[type[BaseException], ...]:
    """What reading a crafted zip can raise, from zipfile (BadZipFile, NotImplementedError for a
    "zip file version 6.8", UnicodeDecodeError for a name flagged UTF-8 that is not, RuntimeError for
    an encrypted entry), zlib, zstandard, and seeks or reads at impossible offsets."""
    return (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, OSError, NotImplementedError,
            ValueError, OverflowError, struct.error, RuntimeError, _zstd_error())


def why(err: BaseException) -> str:
    """An exception as a short reason: the strerror of an OSError, never a traceback."""
    if isinstance(err, OSError) and err.strerror:
        return err.strerror
    text = str(err).splitlines()[0][:200] if str(err) else ""
    return text or type(err).__name__


class Dump:
    """One dump: a ``.zip`` path or a directory holding the unpacked entries."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._zip: zipfile.ZipFile | None = None
        if os.path.isdir(path):
            self.root = _dump_dir(path)
            self.entries = _walk(self.root)
        else:
            try:
                self._zip = zipfile.ZipFile(path)
            except read_errors() as err:
                raise DumpError(f"{path}: not a readable zip ({why(err)})") from None
            self.root = None
            self.entries = [i.filename for i in self._zip.infolist() if i.filename and not i.is_dir()]
        try:
            self.name = _dump_name(self.entries, path)
        except DumpError:
            self.close()
            raise

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()

    def __enter__(self) -> Dump:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- entries by role
    def entry(self, suffix: str) -> str | None:
        name = self.name + suffix
        return name if name in self.entries else None

    def containers(self) -> list[int]:
        found = {ondisk.container_index(e) for e in self.entries if e.startswith(self.name + "-")}
        return sorted(found - {None})

    def local_path(self, entry: str) -> str | None:
        """Where ``entry`` is on disk (directory dumps only)."""
        return os.path.join(self.root, entry) if self.root else None

    # --- reading
    def read_bytes(self, entry: str) -> bytes:
        size = self.size(entry)
        if size > MAX_SMALL_ENTRY:
            raise DumpError(f"{entry}: {size} bytes is too big for a metadata entry")
        reader = self.reader(entry)
        try:
            return reader.read_at(0, size)
        finally:
            reader.close()

    def size(self, entry: str) -> int:
        if self._zip is not None:
            return self._zip.getinfo(entry).file_size
        return os.path.getsize(self.local_path(entry))

    def compression(self, entry: str) -> str:
        if self._zip is None:
            return "file"
        method = self._zip.getinfo(entry).compress_type
        return METHODS.get(method, f"method {method}")

    def reader(self, entry: str) -> RandomReader:
        """Random access to an entry: pread on a file, forward decompression in a zip."""
        if self._zip is None:
            return FileReader(self.local_path(entry))
        info = self._zip.getinfo(entry)
        if info.compress_type == zipfile.ZIP_STORED:  # random access in place: no copy, no scan
            with open(self.path, "rb") as fp:
                start = data_offset(fp, info)
            return FileReader(self.path, start, info.file_size)
        return ForwardReader(lambda: open_entry(self._zip, info), info.file_size)


def open_entry(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> BinaryIO:
    """A stream of the entry's uncompressed bytes (stored, deflate or zstd); DumpError if it cannot
    be opened."""
    if info.compress_type not in METHODS:
        raise DumpError(f"{info.filename}: unsupported zip compression method {info.compress_type}")
    try:
        if info.compress_type != ZIP_ZSTD:
            return zf.open(info)
        import zstandard

        # Its own handle (zipfile's is shared between entries), closed with the returned reader.
        fp = open(zf.filename, "rb")  # noqa: SIM115
        try:
            raw = _RawSlice(fp, data_offset(fp, info), info.compress_size)
        except BaseException:
            fp.close()
            raise
        return zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True, closefd=True)
    except DumpError:
        raise
    except read_errors() as err:
        raise DumpError(f"{info.filename}: cannot be read ({why(err)})") from None


def data_offset(fp: BinaryIO, info: zipfile.ZipInfo) -> int:
    """Where the entry's (compressed) bytes start: after its local header."""
    try:
        fp.seek(info.header_offset)
        head = fp.read(30)
    except (OSError, OverflowError, ValueError) as err:
        raise DumpError(f"{info.filename}: bad local header offset ({why(err)})") from None
    if len(head) != 30 or head[:4] != b"PK\x03\x04":
        raise DumpError(f"{info.filename}: bad local header")
    name_len, extra_len = struct.unpack_from("<HH", head, 26)
    return info.header_offset + 30 + name_len + extra_len


class _RawSlice:
    """The compressed bytes of one entry, as a read-only stream."""

    def __init__(self, fp: BinaryIO, start: int, size: int) -> None:
        self._fp, self._left = fp, size
        fp.seek(start)

    def read(self, n: int = -1) -> bytes:
        n = self._left if n < 0 else min(n, self._left)
        data = self._fp.read(n)
        self._left -= len(data)
        return data

    def close(self) -> None:
        self._fp.close()


class FileReader:
    """``read_at`` on a file, or on the ``size`` bytes of it that start at ``start``; never past the
    file's end (a header asking for 240 GB gets what the file holds)."""

    def __init__(self, path: str, start: int = 0, size: int | None = None) -> None:
        self._fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        self._start = start
        file_end = os.fstat(self._fd).st_size
        self._end = file_end if size is None else min(start + size, file_end)

    def read_at(self, offset: int, size: int) -> bytes:
        at = self._start + offset
        size = min(size, self._end - at)
        if offset < 0 or size <= 0:
            return b""
        return os.pread(self._fd, size, at)

    def close(self) -> None:
        os.close(self._fd)


class ForwardReader:
    """``read_at`` over a stream that only reads forward; going back reopens the stream.

    Readers ask in increasing offset order, so a compressed core is decompressed
    at most once (and only as far as the last byte asked for).
    """

    def __init__(self, opener: Callable[[], BinaryIO], size: int) -> None:
        self._open = opener
        self._f = opener()
        self._pos = 0
        self._size = size   # the entry's declared size: nothing past it is read

    def read_at(self, offset: int, size: int) -> bytes:
        size = min(size, self._size - offset)
        if offset < 0 or size <= 0:
            return b""
        if offset < self._pos:
            self._f.close()
            self._f, self._pos = self._open(), 0
        try:
            while self._pos < offset:
                skipped = len(self._f.read(min(CHUNK, offset - self._pos)))
                if not skipped:
                    return b""
                self._pos += skipped
            parts, want = [], size
            while want > 0:
                data = self._f.read(min(CHUNK, want))
                if not data:
                    break
                parts.append(data)
                want -= len(data)
        except read_errors() as err:
            raise DumpError(f"cannot decompress: {why(err)}") from None
        self._pos += size - want
        return b"".join(parts)

    def close(self) -> None:
        self._f.close()


RandomReader = FileReader | ForwardReader


def _zstd_error() -> type[Exception]:
    try:
        import zstandard

        return zstandard.ZstdError
    except ImportError:
        return OSError


def _dump_dir(path: str) -> str:
    """``path`` itself, or its one subdirectory holding a dump (what ``cdh get -o`` made)."""
    if any(n.endswith((ondisk.DUMP_INFO, ondisk.CORE)) for n in os.listdir(path)):
        return path
    subs = [os.path.join(path, n) for n in sorted(os.listdir(path))
            if os.path.isdir(os.path.join(path, n)) and not n.startswith(".")]
    found = [s for s in subs if any(n.endswith(ondisk.DUMP_INFO) for n in os.listdir(s))]
    if len(found) != 1:
        raise DumpError(f"{path}: no dump here (expected a *-dump-info.json)" if not found
                        else f"{path}: several dumps here; name one of its subdirectories")
    return found[0]


def _walk(root: str) -> list[str]:
    out = []
    for base, _, files in os.walk(root):
        rel = os.path.relpath(base, root)
        out.extend(f if rel == "." else f"{rel}/{f}" for f in files)
    return sorted(out)


def _dump_name(entries: list[str], path: str) -> str:
    for suffix in (ondisk.DUMP_INFO, ondisk.CORE):
        names = [e[: -len(suffix)] for e in entries if e.endswith(suffix) and "/" not in e]
        if names:
            return min(names, key=len)
    raise DumpError(f"{path}: no dump-info.json or .core entry: not a cdh dump")
