"""DWARF call frame information: from a pc to the rule that gives its caller's registers.

Only what an unwinder needs for the few pcs of one trace:

1. ``.eh_frame_hdr``'s sorted table (initial location -> FDE address) is binary searched for
   the pc (:class:`EhFrameIndex`); no FDE is parsed that is not needed (libc has ~3,000, a big
   C++ binary 10^5). A module without ``.eh_frame`` (Go) has ``.debug_frame``, parsed once
   into a sorted list (:class:`DebugFrameIndex`).
2. The FDE and its CIE are parsed; the CIE's initial instructions and then the FDE's are run
   up to the pc (:func:`row_for`), giving one row: how to compute the CFA and where each
   register was saved. Expressions in rows are run by :func:`cdh.stack.dwarf.evaluate`.

Everything works on link-time addresses of one :class:`~cdh.stack.elffile.ElfImage`; the
caller subtracts the load bias. A malformed table costs that frame (``CfiError``), never a
loop: programs are bounded by the FDE's length.
"""

from __future__ import annotations

import struct
from bisect import bisect_right

from cdh.stack.dwarf import CfiError, read_encoded, sleb, uleb

MAX_STATE_STACK = 64
MAX_DEBUG_FRAME = 16 << 20

TYPE_CHECKING = False
if TYPE_CHECKING:
    from cdh.stack.elffile import ElfImage


# ---------------------------------------------------------------- the table

class EhFrameIndex:
    """``.eh_frame_hdr`` of one module: pc -> FDE address, by binary search of its table."""

    def __init__(self, image: ElfImage) -> None:
        if image.eh_frame_hdr is None:
            raise CfiError("no PT_GNU_EH_FRAME (no .eh_frame_hdr)")
        self.image = image
        hdr_vaddr, hdr_size = image.eh_frame_hdr
        head = image.read_vaddr(hdr_vaddr, min(hdr_size, 16))
        if len(head) < 4 or head[0] != 1:
            raise CfiError("unknown .eh_frame_hdr version")
        _, ptr_enc, count_enc, self.table_enc = head[:4]
        pos = 4
        self.eh_frame, pos = read_encoded(head, pos, ptr_enc, hdr_vaddr + pos, hdr_vaddr)
        self.count, pos = read_encoded(head, pos, count_enc, hdr_vaddr + pos, hdr_vaddr)
        if self.table_enc != 0x3B:  # datarel|sdata4: what every linker writes
            raise CfiError(f"unsupported .eh_frame_hdr table encoding {self.table_enc:#x}")
        self.hdr_vaddr = hdr_vaddr
        self.table = image.read_vaddr(hdr_vaddr + pos, 8 * self.count)
        if len(self.table) != 8 * self.count:
            raise CfiError(".eh_frame_hdr table cut short")

    def find(self, pc: int) -> int | None:
        """Link-time address of the FDE whose range may hold ``pc`` (checked by the caller)."""
        lo, hi = 0, self.count
        base = self.hdr_vaddr
        while lo < hi:
            mid = (lo + hi) // 2
            if struct.unpack_from("<i", self.table, 8 * mid)[0] + base <= pc:
                lo = mid + 1
            else:
                hi = mid
        if lo == 0:
            return None
        return struct.unpack_from("<i", self.table, 8 * (lo - 1) + 4)[0] + base


# ---------------------------------------------------------------- CIE / FDE

class Cie:
    __slots__ = ("augmented", "code_align", "data_align", "fde_enc", "initial", "ra_reg", "signal")

    def __init__(self) -> None:
        self.code_align = 1
        self.data_align = 1
        self.ra_reg = 16
        self.fde_enc = 0
        self.signal = False      # 'S': a signal trampoline (the caller's pc is exact, not a return address)
        self.augmented = False   # 'z': every FDE carries an augmentation length
        self.initial = b""


