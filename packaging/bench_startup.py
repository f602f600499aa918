"""Composer start-up through the installed runtime, against `python3 -S -c pass`, and its size.

    python packaging/bench_startup.py [--runs 30] [--pyz dist/cdh.pyz --runtime DIR] [--json FILE]

Builds the zipapp and the runtime (unless given), installs them into a temporary HOST_DIR (sysctls
go to a fake /proc/sys), then measures on this machine:

- exec → first read of stdin by HOST_DIR/cdc: the core arrives on a pipe filled to capacity before
  the exec; the composer's first read frees room, which poll() on the write end reports. This is
  the time the kernel holds the dying process before any byte of the core moves.
- the same interpreter's `python3 -S -c pass` (exec → exit), and the runtime's own `-c pass`.
- the composer path's imports (`-X importtime`), and the installed runtime's size.

Self-contained (stdlib + the repo) so the benchmark suite (`nox -s bench`) can fold it in.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import select
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from cdh.agent import host  # noqa: E402  (the repo's cdh, not an installed one)
from cdh.config import load  # noqa: E402

AGENT_STACK = ("aiobotocore", "botocore", "aiohttp", "uvloop", "asyncio", "argparse", "logging", "cdh.agent")


def build(tmp: str) -> tuple[str, str]:
    pyz = os.path.join(tmp, "cdh.pyz")
    subprocess.run([sys.executable, os.path.join(REPO, "packaging", "zipapp.py"), "-o", pyz],
                   check=True, stdout=subprocess.DEVNULL)
    rt = os.path.join(tmp, "image-runtime")
    subprocess.run([sys.executable, os.path.join(REPO, "packaging", "runtime.py"), "--pyz", pyz,
                    "--out", rt], check=True, stdout=subprocess.DEVNULL)
    return pyz, rt


def install(tmp: str, runtime_dir: str):
    proc_sys = os.path.join(tmp, "proc-sys")
    for name, value in (("kernel/core_pattern", "core"), ("kernel/core_pipe_limit", "0"),
                        ("fs/suid_dumpable", "0")):
        os.makedirs(os.path.dirname(os.path.join(proc_sys, name)), exist_ok=True)
        with open(os.path.join(proc_sys, name), "w") as f:
            f.write(value + "\n")
    host_dir = tempfile.mkdtemp(prefix="cdh-bench-", dir="/tmp")
    settings = load([{"CDH_HOST_DIR": host_dir, "CDH_RUNTIME_DIR": runtime_dir}])
    host.install(settings, host.Sysctl(proc_sys))
    return settings


def composer_args(settings) -> list[str]:
    return [os.path.join(settings.host_dir, "cdc"), "-c=unlimited", "-e=bench", "-p=4242",
            f"-P={os.getpid()}", "-s=11", f"-t={int(time.time())}", "-h=bench", "-E=!bench"]


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


def run(runs: int, pyz: str | None, runtime_dir: str | None) -> dict:
    with tempfile.TemporaryDirectory(prefix="cdh-bench-build-") as tmp:
        if runtime_dir is None:
            _pyz, runtime_dir = build(tmp)
        settings = install(tmp, runtime_dir)
        argv = composer_args(settings)
        with open(argv[0], "rb") as f:
            rt = f.readline().decode().split()[0][2:].rsplit("/lib/", 1)[0]
        python = os.path.realpath(sys.executable)
        reads = []
        result = {
            "composer_first_read": sample(lambda: reads.append(first_read_s(argv)) or reads[-1][0], runs),
            "python3_S_pass": sample(lambda: exit_s([python, "-S", "-c", "pass"]), runs),
            "runtime_pass": sample(lambda: exit_s([f"{rt}/lib/ld.so", f"{rt}/bin/python3", "-c", "pass"]),
                                   runs),
            "composer_measured_at": reads[-1][1],
            "imports": imports(rt, argv),
            "host_runtime_bytes": tree_bytes(rt),
            "cdc_bytes": os.path.getsize(argv[0]),
            "image_runtime_bytes": tree_bytes(runtime_dir),
        }
        host.uninstall(settings, host.Sysctl(os.path.join(tmp, "proc-sys")))
        shutil.rmtree(settings.host_dir, ignore_errors=True)
    return result


def report(r: dict) -> None:
    base = r["python3_S_pass"]["median_ms"]
    comp = r["composer_first_read"]
    print(f"composer exec → {r['composer_measured_at']}: median {comp['median_ms']:.1f} ms, "
          f"p90 {comp['p90_ms']:.1f} ms ({comp['median_ms'] / base:.2f}x python3 -S -c pass)")
    print(f"python3 -S -c pass:            median {base:.1f} ms, p90 {r['python3_S_pass']['p90_ms']:.1f} ms")
    print(f"runtime -c pass (._pth: -I -S): median {r['runtime_pass']['median_ms']:.1f} ms")
    agent = [n for n, _ in r["imports"] if n.split(".")[0] in AGENT_STACK or n.startswith("cdh.agent")]
    print(f"composer path imports {len(r['imports'])} modules; agent stack: {agent or 'none'}; slowest:")
    for name, us in r["imports"][:8]:
        print(f"    {us / 1000:6.1f} ms  {name}")
    print(f"installed runtime {r['host_runtime_bytes'] / 2**20:.1f} MiB"
          f" + cdc {r['cdc_bytes'] / 2**20:.1f} MiB;"
          f" image runtime {r['image_runtime_bytes'] / 2**20:.1f} MiB")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--pyz", help="an existing zipapp (with --runtime)")
    parser.add_argument("--runtime", help="an existing runtime laid out by packaging/runtime.py")
    parser.add_argument("--json", help="also write the figures here")
    ns = parser.parse_args(argv)
    result = run(ns.runs, ns.pyz, ns.runtime)
    report(result)
    if ns.json:
        with open(ns.json, "w") as f:
            json.dump(result, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
