"""DWARF's small languages, as call frame information uses them (DWARF 5 §7.6, §2.5; LSB "Exception
Frames"): LEB128 numbers, ``DW_EH_PE`` pointer encodings, and the stack machine of DWARF expressions
that some CFI rows use (x86_64 PLT entries, glibc's ``__restore_rt``, aarch64's vdso trampoline).

Every reader is bounded by its buffer and every expression by MAX_EXPR_STEPS: bytes from a hostile
binary cost that frame (:class:`CfiError`), never a loop.
"""

from __future__ import annotations

import struct

MAX_EXPR_STEPS = 1000

# Pointer encodings (DW_EH_PE_*)
OMIT = 0xFF
_FORMATS = {0x02: "<H", 0x03: "<I", 0x04: "<Q", 0x0A: "<h", 0x0B: "<i", 0x0C: "<q"}


class CfiError(ValueError):
    """Unreadable or unsupported CFI for this pc."""


# ---------------------------------------------------------------- byte readers

def uleb(buf: bytes, pos: int) -> tuple[int, int]:
    return _leb128(buf, pos, signed=False)


def sleb(buf: bytes, pos: int) -> tuple[int, int]:
    return _leb128(buf, pos, signed=True)


def _leb128(buf: bytes, pos: int, signed: bool) -> tuple[int, int]:
    """(value, position after it) of the LEB128 number at ``buf[pos]``."""
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise CfiError("LEB128 runs past the end")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        shift += 7
        if b < 0x80:
            if signed and b & 0x40:
                result -= 1 << shift
            return result, pos


def read_encoded(buf: bytes, pos: int, enc: int, field_vaddr: int, datarel: int = 0) -> tuple[int, int]:
    """A DW_EH_PE-encoded pointer at ``buf[pos]``, whose own link-time address is ``field_vaddr``."""
    if enc == OMIT:
        return 0, pos
    fmt = enc & 0x0F
    if fmt == 0x00:
        value, end = struct.unpack_from("<Q", buf, pos)[0], pos + 8
    elif fmt == 0x01:
        value, end = uleb(buf, pos)
    elif fmt == 0x09:
        value, end = sleb(buf, pos)
    elif fmt in _FORMATS:
        f = _FORMATS[fmt]
        if pos + struct.calcsize(f) > len(buf):
            raise CfiError("encoded pointer runs past the end")
        value, end = struct.unpack_from(f, buf, pos)[0], pos + struct.calcsize(f)
    else:
        raise CfiError(f"unsupported pointer encoding {enc:#x}")
    app = enc & 0x70
    if app == 0x10:
        value += field_vaddr
    elif app == 0x30:
        value += datarel
    elif app not in (0x00,):
        raise CfiError(f"unsupported pointer application {enc:#x}")
    if enc & 0x80:
        raise CfiError("indirect pointers are not supported in FDE lookup")
    return value & 0xFFFFFFFFFFFFFFFF, end


# ---------------------------------------------------------------- DWARF expressions

