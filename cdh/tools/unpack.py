"""Unpack a downloaded dump zip (``cdh get``): bounded, private, all or nothing.

The zip is whoever wrote the object's, so before a byte is written its layout is checked and its
cost known:

- every entry is listed once and its bytes are its own: a name listed twice, two records pointing
  at the same local header, or entries whose data overlap are refused (a 70 KB object whose one
  16 MiB entry is listed 400 times would otherwise unpack 6.4 GiB);
- the sizes the zip declares add up to at most a ceiling: the core size dump-info states plus a
  margin for the small entries (``--max-size`` overrides it), and to at most the free space;
- each entry is read to its declared size and one byte more, never further: a zstd frame that
  decompresses past its declared size is refused there, not at its end (a 33 KB object would
  otherwise write 1 GiB before its size was checked); the CRC-32 of every entry is checked.

Entries go into a fresh 0700 directory with an unguessable name, each file created with
O_CREAT|O_EXCL|O_NOFOLLOW and mode 0600 (a core is a process's memory), and the directory is renamed
into place only when all are intact: a damaged zip leaves nothing that looks like a dump.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import zipfile
import zlib

from cdh import fsutil, ondisk
from cdh.tools.dumpzip import CHUNK, METHODS, Dump, DumpError, data_offset, open_entry, read_errors, why
from cdh.tools.fmt import human_size

MiB, GiB = 1 << 20, 1 << 30
MARGIN = 64 * MiB          # the small entries beside the core: logs (1 MiB each by default), JSON, /proc
MARGIN_FRACTION = 10       # or a tenth of the core, whichever is more
UNKNOWN_CORE_CEILING = 32 * GiB   # dump-info states no core size (another tool's zip)


class TooBig(DumpError):
    """The dump would unpack to more than allowed, or than the disk has free; nothing was written."""


def unpack(zip_path: str, dest: str, max_size: int | None = None) -> str:
    """Check and unpack into ``dest/<name>/``; return that directory (see the module docstring)."""
    with Dump(zip_path) as dump:
        name = dump.name
        if name in ("", ".", "..") or len(name) > 200:
            raise DumpError(f"{name!r}: not a usable dump name")
        infos = check_layout(dump._zip)
        need = sum(i.file_size for i in infos)
        ceiling = max_size if max_size is not None else default_ceiling(dump)
        if need > ceiling:
            raise TooBig(f"it would unpack to {human_size(need)}, more than {human_size(ceiling)} "
                         f"({'--max-size' if max_size is not None else 'its core size plus a margin'}): "
                         "refused as a possible zip bomb; --max-size SIZE allows more")
        free = shutil.disk_usage(dest).free
        if need > free:
            raise TooBig(f"unpacking needs {human_size(need)}, {dest} has {human_size(free)} free")
        final = os.path.join(dest, name)
        if os.path.lexists(final):
            raise DumpError(f"{final} already exists; remove it or choose another directory")
        work = tempfile.mkdtemp(prefix=f".{name}.", suffix=".unpacking", dir=dest)  # 0700, unguessable
        try:
            for info in infos:
                _extract(dump._zip, info, work)
            if os.path.lexists(final):
                raise DumpError(f"{final} appeared while unpacking; remove it or choose another directory")
            os.rename(work, final)
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            raise
        return final


def check_layout(zf: zipfile.ZipFile) -> list[zipfile.ZipInfo]:
    """The file entries, once each checked: unique names, supported methods, not encrypted, each
    entry's bytes inside the archive before its directory and shared with no other entry."""
    seen: set[str] = set()
    spans = []
    with open(zf.filename, "rb") as fp:
        for info in zf.infolist():
            if not info.filename:
                raise DumpError("an entry without a name")
            if info.filename in seen:
                raise DumpError(f"{info.filename}: listed twice in the zip's directory")
            seen.add(info.filename)
            if info.compress_type not in METHODS:
                raise DumpError(f"{info.filename}: unsupported zip compression method {info.compress_type}")
            if info.flag_bits & 1:
                raise DumpError(f"{info.filename}: encrypted")
            spans.append((info.header_offset, data_offset(fp, info) + info.compress_size, info))
    end_of_previous = 0
    for start, end, info in sorted(spans, key=lambda s: s[0]):
        if start < end_of_previous:
            raise DumpError(f"{info.filename}: its bytes overlap another entry's (a zip bomb's trick)")
        end_of_previous = end
    if end_of_previous > zf.start_dir:
        raise DumpError("an entry's bytes run into the zip's directory")
    return [info for _, _, info in spans if not info.is_dir()]


def default_ceiling(dump: Dump) -> int:
    """The core size dump-info states plus a margin; UNKNOWN_CORE_CEILING when it states none."""
    core = _stated_core_size(dump)
    if core is None:
        return UNKNOWN_CORE_CEILING
    return core + max(MARGIN, core // MARGIN_FRACTION)


def _stated_core_size(dump: Dump) -> int | None:
    entry = dump.entry(ondisk.DUMP_INFO)
    if entry is None or dump.size(entry) > ondisk.MAX_DUMP_INFO_BYTES:
        return None
    try:
        info = json.loads(dump.read_bytes(entry))
    except (DumpError, ValueError, RecursionError):
        return None
    size = info.get("core_size") if isinstance(info, dict) else None
    return size if isinstance(size, int) and not isinstance(size, bool) and size >= 0 else None


def _extract(zf: zipfile.ZipFile, info: zipfile.ZipInfo, root: str) -> None:
    """One entry into ``root``, read to its declared size and no further, CRC-checked."""
    target = _safe_target(root, info.filename)
    _make_parents(root, os.path.dirname(target))
    crc = size = 0
    fd = os.open(target, fsutil.CREATE_NEW, 0o600)
    try:
        with open_entry(zf, info) as src:
            while chunk := _read(src, min(CHUNK, info.file_size - size + 1), info):
                size += len(chunk)
                if size > info.file_size:
                    raise DumpError(f"{info.filename}: damaged (more than the {info.file_size} bytes "
                                    "the zip declares)")
                crc = zlib.crc32(chunk, crc)
                view = memoryview(chunk)
                while view:
                    view = view[os.write(fd, view):]
    finally:
        os.close(fd)
    if size != info.file_size or crc != info.CRC:
        raise DumpError(f"{info.filename}: damaged (CRC-32 {crc:08x}, {size} bytes; "
                        f"the zip says {info.CRC:08x}, {info.file_size} bytes)")


def _read(src, n: int, info: zipfile.ZipInfo) -> bytes:
    try:
        return src.read(n)
    except read_errors() as err:
        raise DumpError(f"{info.filename}: damaged ({why(err)})") from None


def _safe_target(root: str, name: str) -> str:
    parts = name.split("/")
    if name.startswith("/") or "\\" in name or "\0" in name or any(p in ("", ".", "..") for p in parts):
        raise DumpError(f"{name!r}: unsafe entry name in zip")
    return os.path.join(root, *parts)


def _make_parents(root: str, directory: str) -> None:
    """The directories between ``root`` (ours, fresh) and ``directory``, 0700, none followed."""
    path = root
    for part in os.path.relpath(directory, root).split(os.sep):
        if part == ".":
            continue
        path = os.path.join(path, part)
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            if not os.path.isdir(path) or os.path.islink(path):
                raise DumpError(f"{path}: an entry and a directory of the zip share this name") from None
