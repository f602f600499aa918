"""Packaging fixtures: a short HOST_DIR and a bare chroot.

`pyz`, `image_runtime` and `image_entry` (tests/conftest.py) are packaging/zipapp.py's and
packaging/pyruntime.py's output, built once per session. Tests that chroot need root: they skip
without it, unless CDH_REQUIRE_KERNEL=1 (CI), which makes that a failure (tests/support/require.py).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile

import pytest

from tests.support.require import require


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
    require(why is None, f"chroot tests cannot run here: {why}")
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
