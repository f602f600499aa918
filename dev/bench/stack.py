"""The stack trace's cost per crash: the composer with CDH_STACK_TRACE on against itself with it off.

Two composers are installed side by side on the same runtime (``cdh install`` into two HOST_DIRs,
sysctls to a fake /proc/sys), one with ``CDH_STACK_TRACE=false``; under the machine-wide kernel
lock, kernel.core_pattern points at one, then the other, crash after crash, on two inputs: a
small crash (tests/support/crashers/stack.c, ``segv``) and the heap crasher of ``--size-mib``
(the capture benchmark's core). Per crash, from outside and from the composer's own
``compose.done``:

- hold: from the crasher's last byte on stdout (written just before it faults) to its reaping;
  the kernel holds the dying process until the composer closes stdin (cdh/composer/run.py);
- the composer's CPU (``cpu_s``: every thread, user + system), peak RSS (``max_rss_kib``), and
  the trace's own wall time after release (``stack_seconds``).

And in this process, on the big core file from the page cache: the CPU the tap adds to reading it
in the composer's 1 MiB blocks (what the trace costs while the process is held).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from statistics import median

from cdh.agent import host
from cdh.config import load
from cdh.sysctl import Sysctl, core_pattern
from dev.bench.inputs import InputError
from dev.bench.report import Figure
from tests.support.crashes import allow_core, compile_program
from tests.support.kernel import exclusive, unavailable

MODES = {"on": "true", "off": "false"}
BLOCK = 1 << 20
DEADLINE_S = 600


class StackBench:
    def __init__(self, work: Path, cache: Path, runtime_dir: str, big_core: Path, mib: int) -> None:
        self.work = work
        self.mib = mib
        self.big_core = big_core
        self.small = compile_program("stack", cache)
        self.heap = compile_program("heap", cache)
        self.proc_sys = work / "stack-proc-sys"
        for name, value in (("kernel/core_pattern", "core"), ("kernel/core_pipe_limit", "0"),
                            ("fs/suid_dumpable", "0")):
            (self.proc_sys / name).parent.mkdir(parents=True, exist_ok=True)
            (self.proc_sys / name).write_text(value + "\n")
        self.seen: set[str] = set()   # zips whose compose.done was read
        self.installed = {}
        for mode, value in MODES.items():
            host_dir = tempfile.mkdtemp(prefix=f"cdh-st{mode}-", dir="/tmp")   # short: core_pattern
            settings = load([{"CDH_HOST_DIR": host_dir, "CDH_RUNTIME_DIR": runtime_dir,
                              "CDH_RATE_LIMIT": "off", "CDH_IGNORE_CRI": "true", "CDH_STACK_TRACE": value}])
            host.install(settings, Sysctl(str(self.proc_sys)))
            self.installed[mode] = settings

    def remove(self) -> None:
        for settings in self.installed.values():
            host.uninstall(settings, Sysctl(str(self.proc_sys)))
            shutil.rmtree(settings.host_dir, ignore_errors=True)

    def run(self, rounds: int) -> dict:
        why = unavailable()
        if why:
            raise InputError(f"the stack bench crashes real processes into the composer ({why})")
        samples: dict[str, list[dict]] = {f"{size}-{mode}": [] for size in ("small", "big") for mode in MODES}
        with exclusive():
            Path("/proc/sys/kernel/core_pipe_limit").write_text("16")
            for r in range(rounds):
                order = list(MODES) if r % 2 == 0 else list(reversed(MODES))
                for size in ("small", "big"):
                    for mode in order:
                        samples[f"{size}-{mode}"].append(self._crash(size, mode))
        return {"samples": samples, "tap_cpu_s": self.tap_cpu_s()}

    def _crash(self, size: str, mode: str) -> dict:
        settings = self.installed[mode]
        Path("/proc/sys/kernel/core_pattern").write_text(core_pattern(settings.host_dir))
        argv = [str(self.small), "segv"] if size == "small" else [str(self.heap), str(self.mib), "1"]
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, preexec_fn=allow_core)
        if size == "small":
            os.read(proc.stdout.fileno(), 1)   # stack.c's one byte before the fault
        else:
            proc.stdout.readline()             # heap.c's line: its heap is full
        t0 = time.monotonic()
        proc.wait(DEADLINE_S)
        hold = time.monotonic() - t0
        done = self._compose_done(Path(settings.host_dir))
        kept = ("cpu_s", "max_rss_kib", "stack_seconds", "seconds", "stack", "core_size", "signature")
        return {"hold_s": hold, **{k: done.get(k) for k in kept}}

    def _compose_done(self, host_dir: Path) -> dict:
        """The crash's compose.done (its zip then removed, so CORE_DIR never fills)."""
        log = host_dir / "composer.log"
        deadline = time.monotonic() + DEADLINE_S
        while True:
            lines = log.read_text().splitlines() if log.exists() else []
            done = [json.loads(x) for x in lines if '"compose.done"' in x]
            if done and done[-1]["zip"] not in self.seen:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"no compose.done in {log}")
            time.sleep(0.02)
        self.seen.add(done[-1]["zip"])
        for z in (host_dir / "cores").glob("*.zip"):
            z.unlink()
        return done[-1]

    def tap_cpu_s(self, runs: int = 5) -> list[float]:
        """The tap's own CPU over the big core read in 1 MiB blocks (its feed calls only, summed)."""
        from cdh.stack.tap import StackTap

        def one() -> float:
            tap, spent, buf = StackTap(), 0.0, bytearray(BLOCK)
            with open(self.big_core, "rb", buffering=0) as f, memoryview(buf) as view:
                while n := f.readinto(buf):
                    t0 = time.thread_time()
                    tap.feed(view[:n])
                    spent += time.thread_time() - t0
            assert tap.error is None and tap.windows, "the tap kept nothing of the benchmark core"
            return spent

        return [one() for _ in range(runs)]


def figures(result: dict, mib: int) -> tuple[list[Figure], list[str]]:
    s = result["samples"]

    def m(key: str, attr: str) -> float:
        return median(x[attr] for x in s[key] if x.get(attr) is not None)

    figs = []
    for size, label in (("small", "small crash"), ("big", f"{mib} MiB heap")):
        on, off = f"{size}-on", f"{size}-off"
        figs += [Figure(f"stack trace: hold, {label}", "s", m(on, "hold_s"), "trace off", m(off, "hold_s")),
                 Figure(f"stack trace: composer CPU, {label}", "s", m(on, "cpu_s"), "trace off",
                        m(off, "cpu_s")),
                 Figure(f"stack trace: composer peak RSS, {label}", "MiB", m(on, "max_rss_kib") / 1024,
                        "trace off", m(off, "max_rss_kib") / 1024)]
    tap = median(result["tap_cpu_s"])
    small_ms, big_ms = (m(f"{size}-on", "stack_seconds") * 1000 for size in ("small", "big"))
    results = sorted({x["stack"] for k in ("small-on", "big-on") for x in s[k]})
    notes = [f"trace after release (compose.done stack_seconds): small {small_ms:.1f} ms, "
             f"big {big_ms:.1f} ms; results {results}",
             f"the tap's own CPU over the {mib} MiB core in 1 MiB blocks: {tap * 1000:.1f} ms"]
    return figs, notes
