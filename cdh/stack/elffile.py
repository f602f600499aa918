"""One mapped ELF file (executable, shared library, the vdso), read with ``pread`` on an open fd.

What the unwinder and the symbolizer need from a module, and nothing more:

- the program headers: PT_LOAD (link-time address <-> file offset), PT_GNU_EH_FRAME (where
  ``.eh_frame_hdr`` is, so CFI is found without section headers), PT_NOTE (the build id);
- the section headers, only when symbols are asked for: ``.symtab`` (when not stripped),
  else ``.dynsym`` (what ``strip`` leaves);
- the load bias of this mapping (runtime address - link-time address).

The fd comes from ``/proc/<pid>/map_files/<start>-<end>`` opened while the kernel still held
the crashing process, so the file is the one the process ran even after the container, its
mount namespace and the process are gone. Only ELF64 little-endian (x86_64, aarch64).
All reads are bounded: a hostile binary (the workload's own file) can cost at most
MAX_TABLE_BYTES per table read, never an unbounded allocation.
"""

from __future__ import annotations

import os
import re
import struct
from bisect import bisect_left

PT_LOAD, PT_NOTE, PT_GNU_EH_FRAME = 1, 4, 0x6474E550
SHT_SYMTAB, SHT_DYNSYM = 2, 11
SHF_COMPRESSED = 0x800
STT_FUNC, STT_GNU_IFUNC = 2, 10
_FUNC_TYPES = (STT_FUNC, STT_GNU_IFUNC)
NT_GNU_BUILD_ID = 3
MAX_TABLE_BYTES = 64 << 20   # the largest symbol/string/FDE table we read (a 1 GiB binary has ~20 MiB)
_BIND_RANK = {1: 3, 2: 2, 0: 1}  # STB_GLOBAL, STB_WEAK, STB_LOCAL
SYM_CHUNK = 24 << 15          # 768 KiB of Elf64_Sym per read: memory stays flat for 10^6 symbols
MAX_NAME = 512               # a symbol name is cut here (C++ names can be kilobytes long)

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_EHDR = struct.Struct("<16sHHIQQQIHHHHHH")
_PHDR = struct.Struct("<IIQQQQQQ")
_SHDR = struct.Struct("<IIQQQQIIQQ")
_SYM = struct.Struct("<IBBHQQ")


class ElfError(ValueError):
    """Not an ELF64 little-endian file, or a table that points outside the file."""


