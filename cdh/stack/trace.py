"""The stack trace of a crash and its signature, from what the composer kept while it held the process.

Inputs (cdh/stack/tap.py, cdh/stack/codefiles.py): the core's head (ELF header, program headers,
notes), the stack windows and the vdso copied as the core streamed by, and open fds of the files
the process had mapped executable. Output: a :class:`Trace`, whose ``stack`` is dump-info's
``stack`` object (its field names are cdh/ondisk.py's ``STACK_FIELDS`` and ``FRAME_FIELDS``).

Runs within ``budget_s``: the crashing thread first, the others only while time is left, frames
past it left out; naming the functions may take as long again. Whatever is done is returned.
Never raises for bad input: what went wrong is in ``errors``.
"""

from __future__ import annotations

import time

from cdh.elfcore import AT_SYSINFO_EHDR, CoreError, read_core
from cdh.stack.addrspace import Memory, modules_from
from cdh.stack.signature import SIGNATURE_VERSION, normal_form, signature, top_frame
from cdh.stack.unwind import Frame, symbolize, unwind

TRACE_VERSION = "1"       # the shape of dump-info's stack object
MAX_THREADS = 32          # threads unwound (the crashing one first)
MAX_OTHER_FRAMES = 24     # frames kept per other thread (the crashing thread keeps unwind.MAX_FRAMES)
BUDGET_S = 2.0


class Trace:
    """``stack``: dump-info's stack object; ``signature`` and ``top_frame``: None when unsigned."""

    __slots__ = ("signature", "stack", "top_frame")

    def __init__(self, stack: dict, signature: str | None = None, top_frame: str | None = None) -> None:
        self.stack, self.signature, self.top_frame = stack, signature, top_frame

    @property
    def result(self) -> str:
        """``signed``; ``unsigned`` (threads unwound, nothing to sign); ``failed`` (nothing unwound)."""
        if self.signature:
            return "signed"
        return "unsigned" if self.stack["threads"] else "failed"


def stack_trace(head: bytes, windows: dict[int, bytes], code_files: list, budget_s: float = BUDGET_S,
                errors: list[str] | None = None) -> Trace:
    started = time.monotonic()
    stack: dict = {"version": TRACE_VERSION, "signature_version": SIGNATURE_VERSION, "signature_frames": [],
                   "threads": [], "modules": {}, "errors": list(errors or []), "seconds": 0.0}
    trace = Trace(stack)
    try:
        core = read_core(lambda offset, size: bytes(head[offset:offset + size]))
    except CoreError as err:
        stack["errors"].append(f"core: {err}")
        return _timed(trace, started)
    if not core.threads:
        stack["errors"].append("core: no thread's registers (no NT_PRSTATUS note)")
        return _timed(trace, started)
    memory = Memory(windows)
    modules = modules_from(code_files, windows, core.auxv.get(AT_SYSINFO_EHDR))
    deadline = started + budget_s
    unwound = []
    for i, thread in enumerate(core.threads[:MAX_THREADS]):
        if i and time.monotonic() > deadline:
            stack["errors"].append(f"time budget ({budget_s:g}s) spent: {len(core.threads) - i} threads "
                                   "not unwound")
            break
        unwound.append((thread.tid, unwind(core.machine, thread.registers, memory, modules,
                                           deadline=deadline)))
    if len(core.threads) > MAX_THREADS:
        stack["errors"].append(f"{len(core.threads)} threads: only the first {MAX_THREADS} unwound")
    # One pass over each module's symbol table for the frames of every thread (libjvm: 58k symbols).
    symbolize([f for _, u in unwound for f in u.frames], deadline=deadline + budget_s)
    for i, (tid, u) in enumerate(unwound):
        frames = u.frames if i == 0 else u.frames[:MAX_OTHER_FRAMES]
        for f in frames:
            if f.module is not None:
                stack["modules"].setdefault(f.module.path, f.module.build_id)
        stack["threads"].append({"tid": tid, "crashed": i == 0, "stopped": u.stopped,
                                 "frames": [frame_json(f) for f in frames]})
    if unwound:
        crashed = [dict(frame_json(f), build_id=f.module.build_id if f.module else None)
                   for f in unwound[0][1].frames]
        tokens = normal_form(crashed, self_sent=self_sent(core))
        stack["signature_frames"] = tokens
        trace.signature, trace.top_frame = signature(tokens), top_frame(tokens)
    return _timed(trace, started)


def _timed(trace: Trace, started: float) -> Trace:
    trace.stack["seconds"] = round(time.monotonic() - started, 4)
    return trace


def frame_json(f: Frame) -> dict:
    """A frame as dump-info holds it (cdh/ondisk.py FRAME_FIELDS); the build id is in ``modules``."""
    d: dict = {"pc": f"{f.pc:#x}", "how": f.how}
    if f.module is not None:
        d["module"] = f.module.path
        if f.offset is not None:
            d["offset"] = f"{f.offset:#x}"
    if f.function:
        d["function"] = f.function
        d["function_offset"] = f.function_offset
    if f.signal_frame:
        d["signal_frame"] = True
    return d


def self_sent(core) -> bool:
    """The fatal signal was sent by the process itself (abort, raise, a handler re-raising)."""
    si = core.siginfo
    pid = core.psinfo.get("pid")
    return si is not None and si.code <= 0 and si.sender_pid is not None and si.sender_pid == pid
