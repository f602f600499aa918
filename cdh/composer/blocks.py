"""The core's way to the disk: read in blocks, compressed on worker threads, written in order.

The caller (cdh.composer.capture, on the main thread) reads the kernel's pipe
straight into a free block (:meth:`Blocks.free`) and hands it over
(:meth:`Blocks.submit`). Encoder threads compress blocks; one writer thread
takes them in the order they were read, adds each to the CRC-32 and writes
it. So reading, compressing and writing overlap, and deflate (whose blocks
are independent, see cdh.composer.compress) uses up to MAX_WORKERS CPUs.
zstd gets one encoder thread (one frame, in order; zstandard runs its own two
workers under it); stored blocks go straight to the writer. isal, zstandard,
zlib, os.readv and os.write release the GIL for calls this large, so the
threads do run at once.

Memory is bounded whatever the core's size: a fixed pool of blocks
(workers + 2 of BLOCK bytes) and at most one compressed output per block
(zstd: plus zstandard's job buffers for its two workers); when every
block is in flight, :meth:`free` waits.

A write error (disk full) stops the writing; the blocks still come back, and
the error is raised to the caller at its next :meth:`submit` or at
:meth:`close`. When no thread can be started, all of it runs in the caller's
thread, slower: a node out of threads must not cost the core.

Threads come from ``_thread`` and queues from ``_queue``: importing
``threading`` and ``queue`` costs the composer ~3 ms of start-up, time the
dying process is held.
"""

from __future__ import annotations

import _thread
import os
from _queue import SimpleQueue

from cdh.composer.compress import WINDOW, codec, crc32

BLOCK = 1 << 20  # smaller blocks cost more CPU, bigger ones ran slower (README "What makes capture fast")
MAX_WORKERS = 4  # 4 ISA-L workers (~1.2 GB/s each) outrun a pipe (~2 GB/s); more only hold memory
_END = None
_start = _thread.start_new_thread  # one name, so a test can make it fail


def cpus() -> int:
    """CPUs this process may run on (its affinity, as a container's cpuset allows)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


class _Job:
    __slots__ = ("before", "block", "done", "error", "n", "out")

    def __init__(self, block: bytearray, n: int, before: bytes | None) -> None:
        self.block = block
        self.n = n
        self.before = before  # the previous block's last WINDOW bytes (deflate's dictionary)
        self.out = None
        self.error: BaseException | None = None
        self.done = _thread.allocate_lock()
        self.done.acquire()  # released by the encoder when ``out`` is ready


class Blocks:
    """Encodes submitted blocks on threads and writes them, in order, with ``write(data)``."""

    def __init__(self, method: int, write) -> None:
        self._write = write
        self._codec = codec(method, cpus())
        if self._codec is None:
            workers = 0
        else:
            workers = min(cpus(), MAX_WORKERS) if self._codec.parallel else 1
        self.crc = 0
        self.size = 0  # bytes submitted
        self.settled = 0  # bytes of submitted blocks the writer is done with (written, or dropped)
        self.error: BaseException | None = None
        self._aborted = False
        self._before: bytes | None = None
        self._free: SimpleQueue = SimpleQueue()
        for _ in range(workers + 2):
            self._free.put(bytearray(BLOCK))
        self._jobs: SimpleQueue = SimpleQueue()
        self._order: SimpleQueue = SimpleQueue()
        self._exited: SimpleQueue = SimpleQueue()
        self._encoders = self._writers = 0
        self._inline = False
        try:
            for _ in range(workers):
                _start(self._encode, ())
                self._encoders += 1
            _start(self._writer, ())
            self._writers = 1
        except RuntimeError:  # no thread to be had (a node out of pids): all on this thread
            self._stop()
            self._inline = True

    # ------------------------------------------------------------ the caller's side

    def free(self) -> bytearray:
        """A block to read into (waits while every block is in flight)."""
        return self._free.get()

    def write(self, data) -> None:
        """Hand over ``data`` (any size), copied into free blocks."""
        view = memoryview(data).cast("B")
        while view:
            block = self.free()
            n = min(len(block), len(view))
            block[:n] = view[:n]
            self.submit(block, n)
            view = view[n:]

    def submit(self, block: bytearray, n: int) -> None:
        """Hand over ``block[:n]``; raises the writer's error (disk full) if it has one."""
        if self.error is not None or n == 0:
            self._free.put(block)
            if self.error is not None:
                raise self.error
            return
        job = _Job(block, n, self._before)
        if self._codec is not None and self._codec.parallel:
            self._before = bytes(memoryview(block)[max(0, n - WINDOW):n])
        self.size += n
        if self._inline:
            self._encode_job(job)
            self._write_job(job)
            self.settled += n
            self._free.put(block)
            if self.error is not None:
                raise self.error
            return
        self._order.put(job)
        if self._codec is None:
            job.done.release()
        else:
            self._jobs.put(job)

    def close(self) -> None:
        """Wait for every block to be written, then the codec's end; raises a write error."""
        self._stop()
        if self._inline:
            self._write_end()
        if self.error is not None:
            raise self.error

    def abort(self) -> None:
        """Stop writing (the caller drops what was written) and wait for the threads."""
        self._aborted = True
        self._stop()

    def _stop(self) -> None:
        """Send every thread its end and wait for it (nothing to do when already stopped)."""
        for _ in range(self._encoders):
            self._jobs.put(_END)
        if self._writers:
            self._order.put(_END)
        for _ in range(self._encoders + self._writers):
            self._exited.get()
        self._encoders = self._writers = 0

    # ------------------------------------------------------------ the threads

    def _encode(self) -> None:
        try:
            while (job := self._jobs.get()) is not _END:
                self._encode_job(job)
                job.done.release()
        finally:
            self._exited.put(True)

    def _encode_job(self, job: _Job) -> None:
        if self._codec is None:
            return
        try:
            job.out = self._codec.block(memoryview(job.block)[:job.n], job.before)
        except BaseException as err:  # handed to the writer, raised to the caller
            job.error = err

    def _writer(self) -> None:
        try:
            while (job := self._order.get()) is not _END:
                job.done.acquire()
                if self.error is None and not self._aborted:
                    self._write_job(job)
                self.settled += job.n
                self._free.put(job.block)  # always: the reader may be waiting for it
            self._write_end()
        finally:
            self._exited.put(True)

    def _write_end(self) -> None:
        if self.error is None and not self._aborted and self._codec is not None:
            self._guarded(lambda: self._write(self._codec.end()))

    def _write_job(self, job: _Job) -> None:
        if job.error is not None:
            self.error = job.error
            return
        data = memoryview(job.block)[:job.n]
        self.crc = crc32(data, self.crc)
        self._guarded(lambda: self._write(data if job.out is None else job.out))

    def _guarded(self, action) -> None:
        try:
            action()
        except BaseException as err:  # raised to the caller at submit() or close()
            self.error = err
