"""A node for one real-kernel test: the composer installed where the kernel runs it, crashes, pods.

    node.install(CDH_RATE_LIMIT="off")      # host.install: cdc on the image's runtime, core_pattern
    pid = node.crash("big", "64")           # a real crash; returns when the kernel released it
    node.done()                             # the composer's compose.done log lines

HOST_DIR is short and under /tmp (core_pattern has 127 bytes). The caller holds the ``kernel``
fixture, which restores the sysctls afterwards.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid as uuidlib
from pathlib import Path

from cdh.agent import host
from cdh.config import load
from tests.support.agentproc import REPO, wait_until
from tests.support.composer import NO_SPACE_LIMITS

HERE = Path(__file__).parent


def build_crasher(out_dir: Path) -> Path:
    exe = out_dir / "crasher"
    subprocess.run(["gcc", "-O1", "-o", str(exe), str(HERE / "crasher.c")], check=True)
    return exe


def allow_core() -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_CORE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))


class Node:
    def __init__(self, runtime_dir: Path, crasher: Path) -> None:
        self.host_dir = Path(tempfile.mkdtemp(prefix="cdhr-", dir="/tmp"))
        self.runtime_dir = runtime_dir
        self.crasher = crasher
        self.settings = None
        self.made_cgroups: list[Path] = []

    @property
    def core_dir(self) -> Path:
        return self.host_dir / "cores"

    @property
    def event_dir(self) -> Path:
        return self.host_dir / "events"

    def env(self, **extra: str) -> dict[str, str]:
        """The settings of this node (what the agent's environment would hold)."""
        # No CRI socket answers, whatever this machine runs: crictl (none, or a test's stub) is asked.
        return {"CDH_HOST_DIR": str(self.host_dir), "CDH_CRICTL_PATH": str(self.host_dir / "bin"),
                "CDH_CRI_ENDPOINT": f"unix://{self.host_dir}/no-cri.sock",
                "CDH_RUNTIME_DIR": str(self.runtime_dir), **NO_SPACE_LIMITS, **extra}

    def install(self, **extra: str):
        self.settings = load([self.env(**extra)])
        host.install(self.settings)
        return self.settings

    def agent_env(self, s3_env: dict[str, str], **extra: str) -> dict[str, str]:
        """A whole environment for ``cdh agent`` on this node: it installs the composer for real."""
        from cdh.config import BY_ALIAS

        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("CDH_", "AWS_", "S3_")) and k not in BY_ALIAS}
        return {**env, "PYTHONPATH": str(REPO), "CDH_NODE_NAME": "node-r", "CDH_METRICS_PORT": "0",
                "CDH_RETRY_MIN": "200ms", "CDH_RETRY_MAX": "2s", "CDH_GRACE_PERIOD": "20s",
                "AWS_EC2_METADATA_DISABLED": "true", **s3_env, **self.env(**extra)}

    # ------------------------------------------------------------ crashes

    def start_crash(self, *args: str, preexec=None) -> subprocess.Popen:
        def prepare():
            allow_core()
            if preexec:
                preexec()
        return subprocess.Popen([str(self.crasher), *args], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, preexec_fn=prepare)

    def crash(self, *args: str, preexec=None, timeout: float = 120) -> int:
        """Crash and wait until the kernel has released the process; its pid."""
        p = self.start_crash(*args, preexec=preexec)
        assert p.wait(timeout=timeout) == -signal.SIGSEGV, f"crasher exited with {p.returncode}"
        return p.pid

    def composers(self, host_pid: int | None = None) -> list[int]:
        """PIDs of composers running from this HOST_DIR (for host_pid's crash, if given)."""
        want = f"{self.host_dir}/cdc".encode()
        found = []
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            try:
                argv = Path(f"/proc/{name}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if want in argv and (host_pid is None or f"-P={host_pid}".encode() in argv):
                found.append(int(name))
        return found

    # ------------------------------------------------------------ what the composer left

    def log(self) -> list[dict]:
        lines = []
        for name in ("composer.log.1", "composer.log"):
            path = self.host_dir / name
            if path.exists():
                lines += [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        return lines

    def events(self, name: str) -> list[dict]:
        return [line for line in self.log() if line.get("event") == name]

    def done(self) -> list[dict]:
        return self.events("compose.done")

    def wait_done(self, count: int, timeout: float = 120) -> list[dict]:
        return wait_until(lambda: len(self.done()) >= count and self.done(), timeout,
                          f"{count} x compose.done in {self.host_dir}/composer.log")

    def zips(self) -> list[Path]:
        """Finished zips (regular files: a symlink planted by a test is not one)."""
        return sorted(p for p in self.core_dir.glob("*.zip") if not p.is_symlink())

    def parts(self) -> list[Path]:
        return sorted(p for p in self.core_dir.glob(".*.zip.part") if not p.is_symlink())

    # ------------------------------------------------------------ pods

    def pod_cgroup(self, pod_uid: str | None = None, container_id: str | None = None) -> Path:
        """A kubelet-shaped cgroup (systemd driver, containerd) to crash in; removed at cleanup."""
        uid = pod_uid or str(uuidlib.uuid4())
        cid = container_id or uuidlib.uuid4().hex * 2
        root = Path("/sys/fs/cgroup/unified")
        if not (root / "cgroup.procs").exists():
            root = Path("/sys/fs/cgroup")
        path = root
        for part in ("kubepods.slice", "kubepods-burstable.slice",
                     f"kubepods-burstable-pod{uid.replace('-', '_')}.slice", f"cri-containerd-{cid}.scope"):
            path = path / part
            if not path.exists():
                path.mkdir()
                self.made_cgroups.append(path)
        return path

    def cleanup(self) -> None:
        for path in reversed(self.made_cgroups):
            deadline = time.monotonic() + 10
            while True:
                try:
                    path.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:  # still has a process that is being reaped
                    if time.monotonic() > deadline:
                        break
                    time.sleep(0.05)
        if self.settings is not None:
            host.uninstall(self.settings)
        if os.environ.get("CDH_TEST_KEEP"):
            print(f"kept {self.host_dir} (CDH_TEST_KEEP)")
            return
        shutil.rmtree(self.host_dir, ignore_errors=True)


def enter(cgroup: Path):
    """A preexec function: the child moves itself into ``cgroup``."""
    def move() -> None:
        (cgroup / "cgroup.procs").write_text(str(os.getpid()))
    return move


def mount_tmpfs(path: Path, size: str) -> None:
    path.mkdir(mode=0o700, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path)],
                   check=True, capture_output=True)


def umount(path: Path) -> None:
    subprocess.run(["umount", "-l", str(path)], check=False, capture_output=True)


def fill(directory: Path, name: str = "filler") -> int:
    """Write to ``directory/name`` until the filesystem is full; the bytes written."""
    written = 0
    block = os.urandom(1 << 20)
    with open(directory / name, "wb", buffering=0) as f:
        for size in (1 << 20, 1 << 12, 1):
            while True:
                try:
                    written += f.write(block[:size])
                except OSError:
                    break
    return written
