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
class Part:
    number: int   # 1-based, as S3 counts
    offset: int
    length: int


class PartSizer:
    """Part size for a file: the configured size, grown (in whole MiB) so the file fits in
    :data:`MAX_PARTS` parts; the largest file S3 takes is MAX_PARTS x MAX_PART_BYTES."""

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
