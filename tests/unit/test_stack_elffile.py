"""One ELF file read through pread (cdh/stack/elffile.py): what it gives, and hostile bytes bounded.
Real binaries' CFI and symbols are checked against gdb by tests/kernel/test_stack_trace.py."""

from __future__ import annotations

import os
import sys

import pytest

from cdh.stack.elffile import MAX_TABLE_BYTES, ElfError, ElfImage, printable


def test_an_elf_file_gives_its_segments_cfi_and_build_id():
    fd = os.open(sys.executable, os.O_RDONLY)
    try:
        image = ElfImage.from_fd(fd)
        assert image.loads and image.eh_frame_hdr is not None
        assert image.build_id is None or len(image.build_id) >= 16
        assert image.symbol_table() is not None   # .symtab, or .dynsym when stripped
    finally:
        os.close(fd)


@pytest.mark.parametrize("data", [b"", b"\x7fELF", b"\x7fELF\x01\x01" + b"\0" * 58, os.urandom(200)])
def test_what_is_not_an_elf64_file_says_so(data):
    with pytest.raises(ElfError):
        ElfImage.from_bytes(data)


def test_a_hostile_file_cannot_make_it_read_without_bound():
    ehdr = bytearray(b"\x7fELF\x02\x01\x01".ljust(64, b"\0"))
    ehdr[54:58] = (56).to_bytes(2, "little") + (0xFFFF).to_bytes(2, "little")   # 65535 program headers
    ehdr[32:40] = (1 << 62).to_bytes(8, "little")                              # far away
    with pytest.raises(ElfError, match="implausible"):
        ElfImage.from_bytes(bytes(ehdr)).read(0, MAX_TABLE_BYTES + 1)


def test_names_from_the_workloads_binary_are_made_printable():
    assert printable(b"ok_name") == "ok_name"
    assert printable(b"evil\x1b[2J\nname\xff") == "evil?[2J?name\ufffd"
