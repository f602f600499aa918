"""The composer's stack trace step (cdh/composer/stacktrace.py) over a fake /proc: whatever the
trace lacks is said in dump-info's stack, never costs the core, and CDH_STACK_TRACE=false turns it
off. Real crashes and real signatures: tests/kernel/test_stack_trace.py."""

from __future__ import annotations

from cdh import ondisk
from tests.support import synthcore
from tests.support.composer import fake_proc, run_composer

RSP = 19


def elf_core() -> bytes:
    """A core of one thread whose stack is there but whose code is nowhere (no map_files here)."""
    regs = [0] * synthcore.NREGS["x86_64"]
    regs[RSP], regs[16] = 0x7FFD0000, 0x401234   # rsp, rip
    return synthcore.build("x86_64", [(4242, regs)],
                           [{"start": 0x400000, "end": 0x452000, "offset": 0, "path": "/usr/bin/crasher",
                             "page": b"\x7fELF".ljust(synthcore.PAGE, b"\0")},
                            {"start": 0x7FFD0000, "end": 0x7FFD1000, "offset": 0, "path": "[stack]",
                             "page": bytes(synthcore.PAGE)}],
                           siginfo=(11, 1, 0), entry=0x400000)


def test_a_trace_without_the_code_files_is_unsigned_and_says_why(tmp_path, host_dir):
    r = run_composer(host_dir, core=elf_core(), proc_root=fake_proc(tmp_path))
    assert r.rc == 0, r.stderr
    info = r.dump_info
    assert (info["signature"], info["top_frame"]) == (None, None)
    stack = info["stack"]
    assert tuple(stack) == ondisk.STACK_FIELDS
    [thread] = stack["threads"]
    assert thread["tid"] == 4242 and thread["crashed"] and thread["frames"][0]["pc"] == "0x401234"
    assert any("map_files/400000-452000 (/usr/bin/crasher)" in e for e in stack["errors"])
    assert not any("map_files" in e for e in info["metadata_errors"])   # the trace's, not the pod's
    done = r.log[-1]
    assert (done["event"], done["stack"], done["signature"]) == ("compose.done", "unsigned", None)
    assert [line["level"] for line in r.log] == ["info", "info"]


def test_what_is_not_a_core_costs_the_trace_not_the_zip(tmp_path, host_dir):
    core = b"not an ELF core" * 1000
    r = run_composer(host_dir, core=core, proc_root=fake_proc(tmp_path))
    assert r.rc == 0 and r.read(ondisk.CORE) == core
    stack = r.dump_info["stack"]
    assert stack["threads"] == [] and any("not an ELF64" in e for e in stack["errors"])
    assert r.log[-1]["stack"] == "failed"


def test_off_writes_no_stack(tmp_path, host_dir):
    r = run_composer(host_dir, core=elf_core(), proc_root=fake_proc(tmp_path),
                     env={"CDH_STACK_TRACE": "false"})
    assert r.rc == 0
    assert (r.dump_info["signature"], r.dump_info["top_frame"], r.dump_info["stack"]) == (None, None, None)
    assert r.log[-1]["stack"] == "off" and "stack_seconds" not in r.log[-1]
