"""A dump as the composer writes it, read from its zip or from the directory it was unpacked to.

Entries (flat, named after the dump): ``<name>-dump-info.json``, ``<name>.core``,
``<name>-pod-info.json``, ``<name>-runtime-info.json``, ``<name>-ps-info.json``,
per container i ``<name>-<i>.log`` and ``<name>-<i>-image-info.json``, and the
crasher's /proc files under ``<name>-proc/``.

The core may be deflated, stored, or zstd-compressed (zip method 93, which the
stdlib's zipfile cannot open): zstd entries are read from their raw bytes with
the zstandard package. Every unpacked byte is checked against the entry's CRC-32.
"""

from __future__ import annotations

import os
import shutil
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
            except (OSError, zipfile.BadZipFile) as err:
                raise DumpError(f"{path}: not a readable zip ({err})") from None
            self.root = None
            self.entries = [i.filename for i in self._zip.infolist() if not i.is_dir()]
        self.name = _dump_name(self.entries, path)

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
                start = _data_offset(fp, info)
            return FileReader(self.path, start, info.file_size)
        return ForwardReader(lambda: open_entry(self._zip, info))


def open_entry(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> BinaryIO:
    """A stream of the entry's uncompressed bytes (stored, deflate or zstd)."""
    if info.compress_type != ZIP_ZSTD:
        try:
            return zf.open(info)
        except NotImplementedError:
            raise DumpError(f"{info.filename}: unsupported zip compression method "
                            f"{info.compress_type}") from None
    import zstandard

    # Its own handle (zipfile's is shared between entries), closed with the returned reader.
    fp = open(zf.filename, "rb")  # noqa: SIM115
    try:
        raw = _RawSlice(fp, _data_offset(fp, info), info.compress_size)
    except BaseException:
        fp.close()
        raise
    return zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True, closefd=True)


def _data_offset(fp: BinaryIO, info: zipfile.ZipInfo) -> int:
    fp.seek(info.header_offset)
    head = fp.read(30)
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
    """``read_at`` on a file, or on the ``size`` bytes of it that start at ``start``."""

    def __init__(self, path: str, start: int = 0, size: int | None = None) -> None:
        self._fd = os.open(path, os.O_RDONLY)
        self._start = start
        self._end = None if size is None else start + size

    def read_at(self, offset: int, size: int) -> bytes:
        at = self._start + offset
        if self._end is not None:
            size = max(0, min(size, self._end - at))
        return os.pread(self._fd, size, at)

    def close(self) -> None:
        os.close(self._fd)


class ForwardReader:
    """``read_at`` over a stream that only reads forward; going back reopens the stream.

    Readers ask in increasing offset order, so a compressed core is decompressed
    at most once (and only as far as the last byte asked for).
    """

    def __init__(self, opener: Callable[[], BinaryIO]) -> None:
        self._open = opener
        self._f = opener()
        self._pos = 0

    def read_at(self, offset: int, size: int) -> bytes:
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
                data = self._f.read(want)
                if not data:
                    break
                parts.append(data)
                want -= len(data)
        except (zipfile.BadZipFile, zlib.error, OSError, _zstd_error()) as err:
            raise DumpError(f"cannot decompress: {err}") from None
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


def unpack(zip_path: str, dest: str) -> str:
    """Check every entry's CRC and unpack into ``dest/<name>/``; return that directory.

    Entries go to a hidden directory first, renamed into place only when all are
    intact: a damaged zip leaves nothing that looks like a dump.
    """
    with Dump(zip_path) as dump:
        final = os.path.join(dest, dump.name)
        if os.path.exists(final):
            raise DumpError(f"{final} already exists; remove it or choose another directory")
        work = os.path.join(dest, f".{dump.name}.unpacking")
        shutil.rmtree(work, ignore_errors=True)
        os.makedirs(work, mode=0o700)
        try:
            for info in dump._zip.infolist():
                if not info.is_dir():
                    _extract(dump._zip, info, _safe_target(work, info.filename))
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            raise
        os.rename(work, final)
        return final


def _safe_target(root: str, name: str) -> str:
    parts = name.split("/")
    if name.startswith("/") or "\\" in name or any(p in ("", ".", "..") for p in parts):
        raise DumpError(f"{name!r}: unsafe entry name in zip")
    return os.path.join(root, *parts)


def _extract(zf: zipfile.ZipFile, info: zipfile.ZipInfo, target: str) -> None:
    os.makedirs(os.path.dirname(target), exist_ok=True)
    crc = size = 0
    try:
        with open_entry(zf, info) as src, open(target, "wb") as out:
            while chunk := src.read(CHUNK):
                crc = zlib.crc32(chunk, crc)
                size += len(chunk)
                out.write(chunk)
    except (zipfile.BadZipFile, zlib.error, EOFError, _zstd_error()) as err:
        raise DumpError(f"{info.filename}: damaged ({err})") from None
    if size != info.file_size or crc != info.CRC:
        raise DumpError(f"{info.filename}: damaged (CRC-32 {crc:08x}, {size} bytes; "
                        f"the zip says {info.CRC:08x}, {info.file_size} bytes)")


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
