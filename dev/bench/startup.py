"""Composer start-up through the installed runtime, against `python3 -S -c pass`, and its size.

The composer is installed as the agent installs it: the zipapp and the runtime are built
(packaging/zipapp.py, packaging/pyruntime.py; or an existing runtime given with ``--runtime``), then
``cdh install`` writes HOST_DIR/cdc with the sysctls going to a fake /proc/sys. The capture
figures (dev/bench/capture.py) run that same HOST_DIR/cdc. Measured here:

- exec → first read of stdin by HOST_DIR/cdc: the core arrives on a pipe filled to capacity before
  the exec; the composer's first read frees room, which poll() on the write end reports. This is
  the time the kernel holds the dying process before any byte of the core moves.
- the same interpreter's `python3 -S -c pass` (exec → exit), and the runtime's own `-c pass`.
- the composer path's imports (`-X importtime`), and the installed runtime's size.
"""

from __future__ import annotations

import fcntl
import os
import select
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cdh.agent import host
from cdh.config import load
from cdh.sysctl import Sysctl
from dev.bench.report import Figure
from tests.support.packaging import agent_only

REPO = Path(__file__).resolve().parents[2]


class Installed:
    """HOST_DIR/cdc on its own runtime, as `cdh install` leaves it; ``remove()`` when done."""

    def __init__(self, work: Path, runtime_dir: str | None = None) -> None:
        self.work = work
        if runtime_dir is None:
            runtime_dir = _build(work)
        self.runtime_dir = runtime_dir
        self.proc_sys = work / "proc-sys"
        for name, value in (("kernel/core_pattern", "core"), ("kernel/core_pipe_limit", "0"),
                            ("fs/suid_dumpable", "0")):
            (self.proc_sys / name).parent.mkdir(parents=True, exist_ok=True)
            (self.proc_sys / name).write_text(value + "\n")
        # A short HOST_DIR: it is in cdc's shebang, which the kernel cuts at 127 bytes before Linux 5.1.
        host_dir = tempfile.mkdtemp(prefix="cdh-bench-", dir="/tmp")
        # Many runs of one "crash": the composer's per-container rate limit would skip all but 5.
        self.settings = load([{"CDH_HOST_DIR": host_dir, "CDH_RUNTIME_DIR": runtime_dir,
                               "CDH_RATE_LIMIT": "off"}])
        host.install(self.settings, Sysctl(str(self.proc_sys)))
        self.cdc = Path(host_dir) / "cdc"
        with open(self.cdc, "rb") as f:
            self.runtime = f.readline().decode().split()[0][2:].rsplit("/lib/", 1)[0]

    def remove(self) -> None:
        host.uninstall(self.settings, Sysctl(str(self.proc_sys)))
        shutil.rmtree(self.settings.host_dir, ignore_errors=True)


def _build(work: Path) -> str:
    """The zipapp and the image's runtime (packaging/), built from this checkout; the runtime's dir."""
    pyz = str(work / "cdh.pyz")
    subprocess.run([sys.executable, str(REPO / "packaging" / "zipapp.py"), "-o", pyz],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    rt = str(work / "image-runtime")
    subprocess.run([sys.executable, str(REPO / "packaging" / "pyruntime.py"), "--pyz", pyz, "--out", rt],
                   check=True, stdout=subprocess.DEVNULL)
    return rt


def composer_args(cdc: Path) -> list[str]:
    return [str(cdc), "-c=unlimited", "-e=bench", "-p=4242", f"-P={os.getpid()}", "-s=11",
            f"-t={int(time.time())}", "-h=bench", "-E=!bench"]


def first_read_s(argv: list[str]) -> tuple[float, str]:
    """Seconds from exec to the composer's first read of stdin (or to its exit, if it never reads)."""
    r, w = os.pipe()
    fcntl.fcntl(w, fcntl.F_SETFL, os.O_NONBLOCK)
    try:
        while True:
            os.write(w, b"\0" * 65536)
    except BlockingIOError:
        pass  # full: the first read makes room
    poller = select.poll()
    poller.register(w, select.POLLOUT)
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, stdin=r, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={}, cwd="/")
    os.close(r)
    while True:
        events = poller.poll(1)
        if events and events[0][1] & select.POLLERR:  # the read end closed: it never read
            elapsed = time.perf_counter() - t0
            how = f"exit {proc.wait()} without reading stdin"
            break
        if events:
            elapsed = time.perf_counter() - t0
            how = "first read"
            break
    os.close(w)  # EOF: let the composer finish its zip
    proc.wait(timeout=120)
    return elapsed, how


