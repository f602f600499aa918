"""Upload: the agent's uploader against `aws s3 cp`, on the same moto_server process, same file.

The file is a zip our composer wrote (stored, so its size is the core's; about 2 GiB by
default). Per round, interleaved:

- ``cdh sweep FILE``: the agent's Uploader (same settings, multipart, verify, then delete)
  in a one-shot process; a fresh copy of the zip is placed in CORE_DIR first (sweep deletes
  it once the object is confirmed);
- ``aws s3 cp FILE s3://...`` with its defaults.

Both are whole processes measured alike (runner.c: wall, the child's CPU, its peak RSS),
start-up included. After each, the object's size is checked and the object deleted (moto
keeps objects in memory). Then once: a running ``cdh agent`` (host setup against a fake
/proc/sys) picks the zip up from CORE_DIR; its peak RSS (VmHWM) and the CPU it spent on
that upload are read from /proc.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.bench import measure
from tests.bench.report import MB, MIB, Figure
from tests.support.s3server import ACCESS_KEY, REGION, SECRET_KEY, S3Server

REPO = Path(__file__).resolve().parents[2]
UPLOAD_DEADLINE_S = 900


def aws_cli() -> str | None:
    """The aws CLI: on PATH, or beside this interpreter (the nox session's venv)."""
    beside = Path(sys.executable).parent / "aws"
    return shutil.which("aws") or (str(beside) if beside.exists() else None)


def make_zip(cdc: Path, core: Path, out_dir: Path, mib: int) -> Path:
    """A stored zip of about ``mib`` MiB written by our composer: the core, repeated."""
    env = {"PATH": "/usr/bin:/bin", "CDH_HOST_DIR": str(cdc.parent), "CDH_CORE_DIR": str(out_dir),
           "CDH_COMPRESSION": "none", "CDH_IGNORE_CRI": "true", "CDH_CORE_EVENTS": "false"}
    proc = subprocess.Popen([str(cdc), "-c=0", "-e=upload", "-p=1", "-s=11", f"-t={int(time.time())}",
                             "-h=bench", "-E=!upload", f"-P={os.getpid()}"], stdin=subprocess.PIPE, env=env)
    _repeat_into(core, proc.stdin, mib << 20)
    if proc.wait() != 0:
        raise RuntimeError(f"the composer exited {proc.returncode} making the upload input")
    (zip_path,) = out_dir.glob("*.zip")
    return zip_path


def _repeat_into(src: Path, pipe, total: int) -> None:
    with open(src, "rb") as f:
        while total > 0:
            chunk = f.read(min(8 << 20, total))
            if not chunk:
                f.seek(0)
                continue
            pipe.write(chunk)
            total -= len(chunk)
    pipe.close()


class UploadBench:
    """One moto_server, one bucket, the zip; :meth:`rounds` and :meth:`agent_run` measure."""

    def __init__(self, work: Path, runner: Path, zip_path: Path, server: S3Server) -> None:
        self.work = work
        self.runner = runner
        self.zip_path = zip_path
        self.size = zip_path.stat().st_size
        self.server = server
        self.bucket = server.create_bucket(f"cdh-bench-upload-{os.getpid()}")
        self.s3 = self.server.client()
        self.core_dir = work / "upload-cores"
        self.host_dir = work / "upload-host"
        for d in (self.core_dir, self.host_dir):
            d.mkdir(mode=0o700, exist_ok=True)

    def cdh_env(self, **extra: str) -> dict[str, str]:
        return self.server.cdh_env(self.bucket, PYTHONPATH=str(REPO), CDH_HOST_DIR=str(self.host_dir),
                                   CDH_CORE_DIR=str(self.core_dir), CDH_NODE_NAME="bench",
                                   AWS_EC2_METADATA_DISABLED="true", **extra)

    def rounds(self, n: int) -> dict[str, list[measure.Sample]]:
        samples: dict[str, list[measure.Sample]] = {"cdh sweep": [], "aws s3 cp": []}
        aws = aws_cli()
        for i in range(n):
            copy = self.core_dir / self.zip_path.name
            shutil.copyfile(self.zip_path, copy)
            samples["cdh sweep"].append(measure.run(
                self.runner, [sys.executable, "-m", "cdh", "sweep", str(copy)], env=self.cdh_env()))
            if copy.exists():
                raise AssertionError("cdh sweep exited 0 but left the zip behind")
            self._check_and_delete(self.zip_path.name)
            key = f"aws/{i}/{self.zip_path.name}"
            samples["aws s3 cp"].append(measure.run(
                self.runner, [aws, "s3", "cp", "--no-progress", "--only-show-errors", str(self.zip_path),
                              f"s3://{self.bucket}/{key}", "--endpoint-url", self.server.url],
                env=self._aws_env()))
            self._check_and_delete(key)
        return samples

    def _aws_env(self) -> dict[str, str]:
        return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "AWS_ACCESS_KEY_ID": ACCESS_KEY,
                "AWS_SECRET_ACCESS_KEY": SECRET_KEY, "AWS_DEFAULT_REGION": REGION,
                "AWS_EC2_METADATA_DISABLED": "true", "AWS_CONFIG_FILE": "/dev/null",
                "AWS_SHARED_CREDENTIALS_FILE": "/dev/null", "HOME": str(self.work)}

    def _check_and_delete(self, key: str) -> None:
        size = self.s3.head_object(Bucket=self.bucket, Key=key)["ContentLength"]
        if size != self.size:
            raise AssertionError(f"s3://{self.bucket}/{key} has {size} bytes, not {self.size}")
        self.s3.delete_object(Bucket=self.bucket, Key=key)

    def agent_run(self) -> dict:
        """A running agent uploads the zip once: wall, its CPU for it, its peak RSS so far."""
        log_path = self.work / "agent.log"
        env = self.cdh_env(CDH_TEST_SYSCTL_ROOT=str(_fake_sysctl(self.work / "proc-sys")),
                           CDH_METRICS_PORT="0", CDH_IGNORE_CRI="true")
        with open(log_path, "ab") as log:
            agent = subprocess.Popen([sys.executable, "-m", "cdh", "agent"], env=env, cwd="/", stdout=log,
                                     stderr=subprocess.STDOUT)
        try:
            _wait(lambda: b'"agent.started"' in log_path.read_bytes(), agent, 60, "the agent to start")
            staged = self.work / self.zip_path.name
            shutil.copyfile(self.zip_path, staged)
            cpu0, t0 = _cpu_s(agent.pid), time.monotonic()
            os.rename(staged, self.core_dir / self.zip_path.name)  # as the composer publishes
            _wait(lambda: not (self.core_dir / self.zip_path.name).exists(), agent, UPLOAD_DEADLINE_S,
                  "the agent to upload and delete the zip")
            wall, cpu = time.monotonic() - t0, _cpu_s(agent.pid) - cpu0
            rss = _vm_hwm(agent.pid)
        finally:
            agent.send_signal(signal.SIGTERM)
            try:
                agent.wait(60)
            except subprocess.TimeoutExpired:
                agent.kill()
                agent.wait()
        self._check_and_delete(self.zip_path.name)
        return {"wall_s": wall, "cpu_s": cpu, "rss": rss}


