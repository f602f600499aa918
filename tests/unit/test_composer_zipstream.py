"""The streaming zip writer: standard zips every reader accepts, byte for byte."""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import zipfile
import zlib

import pytest

from cdh.composer import zipstream
from tests.support.require import require, require_module

CHUNK = 1 << 16


def sample(n: int = 3 << 20) -> bytes:
    """Compressible and incompressible stretches, like a core."""
    rnd = os.urandom(200_000)
    parts, total = [], 0
    while total < n:
        parts += [rnd, bytes(300_000), b"stack frame " * 5000]
        total += len(rnd) + 300_000 + 60_000
    return b"".join(parts)[:n]


def write_zip(path, method: str, core: bytes, small: dict[str, bytes]) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        zw = zipstream.ZipWriter(fd, mtime=1718000000)
        entry = zw.stream("n.core", zipstream.METHODS[method])
        for i in range(0, len(core), CHUNK):
            entry.write(memoryview(core)[i:i + CHUNK])
        entry.finish()
        for name, data in small.items():
            zw.add(name, data, zipstream.METHODS[method])
        zw.close()
    finally:
        os.close(fd)


def unzip_t(path) -> str:
    require(shutil.which("unzip"), "unzip is needed (.ci/run installs it)")
    out = subprocess.run(["unzip", "-t", str(path)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


@pytest.mark.parametrize("method", ["none", "deflate"])
def test_standard_modes_read_back_byte_identical(tmp_path, method):
    core = sample()
    small = {"n-dump-info.json": b'{"a": 1}\n', "n-0.log": b"line\n" * 1000, "n-proc/status": b"",
             "n-empty.json": b""}
    path = tmp_path / "a.zip"
    write_zip(path, method, core, small)
    with zipfile.ZipFile(path) as zf:
        assert zf.testzip() is None
        assert zf.read("n.core") == core
        for name, data in small.items():
            assert zf.read(name) == data
        for info in zf.infolist():
            assert info.external_attr >> 16 == 0o100444, info.filename
            assert info.create_system == 3
            assert info.date_time[0] >= 2024
        assert zf.getinfo("n.core").compress_type == zipstream.METHODS[method]
    assert "No errors detected" in unzip_t(path)
    # unzip extracts the exact bytes too
    out = subprocess.run(["unzip", "-p", str(path), "n.core"], capture_output=True)
    assert out.stdout == core


def test_deflate_actually_compresses(tmp_path):
    core = bytes(4 << 20)
    write_zip(tmp_path / "z.zip", "deflate", core, {})
    assert (tmp_path / "z.zip").stat().st_size < 100_000


def _raw_entry(path, name: str) -> tuple[zipfile.ZipInfo, bytes]:
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo(name)
    with open(path, "rb") as f:
        f.seek(info.header_offset)
        header = f.read(30)
        name_len, extra_len = struct.unpack("<HH", header[26:30])
        f.seek(info.header_offset + 30 + name_len + extra_len)
        return info, f.read(info.compress_size)


def test_zstd_mode_is_method_93_and_decodes(tmp_path):
    zstandard = require_module("zstandard", "zstandard is needed (a dependency of cdh)")
    core = sample()
    path = tmp_path / "z.zip"
    write_zip(path, "zstd", core, {"n-dump-info.json": b"{}"})
    info, raw = _raw_entry(path, "n.core")
    assert info.compress_type == 93 and info.file_size == len(core)
    data = zstandard.ZstdDecompressor().decompressobj().decompress(raw)
    assert data == core and zlib.crc32(data) == info.CRC
    with zipfile.ZipFile(path) as zf:  # small entries stay deflate: readable everywhere
        assert zf.read("n-dump-info.json") == b"{}"


def test_core_entry_has_zip64_sizes_in_local_header(tmp_path):
    path = tmp_path / "a.zip"
    write_zip(path, "deflate", b"abc" * 1000, {})
    with open(path, "rb") as f:
        head = f.read(200)
    csize, usize, name_len, extra_len = struct.unpack("<IIHH", head[18:30])
    assert (csize, usize) == (0xFFFFFFFF, 0xFFFFFFFF)
    tag, size, real_usize, real_csize = struct.unpack("<HHQQ", head[30 + name_len:30 + name_len + 20])
    assert (tag, size, extra_len) == (1, 16, 20)
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo("n.core")
    assert (real_usize, real_csize) == (info.file_size, info.compress_size) == (3000, info.compress_size)
    assert struct.unpack("<I", head[14:18])[0] == info.CRC == zlib.crc32(b"abc" * 1000)


def test_abort_drops_the_streamed_entry_and_the_zip_stays_valid(tmp_path):
    path = tmp_path / "a.zip"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    zw = zipstream.ZipWriter(fd, mtime=0)
    entry = zw.stream("n.core", zipstream.DEFLATED)
    entry.write(os.urandom(1 << 20))
    entry.abort()
    zw.add("n-dump-info.json", b'{"truncated": true}')
    zw.close()
    os.close(fd)
    with zipfile.ZipFile(path) as zf:
        assert zf.namelist() == ["n-dump-info.json"]
        assert zf.testzip() is None
    assert os.path.getsize(path) < 1000  # the space was given back
    unzip_t(path)


def test_add_rolls_back_on_write_error(tmp_path, monkeypatch):
    path = tmp_path / "a.zip"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    zw = zipstream.ZipWriter(fd, mtime=0)
    zw.add("first", b"1" * 100)
    real_write = os.write

    def full(fd_, data):
        real_write(fd_, bytes(data)[:10])  # a partial write, then the disk is full
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(zipstream.os, "write", full)
    with pytest.raises(OSError):
        zw.add("second", os.urandom(5000))
    monkeypatch.setattr(zipstream.os, "write", real_write)
    zw.close()
    os.close(fd)
    with zipfile.ZipFile(path) as zf:
        assert zf.namelist() == ["first"] and zf.testzip() is None


def test_empty_core_entry(tmp_path):
    path = tmp_path / "a.zip"
    write_zip(path, "deflate", b"", {})
    with zipfile.ZipFile(path) as zf:
        assert zf.read("n.core") == b""
    unzip_t(path)


def test_many_entries_use_zip64_end_records(tmp_path):
    path = tmp_path / "a.zip"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    zw = zipstream.ZipWriter(fd, mtime=0)
    for i in range(0x10005):
        zw.add(f"e{i}", b"", zipstream.STORED)
    zw.close()
    os.close(fd)
    with zipfile.ZipFile(path) as zf:
        assert len(zf.infolist()) == 0x10005


@pytest.mark.slow
def test_core_over_4gib_uses_zip64_sizes(tmp_path):
    """4 GiB + 1 MiB of zeros: the sizes only fit in the Zip64 fields (cheap: it deflates to ~4 MiB)."""
    size = (4 << 30) + (1 << 20)
    chunk = bytes(8 << 20)
    path = tmp_path / "big.zip"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    zw = zipstream.ZipWriter(fd, mtime=0)
    entry = zw.stream("n.core", zipstream.DEFLATED)
    left = size
    while left:
        n = min(left, len(chunk))
        entry.write(memoryview(chunk)[:n])
        left -= n
    entry.finish()
    zw.add("n-dump-info.json", b"{}")
    zw.close()
    os.close(fd)
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo("n.core")
        assert info.file_size == size
        assert zf.read("n-dump-info.json") == b"{}"  # an entry after the big one is found
    # Inflate the raw entry (found through its Zip64 local header) and check the CRC: ~1 s,
    # where zipfile or `unzip -t` take 10-20 s for the same 4 GiB.
    info, raw = _raw_entry(path, "n.core")
    inflater, crc, total, data = zipstream._deflate.decompressobj(-15), 0, 0, raw
    while True:
        block = inflater.decompress(data, 16 << 20)  # bounded output: zeros inflate 1000:1
        data = inflater.unconsumed_tail
        if not block and not data:
            break
        crc, total = zipstream.crc32(block, crc), total + len(block)
    block = inflater.flush()
    crc, total = zipstream.crc32(block, crc), total + len(block)
    assert (total, crc) == (size, info.CRC)
    listing = subprocess.run(["unzip", "-Z", "-v", str(path)], capture_output=True, text=True)
    assert listing.returncode == 0 and str(size) in listing.stdout, listing.stdout + listing.stderr
