"""The notes of an ELF core file: threads, registers, signal info, mapped files.

Layouts from core(5), linux/elfcore.h, asm/ptrace.h and fs/binfmt_elf.c. Only
64-bit little-endian cores (x86_64, aarch64): the platforms cdh runs on. The
stdlib's struct is enough, so ``cdh inspect`` needs no binutils.

Every read goes through ``read_at(offset, size) -> bytes``, so the same parser
works on a core file on disk, on a core still compressed inside a zip, and on
the head of a core the composer kept as it streamed by (cdh/stack/tap.py). The
kernel writes the notes right after the program headers, so parsing them reads
only the first pages of the core.

Shared by ``cdh inspect`` and the composer's stack trace, so it imports only
``struct`` and ``bisect``: plain classes with ``__slots__``, no dataclasses (their import costs
the composer ~14 ms per crash).

A core may be crafted (by a bucket writer, or a process that scribbles over its own notes): a
header that asks for more program headers or notes than any real core has is refused in one
line, a note that is too short for its type costs that note (listed in ``Core.problems``), and
address lookups are a bisect over the sorted segments, so 60,000 mappings cost milliseconds.
"""

from __future__ import annotations

import bisect
import struct

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    ReadAt = Callable[[int, int], bytes]

ELF_MAGIC = b"\x7fELF"
ELFCLASS64, ELFDATA2LSB, ET_CORE = 2, 1, 4
PT_LOAD, PT_NOTE = 1, 4
PN_XNUM = 0xFFFF                          # more segments than e_phnum holds: see section 0
NT_PRSTATUS, NT_PRPSINFO, NT_AUXV = 1, 3, 6
NT_SIGINFO, NT_FILE = 0x53494749, 0x46494C45   # "SIGI", "FILE"
AT_ENTRY, AT_SYSINFO_EHDR = 9, 33    # auxv: the program's entry point; the vdso
MAX_NOTES_BYTES = 64 << 20                # a core with more notes than this is not one we made
MAX_SEGMENTS = 1 << 22                    # 4M program headers (224 MiB): vm.max_map_count raised 60x

MACHINES = {62: "x86_64", 183: "aarch64"}
# elf_gregset_t: the order of user_regs_struct (x86_64) and user_pt_regs (aarch64).
GREGS = {
    "x86_64": ("r15", "r14", "r13", "r12", "rbp", "rbx", "r11", "r10", "r9", "r8", "rax", "rcx",
               "rdx", "rsi", "rdi", "orig_rax", "rip", "cs", "eflags", "rsp", "ss", "fs_base",
               "gs_base", "ds", "es", "fs", "gs"),
    "aarch64": (*(f"x{i}" for i in range(31)), "sp", "pc", "pstate"),
}
# The order gdb's `info registers` prints them in, which is the order people read.
DISPLAY = {
    "x86_64": ("rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp", "r8", "r9", "r10", "r11",
               "r12", "r13", "r14", "r15", "rip", "eflags", "cs", "ss", "ds", "es", "fs", "gs",
               "fs_base", "gs_base", "orig_rax"),
    "aarch64": GREGS["aarch64"],
}
PC = {"x86_64": "rip", "aarch64": "pc"}
SP = {"x86_64": "rsp", "aarch64": "sp"}
PRSTATUS_PID_AT = 32     # after elf_siginfo, pr_cursig, pr_sigpend, pr_sighold
PRSTATUS_REGS_AT = 112   # after pid, ppid, pgrp, sid and four timevals
# Signals whose siginfo carries the faulting address (si_addr) when si_code > 0.
FAULT_SIGNALS = frozenset({4, 5, 7, 8, 11})  # SIGILL, SIGTRAP, SIGBUS, SIGFPE, SIGSEGV
SI_KERNEL = 0x80   # raised by the kernel without an address (x86 general protection fault)


class CoreError(ValueError):
    """The file is not a core this parser understands; the message says why, in one line."""


class Segment:
    __slots__ = ("filesz", "flags", "memsz", "offset", "vaddr")

    def __init__(self, vaddr: int, memsz: int, offset: int, filesz: int, flags: int) -> None:
        self.vaddr, self.memsz, self.offset, self.filesz = vaddr, memsz, offset, filesz
        self.flags = flags   # PF_X=1, PF_W=2, PF_R=4

    @property
    def perms(self) -> str:
        return ("r" if self.flags & 4 else "-") + ("w" if self.flags & 2 else "-") + (
            "x" if self.flags & 1 else "-")


class Mapping:
    __slots__ = ("end", "file_offset", "path", "start")

    def __init__(self, start: int, end: int, file_offset: int, path: str) -> None:
        self.start, self.end, self.file_offset, self.path = start, end, file_offset, path


class Thread:
    __slots__ = ("registers", "signal", "tid")

    def __init__(self, tid: int, signal: int, registers: dict[str, int]) -> None:
        self.tid, self.signal, self.registers = tid, signal, registers