def _fake_sysctl(root: Path) -> Path:
    for name, value in (("kernel/core_pattern", "core"), ("kernel/core_pipe_limit", "0"),
                        ("fs/suid_dumpable", "0")):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(value + "\n")
    return root


def _wait(cond, proc: subprocess.Popen, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if proc.poll() is not None:
            raise RuntimeError(f"the agent exited {proc.returncode} while waiting for {what}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


def _cpu_s(pid: int) -> float:
    """utime + stime of the whole process (every thread) so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _vm_hwm(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM")


def figures(samples: dict[str, list[measure.Sample]], agent: dict | None, size: int) -> list[Figure]:
    median = measure.median
    gb = size / 1e9
    ours, aws = samples["cdh sweep"], samples["aws s3 cp"]
    out = [
        Figure("upload (cdh sweep)", "MB/s", size / median(ours, "wall_s") / MB, "aws s3 cp",
               size / median(aws, "wall_s") / MB, (">=", 1.0, "ratio")),
        Figure("upload CPU (cdh sweep)", "s/GB", median(ours, "cpu_s") / gb, "aws s3 cp",
               median(aws, "cpu_s") / gb, ("<=", 0.5, "ratio")),
        Figure("upload peak RSS (cdh sweep)", "MiB", max(s.rss for s in ours) / MIB, "aws s3 cp",
               max(s.rss for s in aws) / MIB, ("<=", 128, "abs")),
    ]
    if agent:
        out += [
            Figure("upload (cdh agent)", "MB/s", size / agent["wall_s"] / MB, "aws s3 cp",
                   size / median(aws, "wall_s") / MB, (">=", 1.0, "ratio")),
            Figure("upload CPU (cdh agent)", "s/GB", agent["cpu_s"] / gb, "aws s3 cp",
                   median(aws, "cpu_s") / gb, ("<=", 0.5, "ratio")),
            Figure("agent peak RSS", "MiB", agent["rss"] / MIB, "aws s3 cp", max(s.rss for s in aws) / MIB,
                   ("<=", 128, "abs")),
        ]
    return out
