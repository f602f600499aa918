"""``cdh ls`` at fleet scale: one SeaweedFS bucket of 100,000 dumps, listed by cdh and by the peers.

The bucket is filled the way the agent fills it (cdh/keys.py's listing layout, the object metadata
from a dump-info) by server-side copies of one small zip, which ``s5cmd run`` sends 256 at a time:
crashes spread over 30 days, across 100 nodes, 10 namespaces and 500 pods. Then, per round,
interleaved: ``cdh ls`` (every dump, the table), ``cdh ls --since 1h``, ``s5cmd ls`` of the bucket
and ``aws s3 ls --recursive`` (both print one line per object, as ls does). Each is a whole process
(runner.c: wall, its CPU, its peak RSS), start-up included; the server's CPU is read from /proc.
"""

from __future__ import annotations

import os
import random
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

from dev.bench import measure
from dev.bench.report import MIB, Figure
from dev.bench.upload import REPO, cpu_s, peer_binaries
from tests.support.s3server import ACCESS_KEY, REGION, SECRET_KEY
from tests.support.zips import make_zip

DAY = 86400
NAMESPACES = ["shop", "payments", "search", "kube-system", "ingest", "batch", "ml", "auth", "web", "default"]
EXES = ["java", "python3", "envoy", "node", "segfaulter", "redis-server", "postgres", "nginx"]
SIGNALS = [11, 6, 7, 4, 8, 5]
TOOLS = ("cdh ls", "cdh ls --since 1h", "s5cmd ls", "aws s3 ls --recursive")


def crash(i: int, now: float, spread_s: float = 30 * DAY) -> dict:
    """The dump-info of crash ``i`` (reproducible)."""
    rnd = random.Random(i)
    ns = rnd.choice(NAMESPACES)
    pod = f"{ns}-{rnd.randrange(50):02d}-{rnd.getrandbits(20):05x}"
    return {"uuid": str(uuid.UUID(int=rnd.getrandbits(128), version=4)),
            "timestamp": int(now - rnd.random() * spread_s), "namespace": ns, "podname": pod, "hostname": pod,
            "container": rnd.choice(["app", "sidecar", "main"]), "exe": rnd.choice(EXES),
            "signal": rnd.choice(SIGNALS), "node_hostname": f"node-{rnd.randrange(100):03d}",
            "real_pid": rnd.randrange(1, 500),
            "signature": f"1-{rnd.getrandbits(64):016x}" if rnd.random() < 0.9 else None}


def key_and_metadata(info: dict) -> tuple[str, dict[str, str]]:
    """What the agent names and labels this crash's object (cdh/keys.py, the default layout)."""
    from cdh import keys

    name = (f"{info['uuid']}-dump-{info['timestamp']}-{keys.sanitise(info['hostname'])}-"
            f"{keys.sanitise(info['exe'])}-{info['real_pid']}-{info['signal']}.zip")
    node = info["node_hostname"]
    return keys.object_key("", info, node, info["timestamp"], name), keys.metadata(info, node)


