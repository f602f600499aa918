"""Upload: the agent's uploader against `aws s3 cp`, on the same moto_server process, same file.

The file is a zip our composer wrote (stored, so its size is the core's; about 2 GiB by
default). Per round, interleaved (the order rotates from round to round):

- ``cdh sweep FILE``: the agent's Uploader (same settings, multipart, verify, then delete)
  in a one-shot process; a fresh copy of the zip is placed in CORE_DIR first, fsync'd as
  the composer leaves it (sweep deletes it once the object is confirmed);
- ``aws s3 cp FILE s3://...`` with its defaults, on a fresh copy made the same way (see aws());
- a running ``cdh agent`` (started once, host setup against a fake /proc/sys) picks a copy
  up from CORE_DIR: wall from the zip's arrival until it is deleted and closed (uploaded
  and verified), the CPU it spent meanwhile, its peak RSS (VmHWM) after the round, read
  from /proc.

``cdh sweep`` and ``aws s3 cp`` are whole processes measured alike (runner.c: wall, the
child's CPU, its peak RSS), start-up included. What that start-up costs is measured too,
for both the same way: each uploads a 1 KB zip (start-up, one PUT; sweep also its HEAD and
delete); the notes give both per-GB figures without it ((CPU of the big file - CPU of the
small one) / GB). For every upload the CPU moto_server spent is read from /proc: the server
shares the two CPUs and is most often the bottleneck. After each upload the object's size is
checked and the object deleted (moto keeps objects in temp files, on a tmpfs here). Before
each upload the machine settles: dirty pages written back, moto_server idle.
"""

from __future__ import annotations

import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

from dev.bench import measure
from dev.bench.report import MB, MIB, Figure
from tests.support.s3server import ACCESS_KEY, REGION, SECRET_KEY, S3Server
from tests.support.zips import make_zip as make_small_zip

REPO = Path(__file__).resolve().parents[2]
UPLOAD_DEADLINE_S = 900
TOOLS = ("cdh sweep", "aws s3 cp", "cdh agent")


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


class Upload:
    """One upload: wall, the uploader's CPU and peak RSS (bytes), moto_server's CPU meanwhile."""

    def __init__(self, sample: measure.Sample, server_cpu_s: float) -> None:
        self.wall_s, self.cpu_s, self.rss = sample.wall_s, sample.cpu_s, sample.rss
        self.server_cpu_s = server_cpu_s

    def as_dict(self) -> dict:
        return {"wall_s": round(self.wall_s, 4), "cpu_s": round(self.cpu_s, 4), "rss": self.rss,
                "server_cpu_s": round(self.server_cpu_s, 4)}


