"""The crashed process as the unwinder sees it: the stack bytes that were kept (:class:`Memory`)
and the executable mappings with their ELF images and CFI (:class:`Module`, :class:`Modules`).

Plain classes with ``__slots__``: importing dataclasses would cost the composer ~14 ms a crash.
"""

from __future__ import annotations

import bisect
import struct

from cdh.stack.cfi import DebugFrameIndex, EhFrameIndex, Fde, parse_fde
from cdh.stack.dwarf import CfiError
from cdh.stack.elffile import ElfError, ElfImage, printable


class Memory:
    """The captured stack windows (and any other bytes), by address."""

    def __init__(self, windows: dict[int, bytes]) -> None:
        self.starts = sorted(windows)
        self.windows = [windows[s] for s in self.starts]

    def read(self, addr: int, size: int) -> bytes | None:
        i = bisect.bisect_right(self.starts, addr) - 1
        if i < 0:
            return None
        off = addr - self.starts[i]
        data = self.windows[i]
        if off + size > len(data):
            return None
        return data[off:off + size]

    def u64(self, addr: int) -> int | None:
        raw = self.read(addr, 8)
        return None if raw is None else struct.unpack("<Q", raw)[0]

    def covers(self, addr: int) -> bool:
        return self.read(addr, 1) is not None


class Module:
    """One mapped ELF file (or the vdso): where it is, and its image once opened."""
    __slots__ = ("_cfi", "_cies", "_fdes", "bias", "end", "image", "map_offset", "path", "start")

    def __init__(self, path: str, start: int, end: int, map_offset: int, image: ElfImage | None = None,
                 bias: int | None = None) -> None:
        self.path = path
        self.start, self.end = start, end     # the executable mapping's range
        self.map_offset = map_offset          # its file offset
        self.image, self.bias = image, bias   # bias: runtime address - link-time address
        self._cfi: EhFrameIndex | bool | None = False
        self._fdes: dict[int, Fde] = {}
        self._cies: dict = {}

    @property
    def build_id(self) -> str | None:
        return self.image.build_id if self.image else None

    def cfi(self) -> EhFrameIndex | DebugFrameIndex | None:
        """.eh_frame through its .eh_frame_hdr, else .debug_frame, else None."""
        if self._cfi is False:
            self._cfi = None
            for kind in (EhFrameIndex, DebugFrameIndex):
                try:
                    self._cfi = kind(self.image) if self.image else None
                except (CfiError, ElfError, OSError, struct.error, ValueError, IndexError):
                    continue
                break
        return self._cfi  # type: ignore[return-value]

    def fde_for(self, vaddr: int) -> Fde | None:
        index = self.cfi()
        if index is None:
            return None
        if isinstance(index, DebugFrameIndex):
            return index.fde(vaddr)
        at = index.find(vaddr)
        if at is None:
            return None
        fde = self._fdes.get(at)
        if fde is None:
            fde = self._fdes[at] = parse_fde(self.image, at, self._cies)
        return fde if fde.pc_begin <= vaddr < fde.pc_end else None


class Modules:
    """The executable mappings of the process, by address."""

    def __init__(self, modules: list[Module]) -> None:
        self.modules = sorted(modules, key=lambda m: m.start)
        self.starts = [m.start for m in self.modules]

    def find(self, addr: int) -> Module | None:
        i = bisect.bisect_right(self.starts, addr) - 1
        if i >= 0 and addr < self.modules[i].end:
            return self.modules[i]
        return None


def modules_from(code_files, windows: dict[int, bytes], vdso: int | None) -> Modules:
    """The process's modules: its mapped files (cdh/stack/codefiles.py), plus the vdso's image as
    the core streamed it by (its CFI covers the aarch64 signal trampoline)."""
    mods = []
    for cf in code_files:
        try:
            image = ElfImage.from_fd(cf.fd)
        except (ElfError, OSError, struct.error):
            continue   # an executable mapping of a file that is not ELF (a JIT's code file)
        # the path as the workload named it (maps escapes only a newline): printable from here on,
        # since it reaches dump-info, the top frame, the object's metadata and the Event
        mods.append(Module(printable(cf.path), cf.start, cf.end, cf.offset, image,
                           image.bias_for(cf.start, cf.offset)))
    if vdso is not None and vdso in windows:
        try:
            image = ElfImage.from_bytes(bytes(windows[vdso]))
            mods.append(Module("[vdso]", vdso, vdso + len(windows[vdso]), 0, image, image.bias_for(vdso, 0)))
        except (ElfError, struct.error):
            pass
    return Modules(mods)
