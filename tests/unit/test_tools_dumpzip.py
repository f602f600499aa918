"""A dump zip read as the tools read it: zstd cores forward and back, CRCs, safe names."""

from __future__ import annotations

import os
import zipfile
import zlib

import pytest

from cdh.tools.dumpzip import Dump, DumpError
from cdh.tools.unpack import unpack
from tests.support import dumpbuild


@pytest.fixture
def zstd_zip(tmp_path):
    core = os.urandom(3 << 20)
    path, _ = dumpbuild.build(tmp_path, core, compression="zstd")
    return path, core


def test_zstd_core_reads_forward_and_back(zstd_zip):
    path, core = zstd_zip
    with Dump(str(path)) as dump:
        entry = dump.entry(".core")
        assert dump.compression(entry) == "zstd" and dump.size(entry) == len(core)
        reader = dump.reader(entry)
        try:
            for offset in (2 << 20, 100, (3 << 20) - 10, 0):  # a backward read reopens the stream
                assert reader.read_at(offset, 64) == core[offset:offset + 64]
        finally:
            reader.close()


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


def test_a_zip_that_is_not_a_dump(tmp_path):
    path = tmp_path / "other.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("readme.txt", "hello")
    with pytest.raises(DumpError, match="not a cdh dump"):
        Dump(str(path))
    (tmp_path / "plain.zip").write_bytes(b"not a zip")
    with pytest.raises(DumpError, match="not a readable zip"):
        Dump(str(tmp_path / "plain.zip"))


def test_a_stored_core_is_read_in_place_within_its_entry(tmp_path):
    core = os.urandom(10_000)
    path, _ = dumpbuild.build(tmp_path, core, compression="stored")
    with Dump(str(path)) as dump:
        reader = dump.reader(dump.entry(".core"))
        try:
            assert reader.read_at(0, 16) == core[:16]
            assert reader.read_at(len(core) - 10, 100) == core[-10:], "never the next entry's bytes"
        finally:
            reader.close()