class UploadBench:
    """One moto_server, one bucket, the zip; :meth:`rounds` measures."""

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
        (work / "upload-small").mkdir(mode=0o700, exist_ok=True)
        self.small = Path(make_small_zip(work / "upload-small", 1000).path)

    def cdh_env(self, **extra: str) -> dict[str, str]:
        settings = {"PYTHONPATH": str(REPO), "CDH_HOST_DIR": str(self.host_dir),
                    "CDH_CORE_DIR": str(self.core_dir), "CDH_NODE_NAME": "bench",
                    "AWS_EC2_METADATA_DISABLED": "true", **extra}
        return self.server.cdh_env(self.bucket, **settings)

    def rounds(self, n: int) -> dict[str, list[Upload]]:
        """``n`` interleaved rounds of every tool on the big zip, then of sweep and aws on the small one."""
        names = (*TOOLS, "cdh sweep, 1 KB", "aws s3 cp, 1 KB")
        samples: dict[str, list[Upload]] = {name: [] for name in names}
        agent = Agent(self)  # watches a CORE_DIR of its own: sweep's copies are not for it
        runs = {"cdh sweep": lambda i: self.sweep(self.zip_path),
                "aws s3 cp": lambda i: self.aws(self.zip_path, i),
                "cdh agent": lambda i: agent.upload(self.zip_path)}
        try:
            for i in range(n):
                for name in TOOLS[i % 3:] + TOOLS[:i % 3]:  # each tool in each position, in turn
                    samples[name].append(self._server_cpu(lambda name=name, i=i: runs[name](i)))
        finally:
            agent.stop()
        for i in range(n):
            samples["cdh sweep, 1 KB"].append(self._server_cpu(lambda: self.sweep(self.small)))
            samples["aws s3 cp, 1 KB"].append(self._server_cpu(lambda i=i: self.aws(self.small, i)))
        samples["rm"] = [self._server_cpu(self.rm) for _ in range(n)]
        return samples

    def rm(self) -> measure.Sample:
        """What deleting the zip costs on this disk (sweep and the agent do it, aws s3 cp does not)."""
        copy = self.work / self.zip_path.name
        copy_synced(self.zip_path, copy)
        return measure.run(self.runner, ["rm", str(copy)])

    def sweep(self, src: Path) -> measure.Sample:
        copy = self.core_dir / src.name
        copy_synced(src, copy)
        argv = [sys.executable, "-m", "cdh", "sweep", str(copy)]
        sample = measure.run(self.runner, argv, env=self.cdh_env())
        if copy.exists():
            raise AssertionError("cdh sweep exited 0 but left the zip behind")
        self.check_and_delete(src.name, src.stat().st_size)
        return sample

    def aws(self, src: Path, i: int) -> measure.Sample:
        # A fresh copy, made as sweep's and the agent's are: on this VM, writing 2 GiB just
        # before an upload leaves the guest's warm free memory in the page cache, and the
        # server's allocations then fault in memory the host had reclaimed (free page
        # reporting): measured here, aws on the long-cached original 10.3-12.4 s per 2 GiB,
        # on a fresh copy 13.3-16.4 s, moto's system time up by half. All tools alike.
        copy = self.work / "upload-aws" / src.name
        copy.parent.mkdir(mode=0o700, exist_ok=True)
        copy_synced(src, copy)
        key = f"aws/{i}/{src.name}"
        argv = [aws_cli(), "s3", "cp", "--no-progress", "--only-show-errors", str(copy),
                f"s3://{self.bucket}/{key}", "--endpoint-url", self.server.url]
        try:
            sample = measure.run(self.runner, argv, env=self._aws_env())
        finally:
            copy.unlink()
        self.check_and_delete(key, src.stat().st_size)
        return sample

    def _server_cpu(self, upload) -> Upload:
        self.settle()
        before = cpu_s(self.server.proc.pid)
        sample = upload()
        return Upload(sample, cpu_s(self.server.proc.pid) - before)

    def settle(self, quiet_s: float = 0.5, timeout_s: float = 30.0) -> None:
        """Start every upload alike: dirty pages written back, moto_server idle."""
        os.sync()
        deadline = time.monotonic() + timeout_s
        last = cpu_s(self.server.proc.pid)
        while time.monotonic() < deadline:
            time.sleep(quiet_s)
            now = cpu_s(self.server.proc.pid)
            if now - last < 0.02:
                return
            last = now

    def _aws_env(self) -> dict[str, str]:
        return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "AWS_ACCESS_KEY_ID": ACCESS_KEY,
                "AWS_SECRET_ACCESS_KEY": SECRET_KEY, "AWS_DEFAULT_REGION": REGION,
                "AWS_EC2_METADATA_DISABLED": "true", "AWS_CONFIG_FILE": "/dev/null",
                "AWS_SHARED_CREDENTIALS_FILE": "/dev/null", "HOME": str(self.work)}

    def check_and_delete(self, key: str, size: int) -> None:
        got = self.s3.head_object(Bucket=self.bucket, Key=key)["ContentLength"]
        if got != size:
            raise AssertionError(f"s3://{self.bucket}/{key} has {got} bytes, not {size}")
        self.s3.delete_object(Bucket=self.bucket, Key=key)


