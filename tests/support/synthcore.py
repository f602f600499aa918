"""Hand-built ELF cores for unit tests of machines and layouts this host cannot crash (aarch64).

The layout follows what fs/binfmt_elf.c writes: ELF header, program headers
(PT_NOTE first, then one PT_LOAD per mapping), the notes, then the dumped
memory. Mapped ELF files are represented by their first page only, as the
kernel dumps them; a mapping with ``dumped=False`` gets a PT_LOAD with no bytes.
"""

from __future__ import annotations

import struct

PAGE = 4096
EM = {"x86_64": 62, "aarch64": 183}
NREGS = {"x86_64": 27, "aarch64": 34}


def _note(name: bytes, ntype: int, desc: bytes) -> bytes:
    name += b"\0"
    pad = lambda b: b + b"\0" * (-len(b) % 4)
    return struct.pack("<III", len(name), len(desc), ntype) + pad(name) + pad(desc)


def elf_file_page(build_id: bytes) -> bytes:
    """The first page of a shared object: ELF header, one PT_NOTE phdr, the GNU build-id note."""
    note = _note(b"GNU", 3, build_id)
    phoff, note_at = 64, 64 + 56
    ehdr = b"\x7fELF" + bytes([2, 1, 1]) + b"\0" * 9 + struct.pack(
        "<HHIQQQIHHHHHH", 3, EM["aarch64"], 1, 0, phoff, 0, 0, 64, 56, 1, 0, 0, 0)
    phdr = struct.pack("<IIQQQQQQ", 4, 4, note_at, note_at, note_at, len(note), len(note), 4)
    return (ehdr + phdr + note).ljust(PAGE, b"\0")


def prstatus(machine: str, tid: int, signo: int, regs: list[int]) -> bytes:
    head = struct.pack("<iii", signo, 0, 0) + struct.pack("<h", signo) + b"\0" * 2
    head += struct.pack("<QQ", 0, 0) + struct.pack("<iiii", tid, 1, tid, tid) + b"\0" * 64
    assert len(head) == 112 and len(regs) == NREGS[machine]
    return head + struct.pack(f"<{len(regs)}Q", *regs) + struct.pack("<i", 1) + b"\0" * 4


def build(machine: str, threads: list[tuple[int, list[int]]], mappings: list[dict],
          siginfo: tuple[int, int, int], entry: int, xnum: bool = False) -> bytes:
    """mappings: dicts of start, end, offset, path, and optional page (bytes dumped at start)."""
    notes = b"".join(_note(b"CORE", 1, prstatus(machine, tid, siginfo[0], regs)) for tid, regs in threads)
    notes += _note(b"CORE", 0x53494749, struct.pack("<iiiiQ", siginfo[0], 0, siginfo[1], 0, siginfo[2])
                   + b"\0" * 104)
    notes += _note(b"CORE", 6, struct.pack("<4Q", 9, entry, 0, 0))
    table = b"".join(struct.pack("<QQQ", m["start"], m["end"], m["offset"] // PAGE) for m in mappings)
    names = b"".join(m["path"].encode() + b"\0" for m in mappings)
    notes += _note(b"CORE", 0x46494C45, struct.pack("<QQ", len(mappings), PAGE) + table + names)
    phnum = 1 + len(mappings)
    data_at = 64 + 56 * phnum
    body_at = data_at + len(notes)
    phdrs = [struct.pack("<IIQQQQQQ", 4, 0, data_at, 0, 0, len(notes), 0, 1)]
    body = b""
    for m in mappings:
        page = m.get("page", b"")
        phdrs.append(struct.pack("<IIQQQQQQ", 1, 5, body_at + len(body), m["start"], 0, len(page),
                                 m["end"] - m["start"], PAGE))
        body += page
    shoff = body_at + len(body) if xnum else 0
    ehdr = b"\x7fELF" + bytes([2, 1, 1]) + b"\0" * 9 + struct.pack(
        "<HHIQQQIHHHHHH", 4, EM[machine], 1, 0, 64, shoff, 0, 64, 56, 0xFFFF if xnum else phnum,
        64 if xnum else 0, 1 if xnum else 0, 0)
    core = ehdr + b"".join(phdrs) + notes + body
    if xnum:  # section header 0 carries the real segment count in sh_info
        core += struct.pack("<IIQQQQIIQQ", 0, 0, 0, 0, 0, 0, 0, phnum, 0, 0)
    return core
