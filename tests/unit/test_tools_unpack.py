"""Unpacking a downloaded dump (cdh/tools/unpack.py): its layout checked first, bounded, private."""

from __future__ import annotations

import os
import stat
import zipfile
import zlib

import pytest

from cdh.tools.dumpzip import DumpError
from cdh.tools.unpack import TooBig, unpack
from tests.support import dumpbuild


@pytest.fixture
def zstd_zip(tmp_path):
    core = os.urandom(3 << 20)
    path, _ = dumpbuild.build(tmp_path, core, compression="zstd")
    return path, core


def test_unpack_catches_a_zstd_entry_with_a_wrong_crc(zstd_zip, tmp_path):
    path, core = zstd_zip
    dumpbuild.patch_entry(path, path.stem + ".core", crc=zlib.crc32(core) ^ 1)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(DumpError, match=r"\.core: damaged \(CRC-32"):
        unpack(str(path), str(out))
    assert os.listdir(out) == []


def test_unpack_refuses_unsafe_entry_names(tmp_path):
    path = tmp_path / "evil.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("x-dump-info.json", "{}")
        zf.writestr("../../etc/cron.d/x", "boom")
    (tmp_path / "out").mkdir()
    with pytest.raises(DumpError, match="unsafe entry name"):
        unpack(str(path), str(tmp_path / "out"))
    assert os.listdir(tmp_path / "out") == []


def test_entries_listed_twice_are_refused_before_anything_is_written(tmp_path):
    path = tmp_path / "twice.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("x-dump-info.json", "{}")
        zf.writestr("x.core", "a")
    raw = path.read_bytes()
    eocd = raw.rfind(b"PK\x05\x06")
    count, size, offset = int.from_bytes(raw[eocd + 10:eocd + 12], "little"), \
        int.from_bytes(raw[eocd + 12:eocd + 16], "little"), int.from_bytes(raw[eocd + 16:eocd + 20], "little")
    directory = raw[offset:offset + size]
    tail = bytearray(raw[eocd:])
    tail[8:12] = (count * 2).to_bytes(2, "little") * 2
    tail[12:16] = (size * 2).to_bytes(4, "little")
    path.write_bytes(raw[:offset] + directory * 2 + bytes(tail))
    (tmp_path / "out").mkdir()
    with pytest.raises(DumpError, match="listed twice"):
        unpack(str(path), str(tmp_path / "out"))
    assert os.listdir(tmp_path / "out") == []


def test_the_ceiling_is_the_stated_core_size_plus_a_margin(tmp_path):
    path, _ = dumpbuild.build(tmp_path, bytes(80 << 20))
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(TooBig, match="--max-size"):
        unpack(str(path), str(out), max_size=1 << 20)
    where = unpack(str(path), str(out))  # core_size says 80 MiB: within it
    assert os.path.getsize(os.path.join(where, path.stem + ".core")) == 80 << 20


def test_everything_unpacked_is_private_whatever_the_umask(tmp_path):
    path, _ = dumpbuild.build(tmp_path, os.urandom(1000), proc={"maps": b"x"})
    old = os.umask(0)
    try:
        where = unpack(str(path), str(tmp_path))
    finally:
        os.umask(old)
    modes = {stat.S_IMODE(os.lstat(os.path.join(b, n)).st_mode)
             for b, ds, fs in os.walk(where) for n in ds + fs}
    assert modes <= {0o600, 0o700} and stat.S_IMODE(os.stat(where).st_mode) == 0o700