class Fde:
    __slots__ = ("cie", "instructions", "pc_begin", "pc_end")

    def __init__(self, cie: Cie, pc_begin: int, pc_end: int, instructions: bytes) -> None:
        self.cie, self.pc_begin, self.pc_end, self.instructions = cie, pc_begin, pc_end, instructions


def _entry(image: ElfImage, vaddr: int) -> tuple[bytes, int]:
    """(the entry's bytes after its length field, link-time address of those bytes)."""
    head = image.read_vaddr(vaddr, 12)
    if len(head) < 4:
        raise CfiError("CFI entry outside the file")
    length = struct.unpack_from("<I", head)[0]
    at = vaddr + 4
    if length == 0xFFFFFFFF:
        length = struct.unpack_from("<Q", head, 4)[0]
        at = vaddr + 12
    if length == 0 or length > 1 << 20:
        raise CfiError("implausible CFI entry length")
    body = image.read_vaddr(at, length)
    if len(body) != length:
        raise CfiError("CFI entry cut short")
    return body, at


def parse_cie(image: ElfImage, vaddr: int) -> Cie:
    body, at = _entry(image, vaddr)
    if struct.unpack_from("<I", body)[0] != 0:
        raise CfiError("not a CIE")
    return _cie(body, 4, at)


def _cie(body: bytes, pos: int, at: int) -> Cie:
    """A CIE from its version byte at ``body[pos]`` on (.eh_frame and .debug_frame alike)."""
    cie = Cie()
    version = body[pos]
    end = body.index(b"\0", pos + 1)
    aug = body[pos + 1:end].decode("ascii", "replace")
    pos = end + 1
    if "eh" in aug:
        pos += 8
    if version >= 4:
        pos += 2   # address_size, segment_selector_size (.debug_frame v4)
    cie.code_align, pos = uleb(body, pos)
    cie.data_align, pos = sleb(body, pos)
    if version == 1:
        cie.ra_reg, pos = body[pos], pos + 1
    else:
        cie.ra_reg, pos = uleb(body, pos)
    if aug.startswith("z"):
        cie.augmented = True
        aug_len, pos = uleb(body, pos)
        aug_end = pos + aug_len
        for ch in aug[1:]:
            if ch == "R":
                cie.fde_enc, pos = body[pos], pos + 1
            elif ch == "P":
                enc = body[pos]
                _, pos = read_encoded(body, pos + 1, enc & 0x7F, at + pos + 1)
            elif ch == "L":
                pos += 1
            elif ch == "S":
                cie.signal = True
            # 'B' (aarch64 BTI), 'G' (MTE) carry no data
        pos = aug_end
    elif aug:
        raise CfiError(f"unsupported CIE augmentation {aug!r}")
    cie.initial = body[pos:]
    return cie


def parse_fde(image: ElfImage, vaddr: int, cies: dict[int, Cie]) -> Fde:
    body, at = _entry(image, vaddr)
    cie_ptr = struct.unpack_from("<I", body)[0]
    if cie_ptr == 0:
        raise CfiError("a CIE where an FDE was expected")
    cie_vaddr = at - cie_ptr
    cie = cies.get(cie_vaddr)
    if cie is None:
        cie = cies[cie_vaddr] = parse_cie(image, cie_vaddr)
    pos = 4
    pc_begin, pos = read_encoded(body, pos, cie.fde_enc, at + pos)
    pc_range, pos = read_encoded(body, pos, cie.fde_enc & 0x0F, at + pos)
    if cie.augmented:
        aug_len, pos = uleb(body, pos)
        pos += aug_len
    return Fde(cie, pc_begin, pc_begin + pc_range, body[pos:])


