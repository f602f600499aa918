"""Real crashes for tests: compile a small C program, let it die, collect the kernel's core.

The caller must hold the ``kernel`` fixture (tests/conftest.py): it owns
kernel.core_pattern for the duration and restores it. Cores go to a plain file
pattern (no pipe), so these crashes need no composer.
"""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import time
from pathlib import Path

CRASHERS = Path(__file__).parent / "crashers"
CORE_FILTER = "0x33"  # the kernel default: anon private+shared, ELF headers, private hugepages
CORE_DEADLINE_S = 30


def compile_program(name: str, out_dir: Path) -> Path:
    """``crashers/<name>.c`` built with gcc -g (and -pthread) into ``out_dir``."""
    binary = out_dir / name
    subprocess.run(["gcc", "-O0", "-g", "-pthread", "-o", str(binary), str(CRASHERS / f"{name}.c")],
                   check=True, capture_output=True, text=True)
    return binary


def allow_core() -> None:
    """preexec_fn for a crasher: an unlimited RLIMIT_CORE and the default coredump_filter."""
    resource.setrlimit(resource.RLIMIT_CORE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    with open("/proc/self/coredump_filter", "w") as f:
        f.write(CORE_FILTER)


def crash(binary: Path, core_dir: Path, expect_signal: int = signal.SIGSEGV,
          args: tuple[str, ...] = ()) -> tuple[Path, int, str]:
    """Run ``binary`` with ``args`` until it dies of ``expect_signal``; return (core, pid, stdout)."""
    core_dir.mkdir(parents=True, exist_ok=True)
    pattern = f"{core_dir}/core.%p"
    assert len(pattern) < 128, "core_pattern is truncated by the kernel past 127 bytes"
    Path("/proc/sys/kernel/core_pattern").write_text(pattern)
    proc = subprocess.Popen([str(binary), *args], stdout=subprocess.PIPE, preexec_fn=allow_core)
    out, _ = proc.communicate(timeout=CORE_DEADLINE_S)
    assert proc.returncode == -expect_signal, f"{binary.name} exited with {proc.returncode}"
    core = core_dir / f"core.{proc.pid}"
    deadline = time.monotonic() + CORE_DEADLINE_S
    while not (core.exists() and core.stat().st_size > 0):  # written before the parent's wait returns
        assert time.monotonic() < deadline, f"no core at {core}"
        time.sleep(0.05)
    os.chmod(core, 0o600)
    return core, proc.pid, out.decode()