class Agent:
    """A running ``cdh agent``: each :meth:`upload` drops a copy of a zip into CORE_DIR."""

    def __init__(self, bench: UploadBench) -> None:
        self.bench = bench
        self.log_path = bench.work / "agent.log"
        self.core_dir = bench.work / "upload-agent-cores"
        self.core_dir.mkdir(mode=0o700, exist_ok=True)
        env = bench.cdh_env(CDH_TEST_SYSCTL_ROOT=str(_fake_sysctl(bench.work / "proc-sys")),
                            CDH_METRICS_PORT="0", CDH_IGNORE_CRI="true", CDH_CORE_DIR=str(self.core_dir))
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "cdh", "agent"], env=env, cwd="/", stdout=log,
                                         stderr=subprocess.STDOUT)
        _wait(lambda: b'"agent.started"' in self.log_path.read_bytes(), self.proc, 60, "the agent to start")

    def upload(self, src: Path) -> measure.Sample:
        """Wall from the zip's arrival to its deletion (and last close), the agent's CPU meanwhile,
        its VmHWM after."""
        staged = self.bench.work / src.name
        copy_synced(src, staged)
        target = self.core_dir / src.name
        cpu0, t0 = cpu_s(self.proc.pid), time.monotonic()
        os.rename(staged, target)  # as the composer publishes
        # Done when the zip is deleted and closed: the last close frees its page cache and blocks.
        _wait(lambda: not target.exists() and not _holds(self.proc.pid, target), self.proc, UPLOAD_DEADLINE_S,
              "the agent to upload, delete and close the zip")
        wall, cpu = time.monotonic() - t0, cpu_s(self.proc.pid) - cpu0
        self.bench.check_and_delete(src.name, src.stat().st_size)
        return measure.Sample(wall, cpu, _vm_hwm(self.proc.pid), 0, 0)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def copy_synced(src: Path, dst: Path) -> None:
    """Copy and fsync, as the composer leaves a zip: its writeback must not run during the upload."""
    shutil.copyfile(src, dst)
    fd = os.open(dst, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


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


def _holds(pid: int, path: Path) -> bool:
    """Whether process ``pid`` still has ``path`` open (also once it is deleted)."""
    fds = Path(f"/proc/{pid}/fd")
    for fd in fds.iterdir():
        try:
            if os.readlink(fd).startswith(str(path)):
                return True
        except FileNotFoundError:
            continue
    return False


def cpu_s(pid: int) -> float:
    """utime + stime of the whole process (every thread) so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _vm_hwm(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM")


def _median(samples: list[Upload], attr: str) -> float:
    return statistics.median(getattr(s, attr) for s in samples)


def figures(samples: dict[str, list[Upload]], size: int) -> list[Figure]:
    gb = size / 1e9
    aws = samples["aws s3 cp"]
    aws_mbs, aws_cpu = size / _median(aws, "wall_s") / MB, _median(aws, "cpu_s") / gb
    aws_rss = max(s.rss for s in aws) / MIB
    out = []
    for name in ("cdh sweep", "cdh agent"):
        ours = samples[name]
        out += [
            Figure(f"upload ({name})", "MB/s", size / _median(ours, "wall_s") / MB, "aws s3 cp", aws_mbs,
                   (">=", 1.0, "ratio")),
            Figure(f"upload CPU ({name})", "s/GB", _median(ours, "cpu_s") / gb, "aws s3 cp", aws_cpu,
                   ("<=", 0.5, "ratio")),
        ]
    peak = {name: max(s.rss for s in samples[name]) / MIB for name in ("cdh sweep", "cdh agent")}
    out += [
        Figure("upload peak RSS (cdh sweep)", "MiB", peak["cdh sweep"], "aws s3 cp", aws_rss,
               ("<=", 128, "abs")),
        Figure("agent peak RSS", "MiB", peak["cdh agent"], "aws s3 cp", aws_rss, ("<=", 128, "abs")),
    ]
    return out


def notes(samples: dict[str, list[Upload]], size: int) -> list[str]:
    """Start-up, per-GB CPU without it (both tools alike), and what moto_server spent."""
    gb = size / 1e9
    fixed = {name: _median(samples[f"{name}, 1 KB"], "cpu_s") for name in ("cdh sweep", "aws s3 cp")}
    marginal = {name: (_median(samples[name], "cpu_s") - fixed[name]) / gb for name in fixed}
    small_wall = [_median(samples[f"{name}, 1 KB"], "wall_s") for name in ("cdh sweep", "aws s3 cp")]
    lines = [
        "start-up + one 1 KB zip: CPU cdh sweep {:.2f} s, aws s3 cp {:.2f} s; wall {:.2f} s, {:.2f} s".format(
            *fixed.values(), *small_wall),
        "CPU per GB without that fixed cost: cdh sweep {:.2f} s/GB, aws s3 cp {:.2f} s/GB ({:.2f}x)".format(
            marginal["cdh sweep"], marginal["aws s3 cp"], marginal["cdh sweep"] / marginal["aws s3 cp"]),
    ]
    rm_wall, rm_cpu = _median(samples["rm"], "wall_s"), _median(samples["rm"], "cpu_s")
    lines.append(f"deleting the {size / MB:,.0f} MB zip here (rm after fsync; sweep and the agent delete, "
                 f"aws s3 cp does not): {rm_wall:.2f} s wall, {rm_cpu:.2f} s CPU")
    for name in TOOLS:
        runs = samples[name]
        share = _median(runs, "server_cpu_s") / _median(runs, "wall_s")
        lines.append(f"moto_server during {name}: {_median(runs, 'server_cpu_s') / gb:.2f} CPU-s/GB, "
                     f"{share:.2f} CPUs busy (of 2)")
    return lines
