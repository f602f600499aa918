"""FileSlice and the CRC32 pass: the bytes sent are the slice's, every send starts at its
first byte, short reads are completed, and a file that shrinks is an error."""

from __future__ import annotations

import os
import zlib

import pytest
from botocore.utils import determine_content_length

from cdh.store import body
from cdh.store.body import CHUNK_BYTES, FileSlice, SourceChanged, crc32_of_slice

SIZE = 3 * CHUNK_BYTES + 12_345  # several chunks and a ragged end


class Reset(ConnectionResetError):
    pass


class Writer:
    """What aiohttp's StreamWriter offers a payload: ``await write(chunk)``."""

    def __init__(self, fail_after: int | None = None) -> None:
        self.data = bytearray()
        self.writes = 0
        self.fail_after = fail_after

    async def write(self, chunk) -> None:
        if self.fail_after is not None and self.writes >= self.fail_after:
            raise Reset("connection reset by peer")
        self.writes += 1
        self.data += chunk


@pytest.fixture
def data() -> bytes:
    return os.urandom(SIZE)


@pytest.fixture
def fd(tmp_path, data):
    path = tmp_path / "core.zip"
    path.write_bytes(data)
    fd = os.open(path, os.O_RDWR)
    yield fd
    os.close(fd)


@pytest.mark.parametrize("offset,length", [(0, SIZE), (1, CHUNK_BYTES),
                                           (CHUNK_BYTES - 7, 2 * CHUNK_BYTES + 9), (SIZE - 5, 5), (100, 0)])
def test_crc32_of_a_slice_is_zlibs_of_its_bytes(fd, data, offset, length):
    assert crc32_of_slice(fd, offset, length, "core.zip") == zlib.crc32(data[offset:offset + length])
    assert body.crc32(data[offset:offset + length]) == zlib.crc32(data[offset:offset + length])


def test_a_slice_is_a_seekable_file_for_botocore(fd, data):
    s = FileSlice(fd, 1000, 2 * CHUNK_BYTES, "core.zip")
    assert determine_content_length(s) == len(s) == s.size == 2 * CHUNK_BYTES
    assert s.read(10) == data[1000:1010] and s.tell() == 10
    assert s.seek(5, os.SEEK_CUR) == 15
    assert s.read(5) == data[1015:1020]
    assert s.seek(-4, os.SEEK_END) == 2 * CHUNK_BYTES - 4
    assert s.read() == data[1000 + 2 * CHUNK_BYTES - 4:1000 + 2 * CHUNK_BYTES]
    assert s.read(10) == b""
    s.seek(0)  # what botocore's reset_stream() does before a retry
    assert s.read() == data[1000:1000 + 2 * CHUNK_BYTES]


async def test_a_send_is_the_slice_in_chunks(fd, data):
    s = FileSlice(fd, 7, SIZE - 7, "core.zip")
    w = Writer()
    await s.write_with_length(w, len(s))
    assert bytes(w.data) == data[7:]
    assert w.writes == 4  # chunks of CHUNK_BYTES, not one part-sized buffer


async def test_every_send_starts_at_the_first_byte(fd, data):
    """A retry after a reset mid-part resends the whole part, wherever botocore's cursor is."""
    s = FileSlice(fd, 0, SIZE, "core.zip")
    with pytest.raises(Reset):
        await s.write_with_length(Writer(fail_after=2), len(s))
    s.read(100)  # a cursor moved by someone else changes nothing
    again = Writer()
    await s.write(again)
    assert bytes(again.data) == data


async def test_chunks_not_in_the_page_cache_are_read_in_a_thread(fd, data, monkeypatch):
    monkeypatch.setattr(body, "read_cached", lambda *a: None)  # as if the disk were cold
    w = Writer()
    await FileSlice(fd, 3, SIZE - 3, "core.zip").write_with_length(w, None)
    assert bytes(w.data) == data[3:]


def test_short_reads_are_completed(fd, data, monkeypatch):
    real_pread, real_preadv = os.pread, os.preadv
    monkeypatch.setattr(body.os, "pread", lambda f, n, off: real_pread(f, min(n, 4096), off))
    monkeypatch.setattr(body.os, "preadv",
                        lambda f, bufs, off, *flags: real_preadv(f, [bufs[0][:4093]], off, *flags))
    assert crc32_of_slice(fd, 10, SIZE - 10, "core.zip") == zlib.crc32(data[10:])
    assert FileSlice(fd, 10, SIZE - 10, "core.zip").read() == data[10:]


async def test_a_file_that_shrinks_is_an_error_not_a_shorter_body(fd, data):
    s = FileSlice(fd, 0, SIZE, "core.zip")
    os.ftruncate(fd, SIZE - 1)
    with pytest.raises(SourceChanged, match=r"^core\.zip: the file ends at byte"):
        crc32_of_slice(fd, 0, SIZE, "core.zip")
    w = Writer()
    with pytest.raises(SourceChanged, match="shrank"):
        await s.write_with_length(w, len(s))
    assert len(w.data) < SIZE
    with pytest.raises(SourceChanged):
        s.read()


def test_memory_bound_is_a_function_of_the_slots():
    assert body.memory_bound_bytes(4) == 4 * 2 * CHUNK_BYTES
