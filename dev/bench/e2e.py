"""End to end: a crash → its object in the bucket, against the sum of its parts.

Ours: a running ``cdh agent`` (real sysctls: it installs HOST_DIR/cdc on the runtime and
points kernel.core_pattern at it, under the machine-wide kernel lock) and a process with a
heap of ``--e2e-mib`` MiB that crashes. The clock starts when the crasher says its heap is
full (it segfaults right after) and stops when an object is in the bucket (polled every
50 ms); when the composer finished its zip (its log's ``compose.done``) is recorded too.
Ours runs twice a round, with the stack trace (the default) and with ``CDH_STACK_TRACE=false``:
what the trace adds to crash → object.

The parts: core_pattern pipes the core to a shell helper that does `cat > file`, fsyncs
it and renames it (so its end is visible), then `aws s3 cp` sends that file. Their sum is
the crash → file time plus the aws process's wall time. Rounds alternate the two.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from dev.bench import measure
from dev.bench.inputs import InputError
from dev.bench.report import Figure
from tests.support.crashes import allow_core, compile_program
from tests.support.kernel import exclusive, unavailable
from tests.support.s3server import S3Server

REPO = Path(__file__).resolve().parents[2]
DEADLINE_S = 600
POLL_S = 0.05

HELPER = """#!/bin/sh
# core_pattern helper for the benchmark: the core from stdin to a file, fsync'd, then renamed.
/bin/cat > "{dir}/.core.$1" && /bin/sync "{dir}/.core.$1" && /bin/mv "{dir}/.core.$1" "{dir}/core.$1"
"""


class E2E:
    def __init__(self, work: Path, cache: Path, runner: Path, runtime_dir: str, server: S3Server,
                 aws: str, mib: int) -> None:
        self.work = work
        self.runner = runner
        self.runtime_dir = runtime_dir
        self.server = server
        self.aws = aws
        self.mib = mib
        self.crasher = compile_program("heap", cache)
        self.bucket = server.create_bucket(f"cdh-bench-e2e-{os.getpid()}")
        self.s3 = server.client()
        # Short paths: HOST_DIR is in core_pattern and cdc's shebang (127 bytes before Linux 5.1).
        self.host_dir = Path(tempfile.mkdtemp(prefix="cdh-e2e-", dir="/tmp"))
        self.core_dir = self.host_dir / "cores"
        self.file_dir = work / "e2e-files"
        self.file_dir.mkdir()
        self.helper = self.host_dir / "cat-helper"
        self.helper.write_text(HELPER.format(dir=self.file_dir))
        self.helper.chmod(0o755)

    def run(self, rounds: int) -> dict:
        why = unavailable()
        if why:
            raise InputError(f"e2e crashes a real process under a pipe core_pattern ({why})")
        times: dict[str, list[float]] = {"ours": [], "ours_zip": [], "ours_no_trace": [],
                                         "ours_no_trace_zip": [], "parts_file": [], "parts_aws": []}
        try:
            with exclusive():  # restores core_pattern before HOST_DIR goes
                for r in range(rounds):
                    for suffix in ("", "_no_trace") if r % 2 == 0 else ("_no_trace", ""):
                        total, zip_at = self._ours(stack_trace=not suffix)
                        times["ours" + suffix].append(total)
                        times["ours" + suffix + "_zip"].append(zip_at)
                    file_s, aws_s = self._parts()
                    times["parts_file"].append(file_s)
                    times["parts_aws"].append(aws_s)
        finally:
            shutil.rmtree(self.host_dir, ignore_errors=True)
        return times

    # ------------------------------------------------------------ ours

    def _ours(self, stack_trace: bool = True) -> tuple[float, float]:
        log_path = self.work / "e2e-agent.log"
        log_path.unlink(missing_ok=True)
        env = self.server.cdh_env(self.bucket, PYTHONPATH=str(REPO), CDH_HOST_DIR=str(self.host_dir),
                                  CDH_RUNTIME_DIR=self.runtime_dir, CDH_IGNORE_CRI="true",
                                  CDH_RATE_LIMIT="off",  # one HOST_DIR, the same crasher every round
                                  CDH_METRICS_PORT="0", CDH_NODE_NAME="bench",
                                  CDH_STACK_TRACE="true" if stack_trace else "false",
                                  AWS_EC2_METADATA_DISABLED="true")
        with open(log_path, "ab") as log:
            agent = subprocess.Popen([sys.executable, "-m", "cdh", "agent"], env=env, cwd="/", stdout=log,
                                     stderr=subprocess.STDOUT)
        try:
            _wait(lambda: b'"agent.started"' in log_path.read_bytes(), 60, "the agent to start", agent)
            t0, wall0, proc = self._crash()
            keys = _wait(self._keys, DEADLINE_S, "the object in the bucket", agent)
            total = time.monotonic() - t0
            _wait(lambda: not list(self.core_dir.glob("*.zip")), DEADLINE_S, "the agent to delete the zip",
                  agent)
            proc.wait(30)
        finally:
            agent.send_signal(signal.SIGTERM)
            try:
                agent.wait(60)
            except subprocess.TimeoutExpired:
                agent.kill()
                agent.wait()
        (key,) = keys
        self._check(key)
        self.s3.delete_object(Bucket=self.bucket, Key=key)
        return total, self._composer_done_at() - wall0

    def _check(self, key: str) -> None:
        """The object is a zip whose core is whole (dump-info: not truncated, the heap's size at least)."""
        import io
        import json
        import zipfile

        body = self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        with zipfile.ZipFile(io.BytesIO(body)) as zf:
            info = json.loads(zf.read(next(n for n in zf.namelist() if n.endswith("-dump-info.json"))))
        if info["truncated"] or info["core_size"] < self.mib << 20:
            raise AssertionError(f"{key}: the core is not whole: {info}")

    def _composer_done_at(self) -> float:
        """Wall-clock time of the last ``compose.done`` line in HOST_DIR/composer.log."""
        import calendar
        import json

        lines = (self.host_dir / "composer.log").read_text().splitlines()
        ts = next(json.loads(x)["ts"] for x in reversed(lines) if '"compose.done"' in x)
        whole, millis = ts.rstrip("Z").split(".")
        return calendar.timegm(time.strptime(whole, "%Y-%m-%dT%H:%M:%S")) + int(millis) / 1000

    def _keys(self) -> list[str]:
        return [o["Key"] for o in self.s3.list_objects_v2(Bucket=self.bucket).get("Contents", [])]

    def _crash(self) -> tuple[float, float, subprocess.Popen]:
        """Start the crasher; return when its heap is full (it segfaults next): (monotonic, wall, proc)."""
        proc = subprocess.Popen([str(self.crasher), str(self.mib), "1"], stdout=subprocess.PIPE,
                                preexec_fn=allow_core)
        proc.stdout.readline()
        return time.monotonic(), time.time(), proc

    # ------------------------------------------------------------ the parts

    def _parts(self) -> tuple[float, float]:
        Path("/proc/sys/kernel/core_pattern").write_text(f"|{self.helper} %p")
        t0, _, proc = self._crash()
        core = self.file_dir / f"core.{proc.pid}"
        _wait(core.exists, DEADLINE_S, "the helper's core file")
        file_s = time.monotonic() - t0
        proc.wait(30)
        key = f"parts/{core.name}"
        sample = measure.run(self.runner, [self.aws, "s3", "cp", "--no-progress", "--only-show-errors",
                                           str(core), f"s3://{self.bucket}/{key}",
                                           "--endpoint-url", self.server.url], env=_aws_env(self.work))
        self.s3.head_object(Bucket=self.bucket, Key=key)
        self.s3.delete_object(Bucket=self.bucket, Key=key)
        core.unlink()
        return file_s, sample.wall_s


def _aws_env(home: Path) -> dict[str, str]:
    from tests.support.s3server import ACCESS_KEY, REGION, SECRET_KEY

    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY, "AWS_DEFAULT_REGION": REGION,
            "AWS_EC2_METADATA_DISABLED": "true", "AWS_CONFIG_FILE": "/dev/null",
            "AWS_SHARED_CREDENTIALS_FILE": "/dev/null", "HOME": str(home)}


def _wait(cond, timeout: float, what: str, proc: subprocess.Popen | None = None):
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"the agent exited {proc.returncode} while waiting for {what}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(POLL_S)


def figures(times: dict[str, list[float]]) -> tuple[list[Figure], list[str]]:
    from statistics import median

    ours = median(times["ours"])
    parts = median(f + a for f, a in zip(times["parts_file"], times["parts_aws"], strict=True))
    figs = [Figure("e2e crash→object", "s", ours, "cat helper + aws s3 cp", parts),
            Figure("e2e crash→object, stack trace on", "s", ours, "trace off",
                   median(times["ours_no_trace"]))]
    notes = [f"ours: crash→zip {median(times['ours_zip']):.2f} s (trace off "
             f"{median(times['ours_no_trace_zip']):.2f} s), then upload; parts: crash→file "
             f"{median(times['parts_file']):.2f} s + aws s3 cp {median(times['parts_aws']):.2f} s"]
    return figs, notes
