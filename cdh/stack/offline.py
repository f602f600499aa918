"""The same trace from a core file on disk and the mapped files at their paths (tests).

The core goes through the very :class:`~cdh.stack.tap.StackTap` the composer uses, in the
composer's 1 MiB blocks, so the windows are the ones the composer would have kept. The mapped
files are opened by their NT_FILE paths under ``root`` (on the node that crashed,
``/proc/<pid>/root``; for a core copied elsewhere, an unpacked image), which is right only
when they are the same files: the build ids in the result say whether they were.
"""

from __future__ import annotations

import os

from cdh.elfcore import read_core
from cdh.stack.codefiles import CodeFile, close_code_files
from cdh.stack.tap import StackTap
from cdh.stack.trace import BUDGET_S, Trace, stack_trace

BLOCK = 1 << 20


def tap_file(path: str, tap: StackTap | None = None, block: int = BLOCK) -> StackTap:
    tap = tap or StackTap()
    buf = bytearray(block)
    with open(path, "rb", buffering=0) as f, memoryview(buf) as view:
        while n := f.readinto(buf):
            tap.feed(view[:n])
    return tap


def code_files_from_core(head: bytes, root: str = "/") -> list[CodeFile]:
    core = read_core(lambda offset, size: bytes(head[offset:offset + size]))
    files = []
    for m in core.mappings:
        if "x" not in core.perms_at(m.start):
            continue
        try:
            fd = os.open(os.path.join(root, m.path.lstrip("/")), os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            continue
        files.append(CodeFile(m.start, m.end, m.file_offset, m.path, fd))
    return files


def trace_core_file(path: str, root: str = "/", budget_s: float = BUDGET_S) -> Trace:
    tap = tap_file(path)
    files = code_files_from_core(bytes(tap.head), root)
    try:
        return stack_trace(bytes(tap.head), tap.windows, files, budget_s=budget_s,
                           errors=[tap.error] if tap.error else [])
    finally:
        close_code_files(files)
