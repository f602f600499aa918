"""A real S3 HTTP server for tests: moto's standalone server as a child process on loopback.

(Written for the bucket tools; the agent's tests have their own in s3server.py:
the two are meant to be folded into one.) One server per test session; each
test gets its own bucket, so tests do not see each other's objects.
"""

from __future__ import annotations

import itertools
import os
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

START_DEADLINE_S = 30
ACCESS_KEY, SECRET_KEY, REGION = "testing-access-key", "testing-secret-key", "us-east-1"
_bucket_ids = itertools.count()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/moto-api/", timeout=1) as resp:
            return resp.status == 200
    except OSError:
        return False


class MotoServer:
    def __init__(self, log_path: str) -> None:
        self.port = _free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._log = open(log_path, "wb")  # noqa: SIM115 (closed in stop)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_DEADLINE_S
        while not _ready(self.endpoint):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"moto_server did not start on {self.endpoint}; see {log_path}")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()

    def client(self):
        """A synchronous botocore S3 client (for test setup: uploads as the agent makes them)."""
        import botocore.session

        return botocore.session.get_session().create_client(
            "s3", endpoint_url=self.endpoint, region_name=REGION,
            aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY)

    def new_bucket(self) -> str:
        name = f"cdh-test-{os.getpid()}-{next(_bucket_ids)}"
        self.client().create_bucket(Bucket=name)
        return name

    def put_dump(self, bucket: str, key: str, path, info: dict, part_sizes: list[int] | None = None) -> None:
        """Upload a dump zip the way the agent does: metadata from dump-info; multipart if asked."""
        meta = {"namespace": info["namespace"], "pod": info["podname"], "container": info["container"],
                "node": info["node_hostname"], "signal": str(info["signal"]), "exe": info["exe"],
                "uuid": info["uuid"], "timestamp": str(info["timestamp"])}
        data = path.read_bytes()
        s3 = self.client()
        if not part_sizes:
            s3.put_object(Bucket=bucket, Key=key, Body=data, Metadata=meta)
            return
        upload = s3.create_multipart_upload(Bucket=bucket, Key=key, Metadata=meta)["UploadId"]
        parts, pos = [], 0
        for n, size in enumerate([*part_sizes, len(data) - sum(part_sizes)], start=1):
            etag = s3.upload_part(Bucket=bucket, Key=key, UploadId=upload, PartNumber=n,
                                  Body=data[pos:pos + size])["ETag"]
            parts.append({"PartNumber": n, "ETag": etag})
            pos += size
        s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload,
                                     MultipartUpload={"Parts": parts})

    def env(self, bucket: str, **extra: str) -> dict[str, str]:
        """The environment a `cdh` process needs to reach this server (plus ``extra``)."""
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("CDH_", "AWS_", "S3_"))}
        env.update({"CDH_S3_ENDPOINT": self.endpoint, "CDH_S3_BUCKET": bucket, "CDH_S3_REGION": REGION,
                    "CDH_S3_ACCESS_KEY": ACCESS_KEY, "CDH_S3_SECRET_KEY": SECRET_KEY,
                    "CDH_S3_ADDRESSING": "path"})
        env.update(extra)
        return env


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory):
    server = MotoServer(str(tmp_path_factory.mktemp("moto") / "moto.log"))
    try:
        yield server
    finally:
        server.stop()
