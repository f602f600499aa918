"""A real S3 HTTP server process (moto's ``moto_server``) on a free loopback port.

One process per test session (see ``tests/support/fixtures.py``); each test
gets its own bucket. Talk to it with :meth:`S3Server.client` (boto3, sync) or
point cdh at :attr:`S3Server.url`.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
import uuid

ACCESS_KEY = "AKIACDHTESTKEY000001"
SECRET_KEY = "cdh-test-secret-0123456789abcdefghijkl"
REGION = "us-east-1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _moto_server() -> list[str]:
    exe = shutil.which("moto_server") or os.path.join(os.path.dirname(sys.executable), "moto_server")
    if os.path.exists(exe):
        return [exe]
    return [sys.executable, "-m", "moto.server"]


class S3Server:
    def __init__(self, log_path: str, env: dict | None = None, tls: tuple[str, str] | None = None,
                 host: str = "127.0.0.1", netns=None) -> None:
        """``tls``: (certificate, key) PEM files: serve HTTPS with them (the certificate is its own CA).
        ``netns`` (tests/support/netns.py): serve inside that network namespace, on ``host`` there."""
        self.log_path = log_path
        self.env = env or {}
        self.tls = tls
        self.host = host
        self.netns = netns
        self.port = 0
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}"

    def start(self, timeout: float = 30.0, port: int | None = None) -> S3Server:
        """``port``: this one (a restart where clients know the old address), else a free one."""
        self.port = port or free_port()
        log = open(self.log_path, "ab")  # noqa: SIM115 - owned by the process
        tls_args = ["-c", self.tls[0], "-k", self.tls[1]] if self.tls else []
        argv = [*_moto_server(), "-H", self.host, "-p", str(self.port), *tls_args]
        self.proc = subprocess.Popen(argv if self.netns is None else self.netns.command(argv),
                                     stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **self.env})
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"moto_server exited with {self.proc.returncode}; see {self.log_path}")
            try:
                self._call(self._answers)
                return self
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"moto_server did not answer within {timeout}s; see {self.log_path}")

    def _answers(self) -> None:
        context = ssl.create_default_context(cafile=self.tls[0]) if self.tls else None
        urllib.request.urlopen(self.url + "/", timeout=1, context=context).close()

    def _call(self, fn, *args, **kw):
        """``fn`` where the server is reachable: here, or in its network namespace."""
        return fn(*args, **kw) if self.netns is None else self.netns.call(fn, *args, **kw)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def client(self, url: str | None = None):
        import boto3
        from botocore.config import Config

        return boto3.client("s3", endpoint_url=url or self.url, region_name=REGION,
                            aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY,
                            verify=self.tls[0] if self.tls else None,
                            config=Config(s3={"addressing_style": "path"},
                                          retries={"mode": "standard", "max_attempts": 2}))

    def create_bucket(self, name: str | None = None) -> str:
        name = name or f"cdh-test-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        return name

    def cdh_env(self, bucket: str, **extra: str) -> dict[str, str]:
        """A whole environment for a `cdh` process: this one's, minus any S3/cdh settings, plus these."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("CDH_", "AWS_", "S3_"))}
        return {**env, **self.agent_env(bucket), **extra}

    def agent_env(self, bucket: str, url: str | None = None) -> dict[str, str]:
        """The settings that point cdh at this server."""
        return {"CDH_S3_ENDPOINT": url or self.url, "CDH_S3_BUCKET": bucket, "CDH_S3_REGION": REGION,
                "CDH_S3_ACCESS_KEY": ACCESS_KEY, "CDH_S3_SECRET_KEY": SECRET_KEY,
                "CDH_S3_ADDRESSING": "path"}


def put_dump(client, bucket: str, key: str, path, info: dict, part_sizes: list[int] | None = None) -> None:
    """Upload a dump zip with the metadata the agent writes (cdh/keys.py); multipart if asked."""
    from cdh import keys

    meta = keys.metadata(info, info.get("node_hostname"))
    data = path.read_bytes()
    if not part_sizes:
        client.put_object(Bucket=bucket, Key=key, Body=data, Metadata=meta)
        return
    upload = client.create_multipart_upload(Bucket=bucket, Key=key, Metadata=meta)["UploadId"]
    parts, pos = [], 0
    for n, size in enumerate([*part_sizes, len(data) - sum(part_sizes)], start=1):
        etag = client.upload_part(Bucket=bucket, Key=key, UploadId=upload, PartNumber=n,
                                  Body=data[pos:pos + size])["ETag"]
        parts.append({"PartNumber": n, "ETag": etag})
        pos += size
    client.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload,
                                     MultipartUpload={"Parts": parts})


def object_sha256(client, bucket: str, key: str) -> str:
    body = client.get_object(Bucket=bucket, Key=key)["Body"]
    h = hashlib.sha256()
    for chunk in iter(lambda: body.read(1 << 20), b""):
        h.update(chunk)
    return h.hexdigest()


def list_keys(client, bucket: str) -> list[str]:
    keys: list[str] = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        keys += [o["Key"] for o in page.get("Contents", [])]
    return keys


def pending_uploads(client, bucket: str) -> list[dict]:
    return client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
