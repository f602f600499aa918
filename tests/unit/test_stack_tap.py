"""What the composer keeps of a streaming core (cdh/stack/tap.py), on hand-built cores: the head,
one window per thread's stack whatever the block size, and never an exception."""

from __future__ import annotations

import os

import pytest

from cdh.stack.tap import StackTap
from tests.support import synthcore

PAGE = synthcore.PAGE
STACK, OTHER_STACK = 0x7FFD0000, 0x7FFE0000
RSP = 19  # x86_64 elf_gregset_t index of rsp


def regs(sp: int) -> list[int]:
    r = [0] * synthcore.NREGS["x86_64"]
    r[RSP] = sp
    return r


def core(xnum: bool = False, dumped: bool = True) -> tuple[bytes, bytes, bytes]:
    """A core of two threads; ``dumped=False``: the first stack's bytes left out (coredump_filter 0)."""
    stack, other = os.urandom(4 * PAGE), os.urandom(2 * PAGE)
    data = synthcore.build("x86_64", [(100, regs(STACK + 0x180)), (101, regs(OTHER_STACK + 0x10))],
                           [{"start": 0x400000, "end": 0x401000, "offset": 0, "path": "/bin/x",
                             "page": b"\x7fELF".ljust(PAGE, b"\0")},
                            {"start": STACK, "end": STACK + 4 * PAGE, "offset": 0, "path": "[stack]",
                             "page": stack if dumped else b""},
                            {"start": OTHER_STACK, "end": OTHER_STACK + 2 * PAGE, "offset": 0,
                             "path": "[stack2]", "page": other}],
                           siginfo=(11, 1, 0), entry=0x400000, xnum=xnum)
    return data, stack, other


def fed(data: bytes, block: int) -> StackTap:
    tap = StackTap()
    for at in range(0, len(data), block):
        tap.feed(memoryview(data)[at:at + block])
    return tap


@pytest.mark.parametrize("block", [1, 7, 64, 4093, 1 << 20])
def test_the_same_windows_whatever_the_block_size(block):
    data, stack, other = core()
    tap = fed(data, block)
    assert tap.error is None
    assert tap.windows == {STACK + 0x180: stack[0x180:], OTHER_STACK + 0x10: other[0x10:]}
    assert bytes(tap.head) == data[:len(tap.head)] and len(tap.head) < len(data) - 4 * PAGE


def test_windows_are_bounded():
    data, stack, other = core()
    tap = StackTap(window_crashing=256, window_other=32)
    tap.feed(memoryview(data))
    assert tap.windows == {STACK + 0x180: stack[0x180:0x280], OTHER_STACK + 0x10: other[0x10:0x30]}


def test_a_core_with_65535_segments_or_more_is_read_from_its_head():
    data, stack, _ = core(xnum=True)
    tap = fed(data, 4096)
    assert tap.error is None and tap.windows[STACK + 0x180] == stack[0x180:]


@pytest.mark.parametrize("data", [b"", b"not a core at all" * 100, b"\x7fELF" + b"\xff" * 4000])
def test_garbage_is_an_error_never_an_exception(data):
    tap = fed(data, 100)
    assert tap.windows == {}
    assert data == b"" or tap.error


def test_a_stack_left_out_of_the_core_is_read_from_memory(tmp_path):
    no_stack, stack, _ = core(dumped=False)
    mem = tmp_path / "mem"   # /proc/<pid>/mem stand-in: a sparse file addressed by virtual address
    with open(mem, "wb") as f:
        f.seek(STACK)
        f.write(stack)
    tap = fed(no_stack, 4096)
    assert STACK + 0x180 not in tap.windows
    fd = os.open(mem, os.O_RDONLY)
    try:
        tap.fill_from_memory(fd)
    finally:
        os.close(fd)
    assert tap.windows[STACK + 0x180] == stack[0x180:] and tap.from_memory >= len(stack) - 0x180