def exit_s(argv: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(argv, env={}, cwd="/", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - t0


def sample(fn, runs: int) -> dict:
    for _ in range(3):
        fn()  # warm the page cache
    times = sorted(fn() for _ in range(runs))
    return {"median_ms": statistics.median(times) * 1e3, "p90_ms": times[int(len(times) * 0.9) - 1] * 1e3}


def imports(rt: str, argv: list[str]) -> list[tuple[str, int]]:
    """(module, cumulative µs) of every import on the composer path, slowest first."""
    done = subprocess.run([f"{rt}/lib/ld.so", f"{rt}/bin/python3", "-X", "importtime", *argv],
                          input=b"core", env={}, cwd="/", capture_output=True)
    rows = []
    for line in done.stderr.decode(errors="replace").splitlines():
        if line.startswith("import time:") and "|" in line and "cumulative" not in line:
            _self, cumulative, name = line[len("import time:"):].split("|")
            rows.append((name.strip(), int(cumulative)))
    return sorted(rows, key=lambda r: -r[1])


def tree_bytes(top: str) -> int:
    return sum(os.path.getsize(os.path.join(r, n)) for r, _d, fs in os.walk(top) for n in fs)


def measure(inst: Installed, runs: int) -> dict:
    argv = composer_args(inst.cdc)
    rt = inst.runtime
    python = os.path.realpath(sys.executable)
    reads: list[tuple[float, str]] = []
    # The runs write zips of 1 MiB of zeros into HOST_DIR/cores; removed with HOST_DIR.
    return {
        "composer_first_read": sample(lambda: reads.append(first_read_s(argv)) or reads[-1][0], runs),
        "python3_S_pass": sample(lambda: exit_s([python, "-S", "-c", "pass"]), runs),
        "runtime_pass": sample(lambda: exit_s([f"{rt}/lib/ld.so", f"{rt}/bin/python3", "-c", "pass"]), runs),
        "composer_measured_at": reads[-1][1],
        "imports": imports(rt, argv),
        "host_runtime_bytes": tree_bytes(rt),
        "cdc_bytes": os.path.getsize(argv[0]),
        "image_runtime_bytes": tree_bytes(inst.runtime_dir),
    }


def figures(r: dict) -> list[Figure]:
    comp, base = r["composer_first_read"], r["python3_S_pass"]
    return [
        Figure(f"start-up: exec→{r['composer_measured_at']}", "ms", comp["median_ms"],
               "python3 -S -c pass", base["median_ms"]),
        Figure("start-up: runtime -c pass", "ms", r["runtime_pass"]["median_ms"], "python3 -S -c pass",
               base["median_ms"]),
    ]


def notes(r: dict) -> list[str]:
    agent = agent_only(n for n, _ in r["imports"])
    mib = 1 << 20
    return [f"composer path imports {len(r['imports'])} modules; agent stack: {agent or 'none'}; slowest: "
            + ", ".join(f"{name} {us / 1000:.1f} ms" for name, us in r["imports"][:5]),
            f"installed runtime {r['host_runtime_bytes'] / mib:.1f} MiB + cdc {r['cdc_bytes'] / mib:.1f} MiB;"
            f" image runtime {r['image_runtime_bytes'] / mib:.1f} MiB"]