class ElfImage:
    """Lazy view of one ELF image through ``pread(size, offset) -> bytes``.

    Use :meth:`from_fd` for a file (the fd stays owned by the caller) and :meth:`from_bytes`
    for an image held in memory (the vdso, copied from the core as it streamed by).
    """

    def __init__(self, pread) -> None:
        self._pread = pread
        ehdr = self.read(0, 64)
        if len(ehdr) < 64 or ehdr[:4] != b"\x7fELF" or ehdr[4] != 2 or ehdr[5] != 1:
            raise ElfError("not an ELF64 little-endian file")
        (_, self.type, self.machine, _, self.entry, phoff, shoff, _, _, phentsize, phnum,
         shentsize, shnum, shstrndx) = _EHDR.unpack(ehdr)
        self._shoff, self._shnum, self._shstrndx, self._shentsize = shoff, shnum, shstrndx, shentsize
        self.loads: list[tuple[int, int, int, int, int]] = []   # (vaddr, memsz, offset, filesz, flags)
        self.eh_frame_hdr: tuple[int, int] | None = None        # (vaddr, size)
        self._notes: list[tuple[int, int]] = []
        table = self.read(phoff, phentsize * phnum) if phentsize == 56 else b""
        for i in range(len(table) // 56):
            p_type, flags, offset, vaddr, _, filesz, memsz, _ = _PHDR.unpack_from(table, 56 * i)
            if p_type == PT_LOAD:
                self.loads.append((vaddr, memsz, offset, filesz, flags))
            elif p_type == PT_GNU_EH_FRAME:
                self.eh_frame_hdr = (vaddr, memsz)
            elif p_type == PT_NOTE:
                self._notes.append((offset, filesz))
        self._build_id: str | bool | None = False
        self._sections: list[tuple[str, int, int, int, int, int, int]] | None = None

    @classmethod
    def from_fd(cls, fd: int) -> ElfImage:
        return cls(lambda size, offset: os.pread(fd, size, offset))

    @classmethod
    def from_bytes(cls, data: bytes) -> ElfImage:
        view = memoryview(data)
        return cls(lambda size, offset: bytes(view[offset:offset + size]))

    # ------------------------------------------------------------ raw reads

    def read(self, offset: int, size: int) -> bytes:
        if offset < 0 or size < 0 or size > MAX_TABLE_BYTES:
            raise ElfError(f"implausible read of {size} bytes at {offset}")
        return self._pread(size, offset)

    def offset_of(self, vaddr: int) -> int | None:
        """File offset of link-time address ``vaddr`` (None when not backed by the file)."""
        for seg_vaddr, _, offset, filesz, _ in self.loads:
            if seg_vaddr <= vaddr < seg_vaddr + filesz:
                return offset + vaddr - seg_vaddr
        return None

    def read_vaddr(self, vaddr: int, size: int) -> bytes:
        offset = self.offset_of(vaddr)
        return b"" if offset is None else self.read(offset, size)

    def bias_for(self, map_start: int, map_file_offset: int) -> int | None:
        """Load bias of a mapping of this file at ``map_start`` from ``map_file_offset``."""
        for vaddr, _, offset, filesz, _ in self.loads:
            if (offset & ~0xFFF) <= map_file_offset < offset + max(filesz, 1):
                return map_start - (map_file_offset + vaddr - offset)
        return None

    # ------------------------------------------------------------ build id

    @property
    def build_id(self) -> str | None:
        if self._build_id is False:
            self._build_id = self._read_build_id()
        return self._build_id  # type: ignore[return-value]

    def _read_build_id(self) -> str | None:
        for offset, size in self._notes:
            buf = self.read(offset, min(size, 1 << 16))
            pos = 0
            while pos + 12 <= len(buf):
                namesz, descsz, ntype = struct.unpack_from("<III", buf, pos)
                name_at = pos + 12
                desc_at = name_at + ((namesz + 3) & ~3)
                if desc_at + descsz > len(buf):
                    break
                if ntype == NT_GNU_BUILD_ID and buf[name_at:name_at + namesz].rstrip(b"\0") == b"GNU":
                    return buf[desc_at:desc_at + descsz].hex()
                pos = desc_at + ((descsz + 3) & ~3)
        return None

    # ------------------------------------------------------------ sections and symbols

    def sections(self) -> list[tuple[str, int, int, int, int, int, int]]:
        """(name, type, addr, offset, size, link, flags) of every section; [] when stripped of them."""
        if self._sections is None:
            self._sections = self._read_sections()
        return self._sections

    def _read_sections(self) -> list[tuple[str, int, int, int, int, int, int]]:
        if not self._shoff or self._shentsize != 64 or not self._shnum:
            return []
        raw = self.read(self._shoff, 64 * self._shnum)
        rows = [_SHDR.unpack_from(raw, 64 * i) for i in range(len(raw) // 64)]
        if self._shstrndx >= len(rows):
            return []
        strtab = self.read(rows[self._shstrndx][4], rows[self._shstrndx][5])
        out = []
        for name, stype, flags, addr, offset, size, link, _, _, _ in rows:
            out.append((_cstr(strtab, name), stype, addr, offset, size, link, flags))
        return out

    def section_data(self, wanted: str) -> bytes | None:
        """The bytes of section ``wanted``, decompressed if SHF_COMPRESSED (zlib; zstd if importable)."""
        for name, _, _, offset, size, _, flags in self.sections():
            if name != wanted:
                continue
            data = self.read(offset, size)
            if not flags & SHF_COMPRESSED:
                return data
            ch_type, _, ch_size = struct.unpack_from("<IIQ", data)
            if ch_size > MAX_TABLE_BYTES:
                raise ElfError(f"{wanted}: implausible size {ch_size}")
            return _decompress(wanted, ch_type, data[24:], ch_size)
        return None

    def symbol_table(self) -> tuple[str, int, int, int] | None:
        """(kind, offset, size, strtab section index) of .symtab, else .dynsym; None if neither."""
        secs = self.sections()
        for kind, wanted in (("symtab", SHT_SYMTAB), ("dynsym", SHT_DYNSYM)):
            for _, stype, _, offset, size, link, _ in secs:
                if stype == wanted and size:
                    return kind, offset, size, link
        return None

    def symbolize(self, vaddrs: list[int]) -> tuple[str | None, dict[int, tuple[str, int]]]:
        """{vaddr: (function, offset in it)} for the link-time addresses ``vaddrs``, and the table used.

        One pass over the table for all addresses (a C++ binary can hold 10^5 symbols; sorting
        them all would cost more than the few lookups a trace needs). Only function symbols
        that cover the address (``st_value <= a < st_value + st_size``) count: a stripped
        library's nearest exported symbol is usually the wrong function, so no guess is made.
        """
        table = self.symbol_table()
        if table is None or not vaddrs:
            return None, {}
        kind, offset, size, link = table
        if size > MAX_TABLE_BYTES:   # ~2.8 million symbols: a hostile file, or too slow to search here
            raise ElfError(f".{kind} of {size} bytes is too large to search")
        secs = self.sections()
        if link >= len(secs):
            return kind, {}
        best: dict[int, tuple[int, int, int]] = {}   # vaddr -> (st_value, binding rank, st_name)
        wanted = sorted(set(vaddrs))
        n = len(wanted)
        for st_name, st_info, _, st_shndx, st_value, st_size in self._symbols(offset, size):
            if not st_size or not st_shndx or (st_info & 0xF) not in _FUNC_TYPES:
                continue
            i = bisect_left(wanted, st_value)
            end = st_value + st_size
            while i < n and wanted[i] < end:
                a = wanted[i]
                i += 1
                # The innermost symbol; at one address a global name over a weak one over a
                # local alias (glibc: abort over __GI_abort); then the first in the table.
                key = (st_value, _BIND_RANK.get(st_info >> 4, 0), -st_name)
                prev = best.get(a)
                if prev is None or key > (prev[0], prev[1], -prev[2]):
                    best[a] = (st_value, key[1], st_name)
        if not best:
            return kind, {}
        str_offset, str_size = secs[link][3], secs[link][4]
        out = {}
        for a, (value, _, name) in best.items():
            raw_name = self.read(str_offset + name, min(MAX_NAME, max(0, str_size - name)))
            out[a] = (printable(raw_name.split(b"\0", 1)[0]), a - value)
        return kind, out

    def _symbols(self, offset: int, size: int):
        """The Elf64_Sym entries of a table, read SYM_CHUNK bytes at a time (bounded memory)."""
        end = offset + size - size % 24
        while offset < end:
            chunk = self.read(offset, min(SYM_CHUNK, end - offset))
            if not chunk:
                return
            yield from _SYM.iter_unpack(chunk[:len(chunk) - len(chunk) % 24])
            offset += len(chunk)


def printable(raw: bytes | str) -> str:
    """A name from the workload's binary (or a path it mapped), safe to log and print: control
    characters become ``?``."""
    return _CONTROL.sub("?", raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw)


def _decompress(section: str, ch_type: int, data: bytes, size: int) -> bytes:
    """An SHF_COMPRESSED section's bytes (ELFCOMPRESS_ZLIB; ELFCOMPRESS_ZSTD when zstandard is there)."""
    if ch_type == 1:
        import zlib

        return zlib.decompressobj().decompress(data, size)
    if ch_type == 2:
        try:
            import zstandard
        except ImportError:
            raise ElfError(f"{section}: zstd-compressed, and zstandard is not installed") from None
        return zstandard.ZstdDecompressor().decompress(data, max_output_size=size)
    raise ElfError(f"{section}: unknown compression {ch_type}")


def _cstr(buf: bytes, at: int) -> str:
    end = buf.find(b"\0", at)
    return buf[at:end if end >= 0 else len(buf)].decode("utf-8", "replace")
