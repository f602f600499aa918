"""What the composer keeps of the core for the stack trace, while the crashing process is held.

The stack trace needs the registers (in the core's notes), each thread's stack bytes and the
mapped code. The first two stream by in the core; the code files are opened separately
(cdh/stack/codefiles.py). Both must cost the held process next to nothing:

- :class:`StackTap` watches the core go by, block by block, on its way into the zip. The
  kernel writes the ELF header, the program headers and the notes first, then the memory
  segments in address order. The tap keeps that head (registers of every thread, NT_FILE,
  auxv) and, from each thread's stack pointer upwards, a bounded window of its stack, plus
  the vdso (its CFI covers the aarch64 signal trampoline). It copies only those bytes; per
  1 MiB block the rest is one comparison. It imports only ``os``, ``stat`` and ``struct``.
- A process that dies inside a signal handler running on an alternate stack (Python's
  faulthandler, Go) has the frames that matter on another stack. When the crashing
  thread's window is complete, the tap looks in it for the kernel's signal frame (a
  fixed pattern of the saved context) and, if the interrupted stack pointer lies in a
  segment still to come, keeps a window there too ("followed"). A segment already past
  cannot be had any more ("missed": the trace then stops at the signal frame).
- :meth:`StackTap.fill_from_memory` reads from ``/proc/<pid>/mem``, after the stream and
  before release, what the stream did not carry (a stack ``coredump_filter`` left out, a core
  cut short, a stack whose segment had gone by before a signal frame pointed to it).

Everything after that (parsing the notes fully, reading CFI and symbols, unwinding) runs
after stdin is released: cdh/stack/trace.py.
"""

from __future__ import annotations

import os
import struct

from cdh.elfcore import (
    AT_SYSINFO_EHDR,
    GREGS,
    MACHINES,
    NT_AUXV,
    NT_PRSTATUS,
    PN_XNUM,
    PRSTATUS_REGS_AT,
    PT_LOAD,
    PT_NOTE,
    SP,
    extended_count,
    iter_notes,
)

WINDOW_CRASHING = 256 << 10   # bytes above the crashing thread's SP (a few hundred C frames)
WINDOW_OTHER = 32 << 10       # bytes above every other thread's SP
MAX_OTHER_THREADS = 32        # other threads whose stacks are kept (the first in note order)
MAX_HEAD = 16 << 20           # ELF header + program headers + notes; ~3 KiB a thread on x86_64
MAX_VDSO = 64 << 10
_PHDR = struct.Struct("<IIQQQQQQ")
# e_machine -> where NT_PRSTATUS holds the stack pointer (rsp, sp)
SP_AT = {e: PRSTATUS_REGS_AT + 8 * GREGS[m].index(SP[m]) for e, m in MACHINES.items()}
MAX_FOLLOW = 4                # signal frames followed from the crashing thread's window
# The saved context of a signal frame: (pattern, offset of the saved SP from the pattern).
# x86_64 struct sigcontext: ..., rsp (word 15), rip, eflags, then cs|gs<<16|fs<<32|ss<<48 =
# 0x33, 0, 0, 0x2b for every 64-bit user context. aarch64: the first record of
# __reserved[] is fpsimd_context (magic 0x46508001, size 0x210), 32 bytes after sp.
SIGFRAME_PATTERN = {62: (struct.pack("<Q", 0x002B000000000033), -24),
                    183: (struct.pack("<II", 0x46508001, 0x210), -32)}