class SigInfo:
    __slots__ = ("addr", "code", "errno", "sender_pid", "sender_uid", "signo")

    def __init__(self, signo: int, errno: int, code: int) -> None:
        self.signo, self.errno, self.code = signo, errno, code
        self.addr: int | None = None        # the faulting address, for fault signals
        self.sender_pid: int | None = None  # who sent it, for kill()/tkill()/sigqueue()
        self.sender_uid: int | None = None


class Core:
    __slots__ = ("_starts", "auxv", "machine", "mappings", "problems", "psinfo", "segments", "siginfo",
                 "threads")

    def __init__(self, machine: str, segments: list[Segment]) -> None:
        self.machine = machine
        self.segments = sorted(segments, key=lambda s: s.vaddr)  # the kernel writes them so; a crafted core
        self._starts = [s.vaddr for s in self.segments]
        self.threads: list[Thread] = []          # the crashing thread first
        self.siginfo: SigInfo | None = None
        self.mappings: list[Mapping] = []
        self.auxv: dict[int, int] = {}
        self.psinfo: dict[str, object] = {}
        self.problems: list[str] = []            # notes that could not be read

    def _segment_at(self, addr: int) -> Segment | None:
        """The segment starting closest below ``addr`` (segments do not overlap in a real core)."""
        i = bisect.bisect_right(self._starts, addr) - 1
        return self.segments[i] if i >= 0 else None

    def locate(self, addr: int) -> tuple[int, int] | None:
        """(core file offset, bytes present) of memory at ``addr``, or None if not dumped."""
        s = self._segment_at(addr)
        if s is not None and s.vaddr <= addr < s.vaddr + s.filesz:
            return s.offset + addr - s.vaddr, s.vaddr + s.filesz - addr
        return None

    def perms_at(self, addr: int) -> str:
        s = self._segment_at(addr)
        return s.perms if s is not None and s.vaddr <= addr < s.vaddr + s.memsz else "---"

    @property
    def main_executable(self) -> str | None:
        """The mapped file holding the program's entry point (auxv AT_ENTRY)."""
        entry = self.auxv.get(AT_ENTRY)
        for m in self.mappings:
            if entry is not None and m.start <= entry < m.end:
                return m.path
        return None


def read_core(read_at: ReadAt) -> Core:
    """Parse the ELF header, program headers and notes of a core."""
    ehdr = read_at(0, 64)
    machine, phoff, phnum, shoff = _check_header(ehdr)
    if phnum == PN_XNUM:
        phnum = extended_count(read_at, phoff, shoff)
    if phnum > MAX_SEGMENTS:
        raise CoreError(f"the core claims {phnum} segments, more than any real core has")
    phdrs = _exact(read_at, phoff, 56 * phnum, "program headers")
    segments, notes = [], []
    for i in range(phnum):
        p_type, flags, offset, vaddr, _, filesz, memsz, _ = struct.unpack_from("<IIQQQQQQ", phdrs, 56 * i)
        if p_type == PT_LOAD:
            segments.append(Segment(vaddr, memsz, offset, filesz, flags))
        elif p_type == PT_NOTE:
            notes.append((offset, filesz))
    core = Core(machine=machine, segments=segments)
    if sum(size for _, size in notes) > MAX_NOTES_BYTES:
        raise CoreError("the core's notes are implausibly large")
    for offset, size in sorted(notes):
        for name, ntype, desc in iter_notes(_exact(read_at, offset, size, "notes")):
            if name != b"CORE":
                continue
            try:
                _apply_note(core, ntype, desc)
            except (CoreError, struct.error) as err:  # this note is lost, the rest is still read
                core.problems.append(str(err) if isinstance(err, CoreError)
                                     else f"a note of type {ntype:#x} is too short ({len(desc)} bytes)")
    return core


def extended_count(read_at: ReadAt, phoff: int, shoff: int) -> int:
    """The number of program headers of a core with 65535 or more (e_phnum is PN_XNUM).

    It is in section header 0, at the end of the core. A core's head alone (what the composer
    keeps while the core streams by) lacks it; Linux writes PT_NOTE first and the notes right
    after the table, so the table ends where the notes begin.
    """
    sh0 = read_at(shoff, 64)
    if len(sh0) == 64:
        return struct.unpack_from("<I", sh0, 44)[0]
    p_type, _, note_offset = struct.unpack_from("<IIQ", _exact(read_at, phoff, 16, "program headers"))
    if p_type != PT_NOTE or note_offset <= phoff:
        raise CoreError("65535 or more segments, and neither section header 0 nor PT_NOTE first")
    return (note_offset - phoff) // 56


