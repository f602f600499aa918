"""Run ``cdh compose`` as the kernel would (a child process, a clean environment, the core on stdin).

    result = run_composer(host_dir, core=b"...", env={"CDH_CRICTL_PATH": str(stub.dir)},
                          proc_root=fake_proc(tmp_path, 4242, cgroup_text))
    result.rc, result.zip_path, result.dump_info, result.entries, result.log

or installed for real, where the kernel runs it (inside the ``kernel`` fixture's lock):

    with installed_composer(image_runtime, CDH_RATE_LIMIT="off") as settings: ...
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FAKE_PID = 4242
KERNEL_ARGS = ["-c=18446744073709551615", "-e=crasher", "-p=7", "-s=11", "-t=1718000000",
               "-h=web-0", "-E=!usr!bin!crasher"]


def fake_proc(root: Path, pid: int = FAKE_PID, cgroup: str = "0::/\n",
              environ: bytes = b"SECRET=x\0") -> Path:
    """A directory shaped like /proc/<pid> for CDH_TEST_PROC_ROOT."""
    d = root / "proc" / str(pid)
    d.mkdir(parents=True, exist_ok=True)
    files = {"cgroup": cgroup.encode(), "cmdline": b"/usr/bin/crasher\0--flag\0",
             "status": b"Name:\tcrasher\nState:\tD (disk sleep)\nPid:\t%d\n" % pid,
             "maps": b"00400000-00452000 r-xp 00000000 08:02 173521 /usr/bin/crasher\n",
             "limits": b"Limit Soft Limit Hard Limit Units\nMax core file size unlimited unlimited bytes\n",
             "auxv": b"\x21\0\0\0\0\0\0\0" + b"\0" * 8, "environ": environ}
    for name, data in files.items():
        (d / name).write_bytes(data)
    return root / "proc"


class Result:
    def __init__(self, rc: int, host_dir: Path, core_dir: Path, stderr: bytes) -> None:
        self.rc = rc
        self.host_dir = host_dir
        self.core_dir = core_dir
        self.stderr = stderr.decode(errors="replace")
        self.zips = sorted(core_dir.glob("*.zip")) if core_dir.exists() else []
        self.parts = sorted(core_dir.glob(".*.part")) if core_dir.exists() else []

    @property
    def zip_path(self) -> Path:
        assert len(self.zips) == 1, f"expected one zip, found {self.zips} (stderr: {self.stderr})"
        return self.zips[0]

    def open(self) -> zipfile.ZipFile:
        return zipfile.ZipFile(self.zip_path)

    @property
    def name(self) -> str:
        return self.zip_path.name[: -len(".zip")]

    @property
    def entries(self) -> list[str]:
        with self.open() as zf:
            return zf.namelist()

    def read(self, suffix: str) -> bytes:
        with self.open() as zf:
            return zf.read(self.name + suffix)

    def json(self, suffix: str):
        return json.loads(self.read(suffix))

    @property
    def dump_info(self) -> dict:
        return self.json("-dump-info.json")

    @property
    def log(self) -> list[dict]:
        path = self.host_dir / "composer.log"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines()]


# The space guards (CDH_KEEP_FREE 10% of the filesystem, CDH_MAX_USE 25%) would cut every test's core
# short on a machine whose disk is more than 90% full, whatever the test is about: tests run without
# them unless they are what is tested (tests/reliability/test_node.py, tests/unit/test_composer_space.py).
NO_SPACE_LIMITS = {"CDH_KEEP_FREE": "0", "CDH_MAX_USE": "off"}


def composer_env(host_dir: Path, env: dict | None = None, proc_root: Path | None = None) -> dict:
    # No CRI socket answers (whatever this machine runs): the composer falls back to crictl, the stub.
    base = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), "CDH_HOST_DIR": str(host_dir),
            "CDH_CRICTL_PATH": "/nonexistent", "CDH_CRI_ENDPOINT": f"unix://{host_dir}/no-cri.sock",
            **NO_SPACE_LIMITS}
    if proc_root is not None:
        base["CDH_TEST_PROC_ROOT"] = str(proc_root)
    return {**base, **(env or {})}


def run_composer(host_dir: Path, core: bytes = b"\x7fELF core", args: list[str] | None = None,
                 env: dict | None = None, proc_root: Path | None = None, pid: int = FAKE_PID,
                 stdin=None, timeout: float = 120, preexec_fn=None) -> Result:
    """Run the composer to completion. ``stdin`` (a file object) replaces ``core`` when given."""
    argv = [sys.executable, "-m", "cdh", "compose", *(args if args is not None else
                                                        [*KERNEL_ARGS, f"-P={pid}"])]
    full_env = composer_env(host_dir, env, proc_root)
    proc = subprocess.run(argv, input=None if stdin is not None else core, stdin=stdin,
                          env=full_env, capture_output=True, timeout=timeout, preexec_fn=preexec_fn)
    core_dir = Path(full_env.get("CDH_CORE_DIR", host_dir / "cores"))
    for a, after in zip(argv, [*argv[1:], ""], strict=True):
        if a.startswith("-d="):
            core_dir = Path(a[3:])
        elif a == "-d":  # IBM's form: `-d DIR`
            core_dir = Path(after)
    return Result(proc.returncode, host_dir, core_dir, proc.stderr)


def unzip_test(path: Path) -> None:
    """``unzip -t`` must accept the archive."""
    out = subprocess.run(["unzip", "-t", str(path)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "No errors detected" in out.stdout, out.stdout


def ensure_unzip() -> None:
    import shutil

    from tests.support.require import require

    require(shutil.which("unzip"), "unzip is needed (apt-get install unzip; .ci/run installs it)")



@contextlib.contextmanager
def installed_composer(runtime_dir: Path, **extra: str) -> Iterator:
    """``cdh install`` into a short temporary HOST_DIR (core_pattern holds 127 bytes), on the
    self-contained runtime the image ships; ``extra`` settings on top. Yields the settings;
    uninstalls (the previous core_pattern back) and removes HOST_DIR afterwards."""
    from cdh.agent import host
    from cdh.config import load

    host_dir = Path(tempfile.mkdtemp(prefix="cdhk-", dir="/tmp"))
    settings = load([{"CDH_HOST_DIR": str(host_dir), "CDH_CRICTL_PATH": str(host_dir),
                      "CDH_RUNTIME_DIR": str(runtime_dir), **NO_SPACE_LIMITS, **extra}])
    host.install(settings)
    try:
        yield settings
    finally:
        host.uninstall(settings)
        shutil.rmtree(host_dir, ignore_errors=True)
