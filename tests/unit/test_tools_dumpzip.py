"""A dump zip read as the tools read it: zstd cores forward and back, never past an entry or the file."""

from __future__ import annotations

import os
import zipfile

import pytest

from cdh.tools.dumpzip import Dump, DumpError
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


def test_a_zip_that_is_not_a_dump(tmp_path):
    path = tmp_path / "other.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("readme.txt", "hello")
    with pytest.raises(DumpError, match="not a cdh dump"):
        Dump(str(path))
    (tmp_path / "plain.zip").write_bytes(b"not a zip")
    with pytest.raises(DumpError, match="not a readable zip"):
        Dump(str(tmp_path / "plain.zip"))


@pytest.mark.parametrize("compression", ["stored", "deflate", "zstd"])
def test_reads_stay_within_the_entry_and_the_file(tmp_path, compression):
    """Never the next entry's bytes (a stored core is read in place); a header asking for 240 GB, or
    for an offset of 2^63, gets what is there."""
    core = os.urandom(10_000)
    path, _ = dumpbuild.build(tmp_path, core, compression=compression)
    with Dump(str(path)) as dump:
        reader = dump.reader(dump.entry(".core"))
        try:
            assert reader.read_at(0, 16) == core[:16]
            assert reader.read_at(len(core) - 10, 240 << 30) == core[-10:], "never the next entry's bytes"
            assert reader.read_at(1 << 63, 16) == b"" and reader.read_at(-5, 16) == b""
        finally:
            reader.close()


@pytest.mark.parametrize("raw", [b"PK\x05\x06" + bytes(16) + b"\xff\xff", b"not a zip", b""])
def test_a_damaged_zip_is_one_line(tmp_path, raw):
    (tmp_path / "d.zip").write_bytes(raw)
    with pytest.raises(DumpError, match=r"not a readable zip|not a cdh dump"):
        Dump(str(tmp_path / "d.zip"))