def _check_header(ehdr: bytes) -> tuple[str, int, int, int]:
    if len(ehdr) < 64 or ehdr[:4] != ELF_MAGIC:
        raise CoreError("not an ELF file")
    if ehdr[4] != ELFCLASS64 or ehdr[5] != ELFDATA2LSB:
        raise CoreError("only 64-bit little-endian cores are supported")
    e_type, e_machine = struct.unpack_from("<HH", ehdr, 16)
    if e_type != ET_CORE:
        raise CoreError(f"ELF type {e_type} is not a core (4)")
    if e_machine not in MACHINES:
        raise CoreError(f"unsupported machine {e_machine} (supported: x86_64, aarch64)")
    phoff, shoff = struct.unpack_from("<QQ", ehdr, 32)
    phnum = struct.unpack_from("<H", ehdr, 56)[0]
    return MACHINES[e_machine], phoff, phnum, shoff


def _exact(read_at: ReadAt, offset: int, size: int, what: str) -> bytes:
    data = read_at(offset, size) if offset < 1 << 62 else b""  # pread takes a signed 64-bit offset
    if len(data) != size:
        raise CoreError(f"the core is cut short: {what} at offset {offset} are missing")
    return data


def iter_notes(buf: bytes):
    """(name, type, desc) of each ELF note in ``buf`` (4-byte aligned, as Linux writes them)."""
    pos = 0
    while pos + 12 <= len(buf):
        namesz, descsz, ntype = struct.unpack_from("<III", buf, pos)
        name_at = pos + 12
        desc_at = name_at + _align4(namesz)
        end = desc_at + _align4(descsz)
        if desc_at + descsz > len(buf):
            return  # a truncated note: keep what came before
        yield buf[name_at:name_at + namesz].rstrip(b"\0"), ntype, buf[desc_at:desc_at + descsz]
        pos = end


def _align4(n: int) -> int:
    return (n + 3) & ~3


def _apply_note(core: Core, ntype: int, desc: bytes) -> None:
    if ntype == NT_PRSTATUS:
        core.threads.append(parse_prstatus(core.machine, desc))
    elif ntype == NT_SIGINFO:
        core.siginfo = parse_siginfo(desc)
    elif ntype == NT_FILE:
        core.mappings = parse_nt_file(desc)
    elif ntype == NT_AUXV:
        words = struct.unpack_from(f"<{len(desc) // 8}Q", desc)
        core.auxv = {words[i]: words[i + 1] for i in range(0, len(words) - 1, 2) if words[i]}
    elif ntype == NT_PRPSINFO and len(desc) >= 136:
        core.psinfo = parse_prpsinfo(desc)


def parse_prstatus(machine: str, desc: bytes) -> Thread:
    names = GREGS[machine]
    if len(desc) < PRSTATUS_REGS_AT + 8 * len(names):
        raise CoreError("an NT_PRSTATUS note is too short for this machine")
    cursig = struct.unpack_from("<h", desc, 12)[0]
    tid = struct.unpack_from("<i", desc, PRSTATUS_PID_AT)[0]
    values = struct.unpack_from(f"<{len(names)}Q", desc, PRSTATUS_REGS_AT)
    regs = dict(zip(names, values, strict=True))
    return Thread(tid=tid, signal=cursig, registers={n: regs[n] for n in DISPLAY[machine]})


def parse_siginfo(desc: bytes) -> SigInfo:
    signo, errno, code = struct.unpack_from("<iii", desc, 0)
    info = SigInfo(signo=signo, errno=errno, code=code)
    if len(desc) >= 24 and signo in FAULT_SIGNALS and 0 < code != SI_KERNEL:
        info.addr = struct.unpack_from("<Q", desc, 16)[0]
    elif len(desc) >= 24 and code <= 0:
        info.sender_pid, info.sender_uid = struct.unpack_from("<iI", desc, 16)
    return info


def parse_nt_file(desc: bytes) -> list[Mapping]:
    """NT_FILE: count, page size, (start, end, offset in pages) * count, then the paths."""
    count, page_size = struct.unpack_from("<QQ", desc, 0)
    table_end = 16 + 24 * count
    if table_end > len(desc):
        raise CoreError("the NT_FILE note is cut short")
    paths = desc[table_end:].split(b"\0")
    out = []
    for i in range(count):
        start, end, pgoff = struct.unpack_from("<QQQ", desc, 16 + 24 * i)
        path = paths[i].decode("utf-8", "replace") if i < len(paths) else "?"
        out.append(Mapping(start, end, pgoff * page_size, path))
    return out


def parse_prpsinfo(desc: bytes) -> dict[str, object]:
    uid, gid, pid, ppid = struct.unpack_from("<IIii", desc, 16)
    return {
        "pid": pid, "ppid": ppid, "uid": uid, "gid": gid,
        "fname": desc[40:56].split(b"\0")[0].decode("utf-8", "replace"),
        "psargs": desc[56:136].split(b"\0")[0].decode("utf-8", "replace").strip(),
    }
