"""Run ``cdh agent`` / ``cdh sweep`` as real subprocesses and read their JSON log lines.

``agent_env`` builds a temporary HOST_DIR plus a fake /proc/sys tree
(``CDH_TEST_SYSCTL_ROOT``, see cdh/agent/main.py), so host setup runs for real
without touching the machine's core_pattern. Tests that want the real kernel
use the ``kernel`` fixture and leave CDH_TEST_SYSCTL_ROOT unset.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable

from tests.support.composer import NO_SPACE_LIMITS

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def wait_until(cond: Callable[[], object], timeout: float = 30.0, what: str = "condition",
               interval: float = 0.05):
    """Poll ``cond`` until it is truthy (returned) or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


# A node's own piped core_pattern, as a distribution's collector leaves it, for tests that restore
# it: cdh restores a pipe only to a program that exists and is root's alone (cdh/sysctl.py
# implausible), so one every test machine has stands for systemd-coredump.
NODE_PIPE = "|/usr/bin/true %P %u %g %s %t %c %h"


def fake_sysctl_root(path) -> str:
    for name, value in (("kernel/core_pattern", "core"), ("kernel/core_pipe_limit", "0"),
                        ("fs/suid_dumpable", "0")):
        f = os.path.join(path, name)
        os.makedirs(os.path.dirname(f), exist_ok=True)
        with open(f, "w") as fh:
            fh.write(value + "\n")
    return os.fspath(path)


def set_fake_sysctl(path, value: str) -> None:
    """Change a fake sysctl the way the kernel's changes are seen: whole (a plain rewrite lets the
    agent's periodic check read it empty in between)."""
    tmp = f"{path}.new"
    with open(tmp, "w") as fh:
        fh.write(value)
    os.replace(tmp, path)


def base_env(tmp_path, s3_settings: dict[str, str], **settings: str) -> dict[str, str]:
    """A clean environment: no CDH_* or IBM names from the caller, a private HOST_DIR."""
    from cdh.config import BY_ALIAS

    env = {k: v for k, v in os.environ.items()
           if not k.startswith("CDH_") and k not in BY_ALIAS and not k.startswith("AWS_")}
    host = tmp_path / "host"
    host.mkdir(mode=0o700, exist_ok=True)
    env.update({
        "PYTHONPATH": REPO,
        "CDH_HOST_DIR": str(host),
        "CDH_TEST_SYSCTL_ROOT": fake_sysctl_root(tmp_path / "proc-sys"),
        "CDH_NODE_NAME": "node-a",
        "CDH_METRICS_PORT": "0",
        "CDH_RETRY_MIN": "200ms",
        "CDH_RETRY_MAX": "2s",
        "CDH_GRACE_PERIOD": "20s",
        "AWS_EC2_METADATA_DISABLED": "true",  # no 1 s IMDS probe when keys are missing
        **NO_SPACE_LIMITS,
    })
    env.update(s3_settings)
    env.update(settings)
    return env


class Proc:
    """A cdh subprocess whose stdout (JSON lines) goes to a file we can poll."""

    def __init__(self, args: list[str], env: dict[str, str], log_path,
                 command: list[str] | None = None) -> None:
        """``command``: what runs ``cdh`` (default this interpreter and checkout; or an installed zipapp)."""
        self.log_path = os.fspath(log_path)
        self._out = open(self.log_path, "ab")  # noqa: SIM115 - closed in wait()
        cmd = command or [sys.executable, "-m", "cdh"]
        self.proc = subprocess.Popen([*cmd, *args], env=env, cwd="/",
                                     stdout=self._out, stderr=subprocess.PIPE)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def text(self) -> str:
        with open(self.log_path, encoding="utf-8", errors="replace") as f:
            return f.read()

    def lines(self) -> list[dict]:
        out = []
        for raw in self.text().splitlines():
            try:
                out.append(json.loads(raw))
            except ValueError:
                out.append({"event": "<not json>", "raw": raw})
        return out

    def events(self, name: str) -> list[dict]:
        return [ln for ln in self.lines() if ln.get("event") == name]

    def wait_event(self, name: str, count: int = 1, timeout: float = 30.0) -> list[dict]:
        def seen():
            self.check_alive()
            found = self.events(name)
            return found if len(found) >= count else None
        return wait_until(seen, timeout, f"{count} x {name} in {self.log_path}")

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            raise AssertionError(f"cdh exited with {self.proc.returncode}: "
                                 f"{self.proc.stderr.read().decode() if self.proc.stderr else ''}"
                                 f"\n{self.text()[-3000:]}")

    def signal(self, sig: int = signal.SIGTERM) -> None:
        self.proc.send_signal(sig)

    def wait(self, timeout: float = 60.0) -> int:
        try:
            return self.proc.wait(timeout)
        finally:
            self._out.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._out.close()
        if self.proc.stderr:
            self.proc.stderr.close()

    def vm_hwm_kib(self) -> int:
        """Peak resident set size so far (VmHWM), in KiB."""
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
        raise AssertionError("no VmHWM")


def run_sweep(env: dict[str, str], *files: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cdh", "sweep", *files], env=env, cwd="/",
                          capture_output=True, text=True, timeout=timeout)


# Small parts, so that a few MiB already go in several (5 MiB is the smallest part S3 takes).
SMALL_PARTS = {"CDH_MULTIPART_THRESHOLD": "5MiB", "CDH_PART_SIZE": "5MiB", "CDH_PART_CONCURRENCY": "2"}


def via_proxy(agent_env: dict[str, str], proxy, **extra: str) -> dict[str, str]:
    """``agent_env`` uploading through ``proxy`` (a tests.support.faultproxy.FaultProxy), in small parts."""
    return {**agent_env, "CDH_S3_ENDPOINT": proxy.url, **SMALL_PARTS, **extra}
