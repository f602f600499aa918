"""How a file is cut into parts, and how the parts are sent within the shared slots.

S3's multipart limits, named as s3transfer names them. A part is never held in
memory: it streams from the file (body.py), so its size costs no memory and only
sets how many requests a file takes (fewer, bigger parts: less work per byte on
both ends; a retry resends one part).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")

KiB, MiB, GiB, TiB = 1 << 10, 1 << 20, 1 << 30, 1 << 40
MIN_PART_BYTES = 5 * MiB      # S3: every part but the last
MAX_PART_BYTES = 5 * GiB      # S3: any part
MAX_PARTS = 10_000            # S3: parts per upload
MAX_SINGLE_PUT_BYTES = 5 * GiB


@dataclass(frozen=True)
class Limits:
    """A service's rules for one upload in parts."""

    name: str
    min_part_bytes: int       # every part but the last
    max_part_bytes: int
    max_parts: int


S3_LIMITS = Limits("S3", MIN_PART_BYTES, MAX_PART_BYTES, MAX_PARTS)
# Azure block blobs (API 2019-12-12 and later): 50,000 blocks of up to 4000 MiB; no smallest block.
AZURE_LIMITS = Limits("Azure", 1, 4000 * MiB, 50_000)


@dataclass(frozen=True)
class Part:
    number: int   # 1-based, as S3 counts
    offset: int
    length: int


class PartSizer:
    """Part size for a file: the configured size, grown (in whole MiB) so the file fits in the
    service's most parts; the largest file is ``max_parts x max_part_bytes`` (S3: 10,000 x 5 GiB)."""

    def __init__(self, part_size_bytes: int, limits: Limits = S3_LIMITS) -> None:
        # CDH_PART_SIZE is at least 5 MiB (the settings say so): every service's smallest part
        if part_size_bytes < limits.min_part_bytes or part_size_bytes > limits.max_part_bytes:
            raise ValueError(f"part size must be {limits.min_part_bytes} to {limits.max_part_bytes} bytes")
        self.part_size_bytes = part_size_bytes
        self.limits = limits

    def part_size(self, file_size: int) -> int:
        most = self.limits.max_parts
        needed = -(-file_size // most)               # ceil
        needed = -(-needed // MiB) * MiB             # whole MiB
        size = max(self.part_size_bytes, needed)
        if size > self.limits.max_part_bytes:
            raise ValueError(f"{file_size} bytes is more than {self.limits.name} takes in {most} parts")
        return size

    def parts(self, file_size: int) -> list[Part]:
        size = self.part_size(file_size)
        return [Part(number=i + 1, offset=off, length=min(size, file_size - off))
                for i, off in enumerate(range(0, max(file_size, 1), size))]


async def send_in_slots(parts: list[Part], send: Callable[[Part], Awaitable[T]], slots: asyncio.Semaphore,
                        name: str) -> list[T]:
    """``send(part)`` for every part, each in a task that holds a slot; their results in order.

    A slot is taken before each task is scheduled (s3transfer's rule) and given back when the task
    ends, however it ends. The first failure cancels the rest and is raised.
    """
    tasks: list[asyncio.Task] = []
    try:
        for part in parts:
            await slots.acquire()
            failed = next((t for t in tasks if t.done() and t.exception()), None)
            if failed is not None:
                slots.release()
                raise failed.exception()  # type: ignore[misc]
            task = asyncio.create_task(send(part), name=f"{name}-{part.number}")
            # A callback, not a `finally` in the task: a task cancelled before it first
            # runs never enters its body, and its slot would be lost for good.
            task.add_done_callback(lambda _: slots.release())
            tasks.append(task)
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