class ListBench:
    def __init__(self, work: Path, runner: Path, server, n: int) -> None:
        self.work = work / "ls"
        self.work.mkdir(mode=0o700)
        self.runner, self.server, self.n = runner, server, n
        self.bins = peer_binaries()
        self.bucket = server.create_bucket(f"cdh-bench-ls-{os.getpid()}")
        self.now = time.time()
        t0 = time.monotonic()
        self._populate()
        self.populate_s = time.monotonic() - t0
        self.rows = self._rows()

    def env(self) -> dict[str, str]:
        return {**self.server.cdh_env(self.bucket, PYTHONPATH=str(REPO), AWS_EC2_METADATA_DISABLED="true"),
                "AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
                "AWS_DEFAULT_REGION": REGION, "AWS_CONFIG_FILE": "/dev/null",
                "AWS_SHARED_CREDENTIALS_FILE": "/dev/null", "HOME": str(self.work)}

    def _populate(self) -> None:
        """n server-side copies of one small zip, each with its crash's key and metadata."""
        seed = Path(make_zip(self.work, 8000).path)
        self.server.client().put_object(Bucket=self.bucket, Key="seed.zip", Body=seed.read_bytes())
        commands = self.work / "copies.txt"
        with open(commands, "w") as f:
            for i in range(self.n):
                key, meta = key_and_metadata(crash(i, self.now))
                flags = " ".join(f"--metadata '{k}={v}'" for k, v in meta.items())
                f.write(f"cp --raw --metadata-directive REPLACE --content-type application/zip {flags} "
                        f"s3://{self.bucket}/seed.zip s3://{self.bucket}/{key}\n")
        subprocess.run([self.bins["s5cmd"], "--endpoint-url", self.server.url, "--numworkers", "256",
                        "--log", "error", "run", str(commands)], env=self.env(), check=True,
                       stdout=subprocess.DEVNULL)
        self.server.client().delete_object(Bucket=self.bucket, Key="seed.zip")

    def _rows(self) -> dict[str, int]:
        """Lines each tool prints (checked once, not timed): every dump, and the last hour's."""
        out, times = {}, [crash(i, self.now)["timestamp"] for i in range(self.n)]
        for tool in TOOLS:
            started = time.time()
            r = subprocess.run(self.argv(tool), env=self.env(), capture_output=True, text=True, check=True)
            out[tool] = r.stdout.count("\n")
            if tool == "cdh ls --since 1h":  # the last hour of when it ran: between these two counts
                most = sum(1 for t in times if t >= started - 3600)
                least = sum(1 for t in times if t >= time.time() - 3600)
        if out["cdh ls"] != self.n + 1 or not least <= out["cdh ls --since 1h"] - 1 <= most:
            raise AssertionError(f"cdh ls printed {out}: {self.n} dumps, {least}-{most} in the last hour")
        return out

    def argv(self, tool: str) -> list[str]:
        url = f"s3://{self.bucket}"
        return {"cdh ls": [sys.executable, "-m", "cdh", "ls"],
                "cdh ls --since 1h": [sys.executable, "-m", "cdh", "ls", "--since", "1h"],
                "s5cmd ls": [self.bins["s5cmd"], "--endpoint-url", self.server.url, "ls", f"{url}/*"],
                "aws s3 ls --recursive": [self.bins["aws"], "s3", "ls", "--recursive", url, "--endpoint-url",
                                          self.server.url]}[tool]

    def rounds(self, n: int) -> dict[str, list[Listed]]:
        samples: dict[str, list[Listed]] = {t: [] for t in TOOLS}
        for i in range(n):
            for tool in TOOLS[i % len(TOOLS):] + TOOLS[:i % len(TOOLS)]:
                before = cpu_s(self.server.proc.pid)
                sample = measure.run(self.runner, self.argv(tool), env=self.env())
                samples[tool].append(Listed(sample, cpu_s(self.server.proc.pid) - before))
                print(f"  round {i + 1} {tool:<22} {sample.wall_s:6.2f} s  CPU {sample.cpu_s:5.2f} s  "
                      f"peak RSS {sample.rss / MIB:4.0f} MiB", flush=True)
        return samples


class Listed:
    def __init__(self, sample: measure.Sample, server_cpu_s: float) -> None:
        self.wall_s, self.cpu_s, self.rss, self.server_cpu_s = (sample.wall_s, sample.cpu_s, sample.rss,
                                                                server_cpu_s)

    def as_dict(self) -> dict:
        return {"wall_s": round(self.wall_s, 3), "cpu_s": round(self.cpu_s, 3), "rss": self.rss,
                "server_cpu_s": round(self.server_cpu_s, 3)}


def _median(runs: list[Listed], attr: str) -> float:
    return statistics.median(getattr(r, attr) for r in runs)


def _round_ratio(ours: list[Listed], ref: list[Listed]) -> float:
    return statistics.median(o.wall_s / r.wall_s for o, r in zip(ours, ref, strict=True))


def figures(samples: dict[str, list[Listed]], n: int) -> list[Figure]:
    ls, since = samples["cdh ls"], samples["cdh ls --since 1h"]
    dumps = f"{n // 1000}k dumps" if n >= 1000 else f"{n} dumps"
    s5, aws = samples["s5cmd ls"], samples["aws s3 ls --recursive"]
    return [
        Figure(f"cdh ls, {dumps}", "s", _median(ls, "wall_s"), "s5cmd ls", _median(s5, "wall_s"),
               ("<=", 10, "abs"), ratio=_round_ratio(ls, s5)),
        Figure(f"cdh ls, {dumps}", "s", _median(ls, "wall_s"), "aws s3 ls --recursive",
               _median(aws, "wall_s"), None, ratio=_round_ratio(ls, aws)),
        Figure(f"cdh ls --since 1h, {dumps}", "s", _median(since, "wall_s"), "s5cmd ls",
               _median(s5, "wall_s"), ("<=", 2, "abs"), ratio=_round_ratio(since, s5)),
        Figure(f"cdh ls peak RSS, {dumps}", "MiB", max(r.rss for r in ls) / MIB, "s5cmd ls",
               max(r.rss for r in s5) / MIB),
    ]


def notes(samples: dict[str, list[Listed]], bench: ListBench) -> list[str]:
    printed = ", ".join(f"{t} {n:,}" for t, n in bench.rows.items())
    lines = [f"populated by {bench.n:,} server-side copies (s5cmd run, 256 workers) in "
             f"{bench.populate_s:.0f} s; lines printed: {printed}"]
    for tool, runs in samples.items():
        lines.append(f"{tool:<22} wall {_median(runs, 'wall_s'):6.2f} s  client CPU "
                     f"{_median(runs, 'cpu_s'):5.2f} s  server CPU {_median(runs, 'server_cpu_s'):5.2f} s  "
                     f"peak RSS {max(r.rss for r in runs) / MIB:4.0f} MiB")
    return lines
