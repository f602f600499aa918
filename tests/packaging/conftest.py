"""The zipapp and the runtime, built once per session by the scripts the Containerfile runs.

`pyz` is packaging/zipapp.py's output (what `nox -s zipapp` builds); `image_runtime` is
packaging/runtime.py's (the image's /opt/cdh/runtime). Tests that chroot need root: they skip
without it, unless CDH_REQUIRE_KERNEL=1 (CI), which makes that a failure.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def script(name: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, os.path.join(REPO, "packaging", name), *args],
                          check=True, capture_output=True, text=True)


@pytest.fixture(scope="session")
def pyz(tmp_path_factory):
    out = tmp_path_factory.mktemp("zipapp") / "cdh.pyz"
    script("zipapp.py", "-o", str(out))
    return out


@pytest.fixture(scope="session")
def image_runtime(pyz, tmp_path_factory):
    out = tmp_path_factory.mktemp("image") / "runtime"
    script("runtime.py", "--pyz", str(pyz), "--out", str(out))
    return out


@pytest.fixture(scope="session")
def image_entry(image_runtime):
    """The image's /opt/cdh/cdh.pyz, written as the Containerfile writes it (beside the runtime)."""
    rt = str(image_runtime)
    entry = os.path.join(os.path.dirname(rt), "cdh.pyz")
    subprocess.run([f"{rt}/lib/ld.so", f"{rt}/bin/python3", "-m", "cdh.agent.runtime", rt, entry],
                   check=True, env={}, cwd="/")
    return entry


@pytest.fixture
def short_host_dir():
    """A HOST_DIR as short as a real one, so cdc's first line fits every kernel (127 bytes)."""
    top = tempfile.mkdtemp(prefix="cdh-", dir="/tmp")
    os.mkdir(os.path.join(top, "host"), 0o700)
    yield os.path.join(top, "host")
    shutil.rmtree(top, ignore_errors=True)


def _chroot_unavailable() -> str | None:
    if os.geteuid() != 0:
        return "not root"
    for tool in ("unshare", "mount", "chroot", "env"):
        if shutil.which(tool) is None:
            return f"no {tool}"
    probe = subprocess.run(["unshare", "--mount", "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        return f"cannot make a mount namespace: {probe.stderr.strip()}"
    return None


@pytest.fixture
def chroot(tmp_path):
    """Run a command inside a root holding nothing but the given directories and /proc.

    Every mount is made in a private mount namespace (unshare), so it is gone when the command
    ends, whatever happens to the test.
    """
    why = _chroot_unavailable()
    if why:
        if os.environ.get("CDH_REQUIRE_KERNEL") == "1":
            pytest.fail(f"chroot tests required (CDH_REQUIRE_KERNEL=1) but cannot run: {why}")
        pytest.skip(f"chroot tests cannot run here: {why}")
    root = tmp_path / "chroot"

    def run(dirs: list[str], argv: list[str], **kw) -> subprocess.CompletedProcess:
        (root / "proc").mkdir(parents=True, exist_ok=True)
        binds = []
        for d in dirs:
            (root / d.lstrip("/")).mkdir(parents=True, exist_ok=True)
            binds.append(f'mount --bind "{d}" "{root}{d}"')
        shell = " && ".join([*binds, f'mount -t proc proc "{root}/proc"', 'exec "$@"'])
        cmd = ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", shell, "sh",
               shutil.which("env"), "-i", shutil.which("chroot"), str(root), *argv]
        return subprocess.run(cmd, capture_output=True, timeout=120, **kw)

    yield run
    with open("/proc/self/mountinfo") as f:
        assert str(root) not in f.read(), "a chroot mount leaked out of its namespace"