class DebugFrameIndex:
    """``.debug_frame`` of a module without ``.eh_frame`` (Go binaries, -fno-asynchronous-unwind-tables).

    It has no search table: every FDE is parsed once into a sorted list (a Go binary: ~5,000,
    a few ms). Addresses are absolute link-time addresses, CIE pointers section offsets.
    """

    def __init__(self, image: ElfImage) -> None:
        data = image.section_data(".debug_frame")
        if not data:
            raise CfiError("no .debug_frame")
        if len(data) > MAX_DEBUG_FRAME:   # parsed whole: a Go binary's is ~1 MiB
            raise CfiError(f".debug_frame of {len(data)} bytes is too large to parse here")
        cies: dict[int, Cie] = {}
        rows: list[tuple[int, int, Fde]] = []
        pos = 0
        while pos + 8 <= len(data):
            length = struct.unpack_from("<I", data, pos)[0]
            if length == 0xFFFFFFFF:
                raise CfiError("64-bit .debug_frame is not supported")
            body_at, end = pos + 4, pos + 4 + length
            if length == 0 or end > len(data):
                break
            cie_id = struct.unpack_from("<I", data, body_at)[0]
            if cie_id == 0xFFFFFFFF:
                cies[pos] = _cie(data[body_at:end], 4, 0)
            else:
                cie = cies.get(cie_id)
                if cie is None:
                    cie_end = cie_id + 4 + struct.unpack_from("<I", data, cie_id)[0]
                    cie = cies[cie_id] = _cie(data[cie_id + 4:cie_end], 4, 0)
                begin, size = struct.unpack_from("<QQ", data, body_at + 4)
                rows.append((begin, begin + size, Fde(cie, begin, begin + size, data[body_at + 20:end])))
            pos = end
        rows.sort(key=lambda r: r[0])
        self.starts = [r[0] for r in rows]
        self.rows = rows

    def fde(self, pc: int) -> Fde | None:
        i = bisect_right(self.starts, pc) - 1
        if i >= 0 and pc < self.rows[i][1]:
            return self.rows[i][2]
        return None


# ---------------------------------------------------------------- running the program

# Register rules: ("undef",), ("same",), ("offset", n), ("val_offset", n), ("reg", r),
# ("expr", bytes), ("val_expr", bytes). CFA: ("reg", r, offset) or ("expr", bytes).

class Row:
    __slots__ = ("cfa", "regs")

    def __init__(self, cfa: tuple, regs: dict[int, tuple]) -> None:
        self.cfa, self.regs = cfa, regs

    def copy(self) -> Row:
        return Row(self.cfa, dict(self.regs))


def row_for(fde: Fde, pc: int) -> Row:
    """The CFI row in effect at link-time address ``pc`` (pc_begin <= pc < pc_end)."""
    cie = fde.cie
    row = Row(("reg", 0, 0), {})
    loc = fde.pc_begin
    _run(cie.initial, cie, row, None, loc, 1 << 64)
    initial = row.copy()
    _run(fde.instructions, cie, row, initial, loc, pc)
    return row


