"""DWARF's small languages as CFI uses them (cdh/stack/dwarf.py), and hostile bytes bounded."""

from __future__ import annotations

import pytest

from cdh.stack.dwarf import MAX_EXPR_STEPS, CfiError, evaluate, read_encoded, sleb, uleb


def test_leb128():
    assert uleb(bytes([0xE5, 0x8E, 0x26]), 0) == (624485, 3)
    assert sleb(bytes([0xC0, 0xBB, 0x78]), 0) == (-123456, 3)
    assert sleb(bytes([0x7F]), 0) == (-1, 1)
    with pytest.raises(CfiError):
        uleb(bytes([0x80, 0x80]), 0)   # runs past the end


def test_encoded_pointers():
    # pcrel | sdata4: relative to the field's own address
    assert read_encoded((-16).to_bytes(4, "little", signed=True), 0, 0x1B, 0x1000) == (0xFF0, 4)
    # datarel | sdata4 (.eh_frame_hdr's table)
    assert read_encoded((8).to_bytes(4, "little"), 0, 0x3B, 0, datarel=0x2000) == (0x2008, 4)
    assert read_encoded(b"", 0, 0xFF, 0) == (0, 0)   # omitted
    with pytest.raises(CfiError):
        read_encoded(b"\0" * 8, 0, 0x80 | 0x03, 0)  # indirect


def test_the_plt_cfa_expression():
    # x86_64 .plt: CFA = rsp + 8 + ((rip & 15) >= 11 ? 8 : 0)
    expr = bytes([0x77, 0x08, 0x80, 0x00, 0x3F, 0x1A, 0x3B, 0x2A, 0x33, 0x24, 0x22])
    assert evaluate(expr, {7: 0x1000, 16: 0x40100B}, lambda a: None) == 0x1010
    assert evaluate(expr, {7: 0x1000, 16: 0x401002}, lambda a: None) == 0x1008


def test_deref_reads_only_what_was_captured():
    expr = bytes([0x77, 0x10, 0x06])   # breg7 +16; deref
    assert evaluate(expr, {7: 0x1000}, {0x1010: 42}.get) == 42
    with pytest.raises(CfiError, match="not captured"):
        evaluate(expr, {7: 0x2000}, {0x1010: 42}.get)
    with pytest.raises(CfiError, match="register 7"):
        evaluate(expr, {}, {0x1010: 42}.get)


def test_a_hostile_expression_cannot_loop():
    loop = bytes([0x2F, 0xFD, 0xFF])   # skip -3: back to itself
    with pytest.raises(CfiError, match="too long"):
        evaluate(loop, {}, lambda a: None)
    assert MAX_EXPR_STEPS <= 10_000