class StackTap:
    """Feed it every block of the core, in order (:meth:`feed`); read :attr:`head` and
    :attr:`windows` ({address: bytes}) afterwards. Never raises: :attr:`error` says what
    went wrong, and a tap that failed only stops keeping bytes."""

    def __init__(self, window_crashing: int = WINDOW_CRASHING, window_other: int = WINDOW_OTHER,
                 max_other_threads: int = MAX_OTHER_THREADS) -> None:
        self.window_crashing = window_crashing
        self.window_other = window_other
        self.max_other_threads = max_other_threads
        self.head = bytearray()
        self.windows: dict[int, bytearray] = {}
        self.error: str | None = None
        self._need = 64            # head bytes needed before the next parse step
        self._head_done = False
        self._offset = 0           # core offset of the next byte fed
        self._ranges: list[tuple[int, int, int]] = []   # (core offset, end, vaddr), by offset
        self._next = 0
        self._loads: list[tuple[int, int, int, int]] = []
        self._segments: list[tuple[int, int]] = []      # (vaddr, memsz) of every PT_LOAD
        self._sizes: dict[int, int] = {}                # window size of a missed SP, when not the crash's
        self._machine = 0
        self._crash_window: int | None = None   # vaddr key of the crashing thread's window
        self.followed: list[int] = []           # interrupted SPs whose stacks were kept too
        self.missed: list[int] = []             # SPs whose stack the stream cannot give (gone by, left out)
        self.from_memory = 0                    # bytes read from /proc/<pid>/mem (fill_from_memory)

    def feed(self, view) -> None:
        start = self._offset
        self._offset += len(view)
        if self.error is not None:
            return
        try:
            if not self._head_done:
                self._grow_head(view, start)
            if self._head_done:
                self._copy_windows(view, start)
        except (struct.error, ValueError, IndexError) as err:  # CoreError is a ValueError
            self.error = f"core head unreadable: {err}"
        except Exception as err:  # a bug: it stops the tap, never the capture
            self.error = f"internal error in the tap: {err!r}"

    # ------------------------------------------------------------ the head

    def _grow_head(self, view, start: int) -> None:
        while not self._head_done:
            have = len(self.head)
            if have < self._need:
                lo = have - start
                if lo >= len(view):
                    return
                self.head += view[lo:min(len(view), self._need - start)]
                if len(self.head) < self._need:
                    return
            self._parse_step()

    def _parse_step(self) -> None:
        h = self.head
        if h[:4] != b"\x7fELF" or h[4] != 2 or h[5] != 1 or struct.unpack_from("<H", h, 16)[0] != 4:
            raise ValueError("not an ELF64 little-endian core")
        machine = struct.unpack_from("<H", h, 18)[0]
        phoff, shoff = struct.unpack_from("<QQ", h, 32)
        phnum = struct.unpack_from("<H", h, 56)[0]
        if len(h) < phoff + 56:
            self._need = phoff + 56
            return
        if phnum == PN_XNUM:  # section header 0 is at the core's end: counted from PT_NOTE
            phnum = extended_count(lambda offset, size: bytes(h[offset:offset + size]), phoff, shoff)
        end = phoff + 56 * phnum
        if end > MAX_HEAD:
            raise ValueError("program headers larger than the head limit")
        if len(h) < end:
            self._need = end
            return
        loads, notes_end, notes = [], end, []
        for i in range(phnum):
            p_type, flags, offset, vaddr, _, filesz, memsz, _ = _PHDR.unpack_from(h, phoff + 56 * i)
            if p_type == PT_LOAD:
                loads.append((vaddr, filesz, offset, flags))
                self._segments.append((vaddr, memsz))
            elif p_type == PT_NOTE:
                notes.append((offset, filesz))
                notes_end = max(notes_end, offset + filesz)
        if notes_end > MAX_HEAD:
            raise ValueError(f"notes end at {notes_end}, past the head limit")
        if len(h) < notes_end:
            self._need = notes_end
            return
        self._plan(machine, loads, notes)
        self._head_done = True

    def _plan(self, machine: int, loads, notes) -> None:
        self._loads, self._machine = loads, machine
        sps, vdso = [], None
        for offset, size in notes:
            for _, ntype, desc in iter_notes(self.head[offset:offset + size]):
                if ntype == NT_PRSTATUS and machine in SP_AT and len(desc) >= SP_AT[machine] + 8:
                    sps.append(struct.unpack_from("<Q", desc, SP_AT[machine])[0])
                elif ntype == NT_AUXV:
                    words = struct.unpack_from(f"<{len(desc) // 8}Q", desc)
                    for i in range(0, len(words) - 1, 2):
                        if words[i] == AT_SYSINFO_EHDR:
                            vdso = words[i + 1]
        wanted = []   # (vaddr, size)
        for i, sp in enumerate(sps[:1 + self.max_other_threads]):
            wanted.append((sp & ~7, self.window_crashing if i == 0 else self.window_other))
        if vdso:
            wanted.append((vdso, MAX_VDSO))
        ranges = []
        for vaddr, size in wanted:
            for seg_vaddr, filesz, offset, _ in loads:
                if seg_vaddr <= vaddr < seg_vaddr + filesz:
                    size = min(size, seg_vaddr + filesz - vaddr)
                    ranges.append((offset + vaddr - seg_vaddr, offset + vaddr - seg_vaddr + size, vaddr))
                    break
            else:  # not in the core (coredump_filter left it out): only /proc/<pid>/mem has it
                self.missed.append(vaddr)
                self._sizes[vaddr] = size
        # Threads can share a window (one stack); keep each byte once: merge overlaps.
        ranges.sort()
        merged: list[list[int]] = []
        for lo, hi, vaddr in ranges:
            if merged and lo <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], hi)
            else:
                merged.append([lo, hi, vaddr])
        self._ranges = [(lo, hi, vaddr) for lo, hi, vaddr in merged]
        for _, hi, vaddr in self._ranges:
            self.windows[vaddr] = bytearray()
            if sps and vaddr <= sps[0] < vaddr + (hi - self._lo_of(vaddr)):
                self._crash_window = vaddr

    def _lo_of(self, vaddr: int) -> int:
        return next(lo for lo, _, v in self._ranges if v == vaddr)

    # ------------------------------------------------------------ the windows

    def _copy_windows(self, view, start: int) -> None:
        end = start + len(view)
        ranges = self._ranges
        i = self._next
        while i < len(ranges) and ranges[i][1] <= start:
            i += 1
        self._next = i
        while i < len(ranges) and ranges[i][0] < end:
            lo, hi, vaddr = ranges[i]
            buf = self.windows[vaddr]
            at = lo + len(buf)           # the next byte this window still needs
            if start <= at < end and at < hi:
                buf += view[at - start:min(end, hi) - start]
                if vaddr == self._crash_window and lo + len(buf) == hi:
                    added = self._follow(buf, vaddr, start)
                    if added:  # new windows may start in this very block, before this one
                        self._copy_windows(view, start)
                        return
            i += 1

    def _follow(self, buf: bytearray, base: int, block_start: int) -> bool:
        """Keep the stacks that signal frames in the crashing thread's window interrupted."""
        before = len(self.followed)
        pattern, sp_at = SIGFRAME_PATTERN.get(self._machine, (None, 0))
        pos = buf.find(pattern) if pattern else -1
        while pos >= 0 and len(self.followed) + len(self.missed) < MAX_FOLLOW:
            if (base + pos) % 8 == 0 and pos + sp_at >= 0:
                sp = struct.unpack_from("<Q", buf, pos + sp_at)[0] & ~7
                self._add_window(sp, block_start)
            pos = buf.find(pattern, pos + 8)
        return len(self.followed) > before

    def _add_window(self, sp: int, block_start: int) -> None:
        if any(v <= sp < v + (hi - lo) for lo, hi, v in self._ranges):
            return
        for seg_vaddr, filesz, offset, _ in self._loads:
            if seg_vaddr <= sp < seg_vaddr + filesz:
                lo = offset + sp - seg_vaddr
                if lo < block_start:          # in a block already handed on: gone
                    self.missed.append(sp)
                    return
                hi = lo + min(self.window_crashing, seg_vaddr + filesz - sp)
                self._ranges.append((lo, hi, sp))
                self._ranges[self._next:] = sorted(self._ranges[self._next:])
                self.windows[sp] = bytearray()
                self.followed.append(sp)
                return

    # ------------------------------------------------------------ what the stream could not give

    def fill_from_memory(self, mem_fd: int) -> None:
        """Read from ``/proc/<pid>/mem`` what the stream did not carry; call after the stream
        ends and before stdin is released (the process must still be held).

        That is: windows the core left out (coredump_filter without anonymous memory), windows
        a core cut short did not reach, and stacks a signal frame pointed to after their segment
        had gone by (Go's goroutine stacks sit below its signal stacks). A few preads.
        """
        if not self._head_done or self.error is not None:
            return
        try:
            for lo, hi, vaddr in self._ranges:
                buf = self.windows[vaddr]
                if lo + len(buf) < hi:
                    self._pread_into(mem_fd, buf, vaddr + len(buf), hi - lo - len(buf))
            if self._crash_window is None and self.missed:
                self._crash_window = self.missed[0]   # the crashing thread's window was left out
            pending, self.missed = self.missed, []
            for sp in pending:
                self._from_memory_window(mem_fd, sp)
            crash = self.windows.get(self._crash_window) if self._crash_window is not None else None
            if crash and not self.followed:
                self._follow(crash, self._crash_window, self._offset)   # all segments are past now
                pending, self.missed = self.missed, []
                for sp in pending:
                    self._from_memory_window(mem_fd, sp)
        except (OSError, struct.error, ValueError) as err:
            self.error = f"reading /proc/<pid>/mem: {err}"
        except Exception as err:  # a bug: it costs the trace, never the capture
            self.error = f"internal error reading /proc/<pid>/mem: {err!r}"

    def _from_memory_window(self, mem_fd: int, sp: int) -> None:
        size = self._sizes.get(sp, self.window_crashing)
        for vaddr, memsz in self._segments:
            if vaddr <= sp < vaddr + memsz:
                size = min(size, vaddr + memsz - sp)
                break
        else:
            return
        buf = self.windows.setdefault(sp, bytearray())
        self._pread_into(mem_fd, buf, sp + len(buf), size - len(buf))
        if sp not in self.followed and sp != self._crash_window:
            self.followed.append(sp)

    def _pread_into(self, mem_fd: int, buf: bytearray, addr: int, size: int) -> None:
        if size <= 0:
            return
        try:
            data = os.pread(mem_fd, size, addr)
        except OSError:
            return   # not mapped any more, or not readable: the trace does without
        buf += data
        self.from_memory += len(data)