def _run(ops: bytes, cie: Cie, row: Row, initial: Row | None, loc: int, target: int) -> int:
    stack: list[Row] = []
    pos, n = 0, len(ops)
    ca, da = cie.code_align, cie.data_align
    while pos < n:
        op = ops[pos]
        pos += 1
        high, low = op & 0xC0, op & 0x3F
        if high == 0x40:                                  # advance_loc
            loc += low * ca
            if loc > target:
                return loc
            continue
        if high == 0x80:                                  # offset
            off, pos = uleb(ops, pos)
            row.regs[low] = ("offset", off * da)
            continue
        if high == 0xC0:                                  # restore
            _restore(row, initial, low)
            continue
        if op == 0x00:                                    # nop
            continue
        if op in (0x02, 0x03, 0x04):                      # advance_loc1/2/4
            size = {0x02: 1, 0x03: 2, 0x04: 4}[op]
            delta = int.from_bytes(ops[pos:pos + size], "little")
            pos += size
            loc += delta * ca
            if loc > target:
                return loc
        elif op == 0x01:                                  # set_loc
            loc, pos = read_encoded(ops, pos, cie.fde_enc, 0)
            if loc > target:
                return loc
        elif op in (0x05, 0x11):                          # offset_extended, offset_extended_sf
            reg, pos = uleb(ops, pos)
            off, pos = (uleb if op == 0x05 else sleb)(ops, pos)
            row.regs[reg] = ("offset", off * da)
        elif op == 0x06:                                  # restore_extended
            reg, pos = uleb(ops, pos)
            _restore(row, initial, reg)
        elif op == 0x07:                                  # undefined
            reg, pos = uleb(ops, pos)
            row.regs[reg] = ("undef",)
        elif op == 0x08:                                  # same_value
            reg, pos = uleb(ops, pos)
            row.regs[reg] = ("same",)
        elif op == 0x09:                                  # register
            reg, pos = uleb(ops, pos)
            reg2, pos = uleb(ops, pos)
            row.regs[reg] = ("reg", reg2)
        elif op == 0x0A:                                  # remember_state
            if len(stack) >= MAX_STATE_STACK:
                raise CfiError("remember_state nested too deep")
            stack.append(row.copy())
        elif op == 0x0B:                                  # restore_state
            if not stack:
                raise CfiError("restore_state without remember_state")
            saved = stack.pop()
            row.cfa, row.regs = saved.cfa, saved.regs
        elif op == 0x0C:                                  # def_cfa
            reg, pos = uleb(ops, pos)
            off, pos = uleb(ops, pos)
            row.cfa = ("reg", reg, off)
        elif op == 0x0D:                                  # def_cfa_register
            reg, pos = uleb(ops, pos)
            row.cfa = ("reg", reg, row.cfa[2] if row.cfa[0] == "reg" else 0)
        elif op == 0x0E:                                  # def_cfa_offset
            off, pos = uleb(ops, pos)
            row.cfa = ("reg", row.cfa[1] if row.cfa[0] == "reg" else 0, off)
        elif op == 0x0F:                                  # def_cfa_expression
            size, pos = uleb(ops, pos)
            row.cfa, pos = ("expr", ops[pos:pos + size]), pos + size
        elif op in (0x10, 0x16):                          # expression, val_expression
            reg, pos = uleb(ops, pos)
            size, pos = uleb(ops, pos)
            row.regs[reg] = ("expr" if op == 0x10 else "val_expr", ops[pos:pos + size])
            pos += size
        elif op == 0x12:                                  # def_cfa_sf
            reg, pos = uleb(ops, pos)
            off, pos = sleb(ops, pos)
            row.cfa = ("reg", reg, off * da)
        elif op == 0x13:                                  # def_cfa_offset_sf
            off, pos = sleb(ops, pos)
            row.cfa = ("reg", row.cfa[1] if row.cfa[0] == "reg" else 0, off * da)
        elif op in (0x14, 0x15):                          # val_offset, val_offset_sf
            reg, pos = uleb(ops, pos)
            off, pos = (uleb if op == 0x14 else sleb)(ops, pos)
            row.regs[reg] = ("val_offset", off * da)
        elif op == 0x2E:                                  # GNU_args_size
            _, pos = uleb(ops, pos)
        elif op == 0x2F:                                  # GNU_negative_offset_extended
            reg, pos = uleb(ops, pos)
            off, pos = uleb(ops, pos)
            row.regs[reg] = ("offset", -off * da)
        elif op == 0x2D:                                  # AARCH64_negate_ra_state (PAC)
            row.regs[-1] = ("ra_signed", not row.regs.get(-1, ("ra_signed", False))[1])
        else:
            raise CfiError(f"unsupported CFA opcode {op:#x}")
    return loc


def _restore(row: Row, initial: Row | None, reg: int) -> None:
    if initial is not None and reg in initial.regs:
        row.regs[reg] = initial.regs[reg]
    else:
        row.regs.pop(reg, None)
