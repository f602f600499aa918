"""What gdb says about a core: the reference `cdh inspect` is checked against."""

from __future__ import annotations

import re
import subprocess
import tempfile
from pathlib import Path

GDB_TIMEOUT_S = 120
_REG = re.compile(r"^([a-z][a-z0-9_]*)\s+(0x[0-9a-f]+)\s")
_LIB = re.compile(r"^(0x[0-9a-f]+)\s+(0x[0-9a-f]+)\s+(?:Yes|No)(?:\s+\(\*\))?\s+(/.+)$")
_CURRENT = re.compile(r"\[Current thread is \d+ \(.*LWP (\d+)\)\)\]")
_THREAD = re.compile(r"^\*?\s+\d+\s+Thread 0x[0-9a-f]+ \(LWP (\d+)\)", re.M)


def gdb_batch(*args: str, cwd: Path | None = None) -> str:
    """Run gdb in batch mode without user init files or network lookups; return stdout."""
    cmd = ["gdb", "-nx", "-batch", "-iex", "set debuginfod enabled off", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=GDB_TIMEOUT_S, cwd=cwd).stdout


def core_facts(binary: Path, core: Path) -> dict:
    """Registers of the current (crashing) thread, shared libraries, thread ids."""
    out = gdb_batch("-ex", "info registers", "-ex", "info sharedlibrary", "-ex", "info threads",
                    str(binary), str(core))
    regs = {m.group(1): int(m.group(2), 16) for line in out.splitlines() if (m := _REG.match(line))}
    libs = [(int(m.group(1), 16), int(m.group(2), 16), m.group(3).strip())
            for line in out.splitlines() if (m := _LIB.match(line))]
    current = _CURRENT.search(out)
    return {"registers": regs, "libraries": libs, "output": out,
            "current_lwp": int(current.group(1)) if current else None,
            "lwps": sorted(int(x) for x in _THREAD.findall(out))}


def readelf_build_id(path: str | Path) -> str | None:
    out = subprocess.run(["readelf", "-n", str(path)], capture_output=True, text=True, check=True).stdout
    m = re.search(r"Build ID: ([0-9a-f]+)", out)
    return m.group(1) if m else None


# gdb's physical frames of the current thread: no inline or tail-call frames (gdb infers those from
# debug info; an unwinder of machine state cannot see them).
_FRAMES_SCRIPT = """
import gdb
gdb.execute("set backtrace past-main on")
gdb.execute("set backtrace limit %d")
f = gdb.newest_frame()
while f is not None:
    if f.type() not in (gdb.INLINE_FRAME, gdb.TAILCALL_FRAME):
        print("FRAME %%#x %%s" %% (f.pc(), f.name()))
    try:
        f = f.older()
    except gdb.error:
        break
"""


def physical_frames(binary: Path, core: Path, limit: int = 64) -> list[tuple[int, str | None]]:
    """[(pc, function name or None)] of the crashing thread, innermost first, as gdb unwinds it."""
    with tempfile.NamedTemporaryFile("w", suffix=".py") as script:
        script.write(_FRAMES_SCRIPT % limit)
        script.flush()
        out = gdb_batch("-x", script.name, str(binary), str(core))
    frames = []
    for line in out.splitlines():
        if line.startswith("FRAME "):
            _, pc, name = line.split(" ", 2)
            frames.append((int(pc, 16), None if name == "None" else name))
    return frames
