"""A real crash, through the real kernel, into HOST_DIR/cdc running on the installed runtime."""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import time
import zipfile

import pytest

from cdh.agent import host
from cdh.config import load


def crash(exe: str = "sleep") -> int:
    """A process that dies of SIGSEGV with a core (sleep's default action for it is to dump)."""
    def allow_core():
        resource.setrlimit(resource.RLIMIT_CORE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))

    proc = subprocess.Popen([exe, "60"], preexec_fn=allow_core)
    os.kill(proc.pid, signal.SIGSEGV)
    assert proc.wait(timeout=30) == -signal.SIGSEGV
    return proc.pid


def wait_for_zip(core_dir: str, deadline_s: float = 60.0) -> str:
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        zips = [n for n in os.listdir(core_dir) if n.endswith(".zip")] if os.path.isdir(core_dir) else []
        if zips:
            return os.path.join(core_dir, zips[0])
        time.sleep(0.05)
    raise AssertionError(f"no zip in {core_dir} after {deadline_s}s")


@pytest.mark.kernel
def test_a_real_crash_is_captured_by_the_installed_runtime(kernel, image_runtime, short_host_dir):
    settings = load([{"CDH_HOST_DIR": short_host_dir, "CDH_RUNTIME_DIR": str(image_runtime),
                      "CDH_CRICTL_PATH": short_host_dir}])
    host.install(settings)
    try:
        with open(os.path.join(short_host_dir, "cdc"), "rb") as f:
            assert f.readline().startswith(f"#!{short_host_dir}/runtime/".encode())
        pid = crash()
        path = wait_for_zip(settings.core_dir)
        with zipfile.ZipFile(path) as z:
            assert z.testzip() is None
            names = z.namelist()
            core = next(n for n in names if n.endswith(".core"))
            assert z.read(core)[:4] == b"\x7fELF"
            info = json.loads(z.read(next(n for n in names if n.endswith("-dump-info.json"))))
        assert str(info["real_pid"]) == str(pid) or str(info.get("host_pid")) == str(pid), info
    finally:
        host.uninstall(settings)