def evaluate(expr: bytes, regs: dict[int, int], read_u64, push: int | None = None) -> int:
    """Run a DWARF location expression; ``read_u64(addr) -> int | None`` reads memory."""
    stack: list[int] = [] if push is None else [push]
    pos, steps, mask = 0, 0, (1 << 64) - 1
    while pos < len(expr):
        steps += 1
        if steps > MAX_EXPR_STEPS:
            raise CfiError("DWARF expression runs too long")
        op = expr[pos]
        pos += 1
        if 0x30 <= op <= 0x4F:                            # lit0..lit31
            stack.append(op - 0x30)
        elif 0x70 <= op <= 0x8F:                          # breg0..breg31
            off, pos = sleb(expr, pos)
            stack.append((_reg(regs, op - 0x70) + off) & mask)
        elif 0x50 <= op <= 0x6F:                          # reg0..reg31 (a value, in CFI)
            stack.append(_reg(regs, op - 0x50))
        elif op == 0x92:                                  # bregx
            reg, pos = uleb(expr, pos)
            off, pos = sleb(expr, pos)
            stack.append((_reg(regs, reg) + off) & mask)
        elif op == 0x06:                                  # deref
            stack.append(_deref(read_u64, stack.pop()))
        elif op == 0x94:                                  # deref_size
            size = expr[pos]
            pos += 1
            stack.append(_deref(read_u64, stack.pop()) & ((1 << (8 * size)) - 1))
        elif op == 0x03:                                  # addr
            stack.append(struct.unpack_from("<Q", expr, pos)[0])
            pos += 8
        elif op in (0x08, 0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x0E, 0x0F):  # const1u .. const8s
            fmt = {0x08: "<B", 0x09: "<b", 0x0A: "<H", 0x0B: "<h", 0x0C: "<I", 0x0D: "<i",
                   0x0E: "<Q", 0x0F: "<q"}[op]
            stack.append(struct.unpack_from(fmt, expr, pos)[0] & mask)
            pos += struct.calcsize(fmt)
        elif op == 0x10:                                  # constu
            v, pos = uleb(expr, pos)
            stack.append(v & mask)
        elif op == 0x11:                                  # consts
            v, pos = sleb(expr, pos)
            stack.append(v & mask)
        elif op == 0x12:                                  # dup
            stack.append(stack[-1])
        elif op == 0x13:                                  # drop
            stack.pop()
        elif op == 0x14:                                  # over
            stack.append(stack[-2])
        elif op == 0x15:                                  # pick
            stack.append(stack[-1 - expr[pos]])
            pos += 1
        elif op == 0x16:                                  # swap
            stack[-1], stack[-2] = stack[-2], stack[-1]
        elif op == 0x17:                                  # rot
            stack[-1], stack[-2], stack[-3] = stack[-2], stack[-3], stack[-1]
        elif op == 0x23:                                  # plus_uconst
            v, pos = uleb(expr, pos)
            stack.append((stack.pop() + v) & mask)
        elif op in _BINARY:
            b, a = stack.pop(), stack.pop()
            stack.append(_BINARY[op](a, b) & mask)
        elif op == 0x1F:                                  # neg
            stack.append(-stack.pop() & mask)
        elif op == 0x20:                                  # not
            stack.append(~stack.pop() & mask)
        elif op == 0x2F:                                  # skip
            pos += 2 + struct.unpack_from("<h", expr, pos)[0]
        elif op == 0x28:                                  # bra
            off = struct.unpack_from("<h", expr, pos)[0]
            pos += 2
            if stack.pop():
                pos += off
        elif op == 0x96:                                  # nop
            pass
        else:
            raise CfiError(f"unsupported DWARF expression opcode {op:#x}")
    if not stack:
        raise CfiError("DWARF expression left nothing")
    return stack[-1]


def _signed(v: int) -> int:
    return v - (1 << 64) if v >> 63 else v


_BINARY = {
    0x1A: lambda a, b: a & b, 0x1C: lambda a, b: a - b, 0x1E: lambda a, b: a * b,
    0x21: lambda a, b: a | b, 0x22: lambda a, b: a + b, 0x24: lambda a, b: a << b if b < 64 else 0,
    0x25: lambda a, b: a >> b if b < 64 else 0, 0x26: lambda a, b: _signed(a) >> min(b, 63),
    0x27: lambda a, b: a ^ b,
    0x1B: lambda a, b: int(_signed(a) / _signed(b)) if b else 0,
    0x1D: lambda a, b: a % b if b else 0,
    0x29: lambda a, b: int(a == b), 0x2A: lambda a, b: int(_signed(a) >= _signed(b)),
    0x2B: lambda a, b: int(_signed(a) > _signed(b)), 0x2C: lambda a, b: int(_signed(a) <= _signed(b)),
    0x2D: lambda a, b: int(_signed(a) < _signed(b)), 0x2E: lambda a, b: int(a != b),
}


def _reg(regs: dict[int, int], n: int) -> int:
    v = regs.get(n)
    if v is None:
        raise CfiError(f"the expression needs register {n}, which is not known in this frame")
    return v


def _deref(read_u64, addr: int) -> int:
    v = read_u64(addr)
    if v is None:
        raise CfiError(f"the expression reads {addr:#x}, which was not captured")
    return v
