"""How a file is cut into parts, and how many bytes of them may be in memory at once.

S3's multipart limits, named as s3transfer names them. A part is read from
disk into memory, sent, and dropped; :class:`ByteBudget` caps the bytes held
across every upload, so the agent's memory is about
``CDH_PART_CONCURRENCY x part size`` whatever the size of the cores.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

KiB, MiB, GiB, TiB = 1 << 10, 1 << 20, 1 << 30, 1 << 40
MIN_PART_BYTES = 5 * MiB      # S3: every part but the last
MAX_PART_BYTES = 5 * GiB      # S3: any part
MAX_PARTS = 10_000            # S3: parts per upload
MAX_SINGLE_PUT_BYTES = 5 * GiB


@dataclass(frozen=True)
class Part:
    number: int   # 1-based, as S3 counts
    offset: int
    length: int


class PartSizer:
    """Part size for a file: the configured size, grown (in whole MiB) so the file fits in
    :data:`MAX_PARTS` parts. At 8 MiB that is files up to 78 GiB; a 1 TiB core gets
    105 MiB parts; the largest file is 10,000 x 5 GiB (48.8 TiB)."""

    def __init__(self, part_size_bytes: int) -> None:
        if part_size_bytes < MIN_PART_BYTES or part_size_bytes > MAX_PART_BYTES:
            raise ValueError(f"part size must be {MIN_PART_BYTES} to {MAX_PART_BYTES} bytes")
        self.part_size_bytes = part_size_bytes

    def part_size(self, file_size: int) -> int:
        needed = -(-file_size // MAX_PARTS)          # ceil
        needed = -(-needed // MiB) * MiB             # whole MiB
        size = max(self.part_size_bytes, needed)
        if size > MAX_PART_BYTES:
            raise ValueError(f"{file_size} bytes is more than S3 takes in {MAX_PARTS} parts")
        return size

    def parts(self, file_size: int) -> list[Part]:
        size = self.part_size(file_size)
        return [Part(number=i + 1, offset=off, length=min(size, file_size - off))
                for i, off in enumerate(range(0, max(file_size, 1), size))]


class ByteBudget:
    """At most ``capacity`` bytes of part data in memory, across every upload.

    Taken *before* a part is read or scheduled (s3transfer's rule), released when
    it is sent. A request larger than the capacity waits for the budget to be
    empty and then runs alone, so a grown part (a core over 156 GiB) still goes.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.used = 0
        self._waiters: list[asyncio.Future] = []

    async def acquire(self, nbytes: int) -> int:
        """Wait until ``nbytes`` fit; returns the amount to :meth:`release` later."""
        n = min(nbytes, self.capacity)
        while self.used + n > self.capacity:
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            finally:
                self._waiters.remove(waiter)
        self.used += n
        return n

    def release(self, n: int) -> None:
        """Synchronous, so a cancelled part can always give its bytes back."""
        self.used -= n
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)

    @contextlib.asynccontextmanager
    async def hold(self, nbytes: int) -> AsyncIterator[None]:
        n = await self.acquire(nbytes)
        try:
            yield
        finally:
            self.release(n)
