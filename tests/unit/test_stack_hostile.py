"""The unwinder on what a hostile workload controls: its own binary's CFI and symbol tables, and
the bytes of its stack. Whatever they hold, unwinding and naming end (within MAX_FRAMES) without
an exception, so the composer writes the trace's reason, never loses the core (README "Stack traces
and signatures"; the composer's own catch-all is the last resort: tests/composer)."""

from __future__ import annotations

import os
import shutil
import struct
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cdh.stack.addrspace import Memory, Module, Modules
from cdh.stack.elffile import ElfError, ElfImage
from cdh.stack.unwind import MAX_FRAMES, symbolize, unwind

STACK = 0x7FFD0000
PF_X = 1


def _binary() -> bytes:
    path = shutil.which("ls") or "/bin/ls"
    with open(os.path.realpath(path), "rb") as f:
        return f.read()


BINARY = _binary()
IMAGE = ElfImage.from_bytes(BINARY)
TEXT = next((v, m, o) for v, m, o, _, flags in IMAGE.loads if flags & PF_X)  # (vaddr, memsz, offset)
CFI_AT = IMAGE.offset_of(IMAGE.eh_frame_hdr[0]) if IMAGE.eh_frame_hdr else None
BASE = 0x555555554000
# Stack words a hostile stack is made of: anything, return addresses into the text, pointers into the stack.
WORDS = st.one_of(st.integers(0, (1 << 64) - 1), st.integers(BASE + TEXT[0], BASE + TEXT[0] + TEXT[1]),
                  st.integers(STACK, STACK + 4096))
STACKS = st.lists(WORDS, min_size=64, max_size=512).map(lambda ws: struct.pack(f"<{len(ws)}Q", *ws))


def _module(data: bytes) -> Module | None:
    try:
        image = ElfImage.from_bytes(data)
    except (ElfError, struct.error):
        return None
    start = BASE + TEXT[0]
    return Module("/usr/bin/ls", start, start + TEXT[1], TEXT[2], image, image.bias_for(start, TEXT[2]))


def _trace(data: bytes, stack: bytes, pc_offset: int, sp_offset: int):
    mod = _module(data)
    modules = Modules([mod] if mod else [])
    regs = {"rip": BASE + TEXT[0] + pc_offset % TEXT[1], "rsp": STACK + sp_offset, "rbp": STACK + 64}
    got = unwind("x86_64", regs, Memory({STACK: stack}), modules, deadline=time.monotonic() + 5)
    symbolize(got.frames, deadline=time.monotonic() + 5)
    assert 1 <= len(got.frames) <= MAX_FRAMES and isinstance(got.stopped, str)
    return got


@pytest.mark.skipif(CFI_AT is None, reason="this ls has no .eh_frame_hdr")
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(edits=st.lists(st.tuples(st.integers(0, 64 << 10), st.integers(0, 255)), max_size=64),
       stack=STACKS, pc=st.integers(0, 1 << 32), sp=st.integers(0, 64))
def test_a_damaged_eh_frame_and_any_stack_never_raise(edits, stack, pc, sp):
    data = bytearray(BINARY)
    for at, byte in edits:
        if CFI_AT + at < len(data):
            data[CFI_AT + at] = byte
    _trace(bytes(data), stack, pc, sp)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(edits=st.lists(st.tuples(st.integers(0, 4095), st.integers(0, 255)), min_size=1, max_size=32),
       stack=STACKS, pc=st.integers(0, 1 << 32))
def test_damaged_elf_headers_and_section_tables_never_raise(edits, stack, pc):
    data = bytearray(BINARY)
    shoff = struct.unpack_from("<Q", BINARY, 0x28)[0]
    for at, byte in edits:  # the ELF and program headers, and the section header table
        target = at if at < 2048 else shoff + at - 2048
        if target < len(data):
            data[target] = byte
    _trace(bytes(data), stack, pc, 0)


def test_a_stack_that_loops_through_itself_ends():
    # Frame pointers that point back at themselves, return addresses inside ls's text.
    ra = BASE + TEXT[0] + 0x10
    stack = b"".join(struct.pack("<QQ", STACK + 16 * (i % 4), ra) for i in range(256))
    got = _trace(BINARY, stack, 0x20, 0)
    assert len(got.frames) <= MAX_FRAMES


def test_a_path_the_workload_named_with_control_characters_is_printable():
    from cdh.stack.addrspace import modules_from
    from cdh.stack.codefiles import CodeFile

    fd = os.open(os.path.realpath(shutil.which("ls") or "/bin/ls"), os.O_RDONLY)
    try:
        start = BASE + TEXT[0]
        named = CodeFile(start, start + TEXT[1], TEXT[2], "/app/\x1b]0;pwned\x07ls\r", fd)
        (mod,) = modules_from([named], {}, None).modules
    finally:
        os.close(fd)
    assert mod.path == "/app/?]0;pwned?ls?" and mod.path.isprintable()
