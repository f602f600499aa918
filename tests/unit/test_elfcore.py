"""The core parser on hand-built cores: aarch64 layout, PN_XNUM, build ids, damaged input."""

from __future__ import annotations

import pytest

from cdh.elfcore import CoreError, read_core
from cdh.tools.buildid import mapped_elves
from tests.support import synthcore

PAGE = synthcore.PAGE
EXE_ID, LIB_ID = bytes(range(20)), bytes.fromhex("deadbeef" * 5)
EXE, LIBC, DATA = 0x400000, 0x7F0000000000, 0x7F1000000000


def _aarch64_core(xnum=False) -> bytes:
    regs = [*range(0x1000, 0x1000 + 31), 0xFFFFF000, EXE + 0x1234, 0x60000000]  # x0..x30, sp, pc, pstate
    mappings = [
        {"start": EXE, "end": EXE + PAGE, "offset": 0, "path": "/app/server",
         "page": synthcore.elf_file_page(EXE_ID)},
        {"start": EXE + PAGE, "end": EXE + 3 * PAGE, "offset": PAGE, "path": "/app/server"},
        {"start": LIBC, "end": LIBC + PAGE, "offset": 0, "path": "/lib/aarch64-linux-gnu/libc.so.6",
         "page": synthcore.elf_file_page(LIB_ID)},
        {"start": DATA, "end": DATA + PAGE, "offset": 0, "path": "/data/table.bin"},   # not dumped
    ]
    return synthcore.build("aarch64", [(101, regs), (102, [0] * 34)], mappings,
                           siginfo=(7, 1, 0xBAD0), entry=EXE + 0x100, xnum=xnum)


def _reader(data: bytes):
    return lambda offset, size: data[offset:offset + size]


@pytest.mark.parametrize("xnum", [False, True])
def test_aarch64_core(xnum):
    data = _aarch64_core(xnum)
    core = read_core(_reader(data))
    assert core.machine == "aarch64"
    assert [t.tid for t in core.threads] == [101, 102]
    regs = core.threads[0].registers
    assert regs["x0"] == 0x1000 and regs["x30"] == 0x1000 + 30
    assert (regs["sp"], regs["pc"], regs["pstate"]) == (0xFFFFF000, EXE + 0x1234, 0x60000000)
    assert (core.siginfo.signo, core.siginfo.code, core.siginfo.addr) == (7, 1, 0xBAD0)
    assert [m.path for m in core.mappings][-1] == "/data/table.bin"
    assert core.main_executable == "/app/server"
    elves = mapped_elves(core, _reader(data))
    assert [(e.path, e.build_id, e.main) for e in elves] == [
        ("/app/server", EXE_ID.hex(), True), ("/lib/aarch64-linux-gnu/libc.so.6", LIB_ID.hex(), False)]


def test_not_a_core_says_why():
    with pytest.raises(CoreError, match="not an ELF file"):
        read_core(_reader(b"PK\x03\x04" + b"\0" * 100))
    data = bytearray(_aarch64_core())
    data[16] = 2  # ET_EXEC
    with pytest.raises(CoreError, match="not a core"):
        read_core(_reader(bytes(data)))
    data = bytearray(_aarch64_core())
    data[18] = 40  # EM_ARM
    with pytest.raises(CoreError, match="unsupported machine 40"):
        read_core(_reader(bytes(data)))


def test_a_core_cut_short_in_its_notes_is_reported():
    data = _aarch64_core()
    with pytest.raises(CoreError, match="cut short"):
        read_core(_reader(data[:400]))


def test_a_core_cut_after_its_notes_still_gives_threads_but_fewer_build_ids():
    data = _aarch64_core()
    core = read_core(_reader(data[: len(data) - PAGE]))  # libc's page is gone
    assert core.threads[0].tid == 101
    elves = mapped_elves(core, _reader(data[: len(data) - PAGE]))
    assert [e.path for e in elves] == ["/app/server"]
