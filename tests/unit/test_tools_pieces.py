"""Small parts of the bucket tools: key prefixes, --since, signal texts, dump zips."""

from __future__ import annotations

import os
import zipfile
import zlib
from datetime import UTC, datetime

import pytest

from cdh import keys, signals
from cdh.tools.dumpzip import Dump, DumpError, unpack
from cdh.tools.timespec import parse_since
from tests.support import dumpbuild

T = datetime(2024, 6, 10, 6, 13, 20, tzinfo=UTC).timestamp()


@pytest.mark.parametrize(("template", "known", "want"), [
    ("", {}, [""]),
    ("cores/", {"node": "n1"}, ["cores/"]),
    ("{node}/{namespace}/", {}, [""]),
    ("{node}/{namespace}/", {"node": "n1"}, ["n1/"]),
    ("{node}/{namespace}/", {"node": "n1", "namespace": "default"}, ["n1/default/"]),
    ("{node}/{namespace}/", {"namespace": "default"}, [""]),          # stops at the unknown node
    ("{node}/{namespace}/", {"node": "n-*"}, [""]),                   # a glob cannot narrow
    ("{node}/{namespace}/", {"node": "a/b"}, [""]),                   # the agent would rewrite it
    ("dumps/{namespace}-{pod}/", {"namespace": "shop", "pod": "cart-1"}, ["dumps/shop-cart-1/"]),
    ("/{node}/", {"node": "n1"}, ["n1/"]),                            # the agent strips a leading /
])
def test_listing_prefixes(template, known, want):
    assert keys.listing_prefixes(template, known) == want


def test_listing_prefixes_enumerate_the_days_since():
    got = keys.listing_prefixes("{node}/{date}/", {"node": "n1"}, since=T - 2 * 86400, now=T)
    assert got == ["n1/2024-06-08/", "n1/2024-06-09/", "n1/2024-06-10/"]
    got = keys.listing_prefixes("{year}/{month}/{day}/{hour}/", {}, since=T - 2 * 3600, now=T)
    assert got == ["2024/06/10/04/", "2024/06/10/05/", "2024/06/10/06/"]


def test_listing_prefixes_fall_back_when_since_spans_too_much():
    got = keys.listing_prefixes("{node}/{date}/", {"node": "n1"}, since=T - 5 * 365 * 86400, now=T)
    assert got == ["n1/"]


def test_parse_since():
    assert parse_since("2h", now=T) == T - 7200
    assert parse_since("7d", now=T) == T - 7 * 86400
    assert parse_since("2024-06-10", now=T) == datetime(2024, 6, 10, tzinfo=UTC).timestamp()
    assert parse_since("2024-06-10T08:00:00+02:00", now=T) == T - 13 * 60 - 20
    with pytest.raises(ValueError, match="a duration"):
        parse_since("last tuesday", now=T)


def test_signal_texts():
    assert signals.name(11) == "SIGSEGV" and signals.name(99) == "signal 99" and signals.name(None)
    assert signals.meaning(6).startswith("abort")
    assert signals.code_meaning(11, 2).startswith("SEGV_ACCERR")
    assert signals.code_meaning(11, 0x80).startswith("the kernel reports no address")
    assert signals.code_meaning(6, -6).startswith("SI_TKILL")
    assert signals.code_meaning(8, 1).startswith("FPE_INTDIV")


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


def test_inspect_of_a_missing_or_foreign_file_fails_in_one_line(tmp_path):
    from tests.support.cli import run_cdh

    r = run_cdh("inspect", str(tmp_path / "nope.zip"))
    assert r.returncode == 1 and r.stderr.startswith("cdh inspect: ") and r.stderr.count("\n") == 1
    (tmp_path / "x.zip").write_bytes(b"garbage")
    r = run_cdh("inspect", str(tmp_path / "x.zip"))
    assert r.returncode == 1 and "not a readable zip" in r.stderr
