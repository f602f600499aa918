"""The compressors, and their levels, chosen by measurement (the figures: README "Performance",
"What makes capture fast").

- deflate: ISA-L (the ``isal`` package) raw deflate, level 1: several times stdlib zlib
  level 1's speed per CPU, with a smaller output than it or ``gzip -1``.
  Without isal, stdlib zlib level 1 (slower, still a standard zip).
- zstd: level 1 (zip method 93): level 3 ran at half its speed for a slightly smaller
  output. zstandard's own two worker threads with 1 MiB jobs beat one thread for a little
  more memory (its default job size cost much more); more threads did not go faster on
  two CPUs.

A core is compressed in blocks on worker threads (cdh.composer.blocks):
:class:`DeflateBlocks` makes each block an independent piece of one deflate
stream; :class:`ZstdStream` is one streaming compressor (one frame).
"""

from __future__ import annotations

import zlib

try:  # ISA-L: the same raw deflate and CRC-32, several times faster
    from isal import isal_zlib as _deflate

    crc32 = _deflate.crc32
    DEFLATE_LEVEL = 1  # ISA-L levels are 0-3: 0 is not faster here and larger; 2-3 slower
except ImportError:  # a node without isal still writes standard zips
    _deflate = zlib
    crc32 = zlib.crc32
    DEFLATE_LEVEL = 1

STORED, DEFLATED, ZSTD = 0, 8, 93
ZSTD_LEVEL = 1
ZSTD_MAX_THREADS = 2
ZSTD_JOB_BYTES = 1 << 20
WINDOW = 32 << 10  # deflate's window: how much of the previous block a block may refer to


def compressor(method: int):
    """An object with ``compress(data)`` and ``flush()`` for a small entry, or None for stored.

    Small entries are stored or deflated, never zstd: every unzip reads them.
    """
    if method == DEFLATED:
        return _deflate.compressobj(DEFLATE_LEVEL, _deflate.DEFLATED, -15)
    return None


class DeflateBlocks:
    """Deflate in independent blocks that concatenate into one stream (pigz's method).

    Each block is compressed with the last 32 KiB of the block before it as
    its dictionary (so the ratio is that of one stream) and ends with a sync
    flush, on a byte boundary; :meth:`end` is the final, empty block. Any
    number of threads may call :meth:`block` at once.
    """

    parallel = True

    def block(self, data, before: bytes | None) -> bytes:
        if before:
            comp = _deflate.compressobj(DEFLATE_LEVEL, _deflate.DEFLATED, -15, zdict=before)
        else:
            comp = _deflate.compressobj(DEFLATE_LEVEL, _deflate.DEFLATED, -15)
        return comp.compress(data) + comp.flush(_deflate.Z_SYNC_FLUSH)

    def end(self) -> bytes:
        return _deflate.compressobj(DEFLATE_LEVEL, _deflate.DEFLATED, -15).flush()


class ZstdStream:
    """One zstd frame: blocks must be compressed one after another, in order.

    With ``cpus`` > 1 zstandard compresses the frame's jobs on its own threads.
    """

    parallel = False

    def __init__(self, cpus: int = 1) -> None:
        import zstandard

        threads = min(cpus, ZSTD_MAX_THREADS) if cpus > 1 else 0
        params = zstandard.ZstdCompressionParameters.from_level(
            ZSTD_LEVEL, threads=threads, job_size=ZSTD_JOB_BYTES if threads else 0)
        self._comp = zstandard.ZstdCompressor(compression_params=params).compressobj()

    def block(self, data, before: bytes | None) -> bytes:
        return self._comp.compress(data)

    def end(self) -> bytes:
        return self._comp.flush()


def codec(method: int, cpus: int = 1) -> DeflateBlocks | ZstdStream | None:
    """How the core's blocks are compressed (with up to ``cpus`` CPUs); None: stored as they are."""
    if method == DEFLATED:
        return DeflateBlocks()
    if method == ZSTD:
        return ZstdStream(cpus)
    return None
