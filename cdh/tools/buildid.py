"""GNU build ids of the executable and libraries, read from the core's own memory.

Linux dumps the first page of every file mapping that starts with an ELF
header (bit 4 of /proc/PID/coredump_filter, on by default). That page holds the
ELF header, the program headers and, in every toolchain default we know, the
``.note.gnu.build-id`` note. NT_FILE says which file each mapping came from, so
the build id of each mapped file can be read without the file itself: exactly
what a debugger or debuginfod needs to find the matching binary and symbols.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from cdh.elfcore import ELF_MAGIC, PT_NOTE, iter_notes

TYPE_CHECKING = False
if TYPE_CHECKING:
    from cdh.elfcore import Core, ReadAt

NT_GNU_BUILD_ID = 3
HEADER_BYTES = 64 << 10  # how much of a mapped file's start we read (the note is in the first page)


@dataclass
class MappedElf:
    path: str
    base: int                 # where the file's offset 0 is mapped
    build_id: str | None      # hex; None when the note is not in the dumped pages
    main: bool = False        # the program itself (holds the auxv entry point)


def mapped_elves(core: Core, read_at: ReadAt) -> list[MappedElf]:
    """Every mapped file whose ELF header is in the core, in address order."""
    main = core.main_executable
    wanted = []
    seen: set[str] = set()
    for m in sorted(core.mappings, key=lambda m: m.start):
        if m.file_offset != 0 or m.path in seen:
            continue
        where = core.locate(m.start)
        if where is None:
            continue
        seen.add(m.path)
        offset, present = where
        wanted.append((offset, min(present, m.end - m.start, HEADER_BYTES), m))
    out = []
    # Read in core-offset order: a core still compressed in a zip is read forward only once.
    for offset, size, m in sorted(wanted, key=lambda w: w[0]):
        head = read_at(offset, size)
        if head[:4] != ELF_MAGIC:
            continue
        out.append(MappedElf(m.path, m.start, elf_build_id(head), main=m.path == main))
    return sorted(out, key=lambda e: (not e.main, e.base))


def elf_build_id(head: bytes) -> str | None:
    """The GNU build id in the first bytes of an ELF file image, or None if not there."""
    if len(head) < 64 or head[4] != 2 or head[5] != 1:
        return None  # only ELF64 little-endian, like the cores we read
    phoff = struct.unpack_from("<Q", head, 32)[0]
    phentsize, phnum = struct.unpack_from("<HH", head, 54)
    for i in range(phnum):
        at = phoff + i * phentsize
        if at + 56 > len(head):
            return None
        p_type, _, p_offset, _, _, p_filesz = struct.unpack_from("<IIQQQQ", head, at)
        if p_type != PT_NOTE or p_offset + p_filesz > len(head):
            continue
        for name, ntype, desc in iter_notes(head[p_offset:p_offset + p_filesz]):
            if name == b"GNU" and ntype == NT_GNU_BUILD_ID:
                return desc.hex()
    return None
