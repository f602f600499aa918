"""The core's blocks: compressed on worker threads, written in order, memory a fixed pool."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import threading
import zlib

import pytest

from cdh.composer import blocks, compress
from tests.support.composer import REPO
from tests.support.require import require_module

BLOCK = blocks.BLOCK


class Sink:
    """A ``write`` that keeps what it is given; fails with ``fail_at`` (the n-th write) if set."""

    def __init__(self, fail_at: int | None = None) -> None:
        self.parts: list[bytes] = []
        self.fail_at = fail_at

    def __call__(self, data) -> None:
        if self.fail_at is not None and len(self.parts) + 1 >= self.fail_at:
            raise OSError(errno.ENOSPC, "No space left on device")
        self.parts.append(bytes(data))

    @property
    def data(self) -> bytes:
        return b"".join(self.parts)



def log_text(n: int) -> bytes:
    """Log-like lines: compressible, with repeats across block boundaries."""
    lines = b"".join(b"2024-06-10T12:%02d:%02d req=%08x user=%s path=/api/v1/items/%d status=200\n"
                     % (i // 60 % 60, i % 60, i * 2654435761 % 2**32, (b"alice", b"bob")[i % 2], i % 977)
                     for i in range(n // 60))
    return lines[:n]


@pytest.mark.parametrize("workers", [1, 2, 4])
def test_deflate_blocks_are_one_stream_as_good_as_unsplit(monkeypatch, workers):
    monkeypatch.setattr(blocks, "cpus", lambda: workers)
    data = log_text(4 * BLOCK + 12345)
    sink = Sink()
    b = blocks.Blocks(compress.DEFLATED, sink)
    b.write(data)
    b.close()
    inflater = zlib.decompressobj(-15)
    assert inflater.decompress(sink.data) == data and inflater.eof
    assert (b.crc, b.size) == (zlib.crc32(data), len(data))
    whole = compress.compressor(compress.DEFLATED)
    unsplit = len(whole.compress(data) + whole.flush())
    assert len(sink.data) < unsplit * 1.01


def test_a_deflate_block_refers_back_into_the_block_before():
    before = os.urandom(30_000)  # incompressible on its own: only the dictionary helps
    piece = compress.DeflateBlocks().block(before, before)
    assert len(piece) < 2_000
    assert zlib.decompressobj(-15, zdict=before).decompress(piece) == before


@pytest.mark.parametrize(("method", "cpus"), [(compress.STORED, 2), (compress.ZSTD, 1), (compress.ZSTD, 2)])
def test_stored_and_zstd_blocks_round_trip(monkeypatch, method, cpus):
    """zstd with several CPUs: zstandard's own workers, still one frame."""
    monkeypatch.setattr(blocks, "cpus", lambda: cpus)
    data = os.urandom(BLOCK // 3) + bytes(2 * BLOCK) + log_text(3 * BLOCK)
    sink = Sink()
    b = blocks.Blocks(method, sink)
    b.write(data)
    b.close()
    if method == compress.ZSTD:
        zstandard = require_module("zstandard", "zstandard is needed (a dependency of cdh)")
        assert zstandard.ZstdDecompressor().decompressobj().decompress(sink.data) == data
    else:
        assert sink.data == data
    assert (b.crc, b.size) == (zlib.crc32(data), len(data))


def test_blocks_are_written_in_the_order_they_were_read(monkeypatch):
    """The first block finishes compressing last; it is still written first."""
    monkeypatch.setattr(blocks, "cpus", lambda: 2)
    second_done = threading.Event()

    class Slow:
        parallel = True

        def block(self, data, before):
            if data[0] == 0:
                assert second_done.wait(timeout=30), "the second block was never compressed"
            else:
                second_done.set()
            return bytes(data[:1])

        def end(self):
            return b"."

    monkeypatch.setattr(blocks, "codec", lambda method, cpus: Slow())
    sink = Sink()
    b = blocks.Blocks(compress.DEFLATED, sink)
    b.write(bytes(BLOCK) + b"\1" * BLOCK)
    b.close()
    assert sink.parts == [b"\0", b"\1", b"."]


@pytest.mark.parametrize("method", [compress.STORED, compress.DEFLATED, compress.ZSTD])
def test_a_write_error_reaches_the_caller_and_nothing_hangs(method):
    sink = Sink(fail_at=3)
    b = blocks.Blocks(method, sink)
    with pytest.raises(OSError) as raised:
        b.write(os.urandom(20 * BLOCK))  # raised by a later submit ...
        b.close()  # ... or, at the latest, here
    assert raised.value.errno == errno.ENOSPC
    b.abort()  # the caller drops the entry: returns, the threads are gone
    assert len(sink.parts) == 2


def test_an_encoder_error_reaches_the_caller(monkeypatch):
    class Broken:
        parallel = True

        def block(self, data, before):
            raise MemoryError("no room to compress")

        def end(self):
            return b""

    monkeypatch.setattr(blocks, "codec", lambda method, cpus: Broken())
    b = blocks.Blocks(compress.DEFLATED, Sink())
    with pytest.raises(MemoryError):
        b.write(bytes(8 * BLOCK))
        b.close()
    b.abort()


@pytest.mark.parametrize("cpus", [1, 64])
def test_memory_is_a_fixed_pool_of_blocks(monkeypatch, cpus):
    monkeypatch.setattr(blocks, "cpus", lambda: cpus)
    seen: set[int] = set()
    b = blocks.Blocks(compress.DEFLATED, Sink())
    for _ in range(50):
        block = b.free()
        seen.add(id(block))
        b.submit(block, len(block))
    b.close()
    assert len(seen) == min(cpus, blocks.MAX_WORKERS) + 2


def test_without_isal_the_zlib_fallback_writes_the_same_stream(tmp_path):
    """A node without isal: stdlib zlib compresses the blocks, and the zip is standard."""
    script = (
        "import sys, os, zlib\n"
        "sys.modules['isal'] = None\n"
        "from cdh.composer import compress, zipstream\n"
        "assert compress._deflate is zlib\n"
        "data = os.urandom(30000) * 100 + bytes(3 << 20)\n"
        f"fd = os.open({str(tmp_path / 'z.zip')!r}, os.O_WRONLY | os.O_CREAT, 0o600)\n"
        "zw = zipstream.ZipWriter(fd, 0)\n"
        "e = zw.stream('n.core', zipstream.DEFLATED)\n"
        "e.write(data)\n"
        "e.finish()\n"
        "zw.close()\n"
        "open(sys.argv[1], 'wb').write(data)\n"
    )
    subprocess.run([sys.executable, "-c", script, str(tmp_path / "core")], check=True, cwd=REPO,
                   env={**os.environ, "PYTHONPATH": str(REPO)})
    out = subprocess.run(["unzip", "-p", str(tmp_path / "z.zip"), "n.core"], capture_output=True)
    assert out.returncode == 0 and out.stdout == (tmp_path / "core").read_bytes()
    assert (tmp_path / "z.zip").stat().st_size < 1 << 20


@pytest.mark.parametrize("threads_allowed", [0, 1])
@pytest.mark.parametrize("method", [compress.STORED, compress.DEFLATED, compress.ZSTD])
def test_no_threads_to_be_had_still_writes_the_whole_core(monkeypatch, method, threads_allowed):
    """A node out of threads (RuntimeError from start_new_thread): everything runs inline."""
    real_start, started = blocks._start, []

    def start(fn, args):
        if len(started) >= threads_allowed:
            raise RuntimeError("can't start new thread")
        started.append(fn)
        return real_start(fn, args)

    monkeypatch.setattr(blocks, "_start", start)
    monkeypatch.setattr(blocks, "cpus", lambda: 2)
    data = log_text(3 * BLOCK + 777)
    sink = Sink()
    b = blocks.Blocks(method, sink)
    b.write(data)
    b.close()
    if method == compress.DEFLATED:
        assert zlib.decompressobj(-15).decompress(sink.data) == data
    elif method == compress.ZSTD:
        zstandard = require_module("zstandard", "zstandard is needed (a dependency of cdh)")
        assert zstandard.ZstdDecompressor().decompressobj().decompress(sink.data) == data
    else:
        assert sink.data == data
    assert (b.crc, b.size) == (zlib.crc32(data), len(data))


def test_no_threads_a_write_error_still_reaches_the_caller(monkeypatch):
    def start(fn, args):
        raise RuntimeError("can't start new thread")

    monkeypatch.setattr(blocks, "_start", start)
    b = blocks.Blocks(compress.DEFLATED, Sink(fail_at=2))
    with pytest.raises(OSError):
        b.write(log_text(4 * BLOCK))
        b.close()
    b.abort()
