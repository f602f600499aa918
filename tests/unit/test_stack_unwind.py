"""One thread's unwinding (cdh/stack/unwind.py) where no file maps the code: what it still does,
and that the time budget bounds it. Real binaries: tests/kernel/test_stack_trace.py."""

from __future__ import annotations

import struct
import time

from cdh import ondisk
from cdh.stack.addrspace import Memory, Modules
from cdh.stack.trace import stack_trace
from cdh.stack.unwind import unwind

STACK = 0x7FFD0000


def test_a_call_through_a_bad_pointer_returns_to_the_address_at_the_stack_pointer():
    memory = Memory({STACK: struct.pack("<QQ", 0x401234, 0)})
    got = unwind("x86_64", {"rip": 0xDEAD, "rsp": STACK}, memory, Modules([]))
    assert [(f.pc, f.how) for f in got.frames] == [(0xDEAD, "first"), (0x401234, "ra-at-sp")]
    assert "no module" in got.stopped


def test_the_budget_stops_it_after_the_first_frame():
    memory = Memory({STACK: struct.pack("<QQ", 0x401234, 0)})
    got = unwind("x86_64", {"rip": 0xDEAD, "rsp": STACK}, memory, Modules([]), deadline=time.monotonic() - 1)
    assert len(got.frames) == 1 and "CDH_STACK_BUDGET" in got.stopped


def test_a_trace_of_nothing_has_the_contracts_shape():
    trace = stack_trace(b"", {}, [])
    assert tuple(trace.stack) == ondisk.STACK_FIELDS
    assert (trace.signature, trace.top_frame, trace.result) == (None, None, "failed")
    assert trace.stack["errors"] and trace.stack["threads"] == []
