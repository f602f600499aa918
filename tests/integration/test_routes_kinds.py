"""Routes to the other kinds of store: two teams' cores each in its own Azure storage account (Azurite
with one account per team: it checks every request's Shared Key signature, so one team's key is
refused in the other's account), one team's in a Cloud Storage bucket (fake-gcs-server: it checks no
credential, so only where the cores go shows there), the rest in the main S3 bucket; one route
encrypts to its team's age recipient. Read back with each service's own client, never cdh's."""

from __future__ import annotations

import base64
import json
import os
import textwrap
from pathlib import Path

import pytest

from cdh import agecrypt, keys
from tests.support.agekeys import keypair
from tests.support.agentproc import SMALL_PARTS, base_env, run_sweep, wait_until
from tests.support.cli import run_cdh
from tests.support.emulators import Azurite, azurite_binary
from tests.support.projected import Volume
from tests.support.require import require
from tests.support.s3server import list_keys, plain_key
from tests.support.tenants import age_decrypt
from tests.support.zips import make_zip

ACCOUNTS = {"teamc": base64.b64encode(b"team C's own account key, 32 B.").decode(),
            "teamd": base64.b64encode(b"team D's own account key, 32 B.").decode()}


@pytest.fixture(scope="module")
def accounts(tmp_path_factory, s3_kind):
    """Azurite with one storage account per team, each with a ``cores`` container; a fresh one for
    each S3 server kind (the tests count what the containers hold)."""
    require(azurite_binary() is not None, "azurite-blob (npm azurite; .ci/run installs it)")
    server = Azurite(str(tmp_path_factory.mktemp("azurite") / "azurite.log")).start(accounts=ACCOUNTS)
    try:
        for account in ACCOUNTS:
            server.service(account).create_container("cores")
        yield server
    finally:
        server.stop()


def secret(tmp_path, name: str, files: dict[str, str]):
    d = tmp_path / f"secret-{name}"
    Volume(d, 0o400).update(files)
    return d


def test_each_team_in_its_own_account_or_bucket_of_any_kind(accounts, fake_gcs, s3_server, bucket, tmp_path,
                                                            start_agent, core_dir):
    ident_c, rcpt_c = keypair(tmp_path, "team-c")
    ident_d, _ = keypair(tmp_path, "team-d")
    gcs = fake_gcs.create()
    c_secret = secret(tmp_path, "team-c", {"connection-string": accounts.connection_string(account="teamc")
                                           + "\n"})
    d_secret = secret(tmp_path, "team-d", {"account-key": ACCOUNTS["teamd"] + "\n"})
    routes = tmp_path / "routes.yaml"
    routes.write_text(textwrap.dedent(f"""\
        routes:
          - name: team-c
            namespaces: [team-c]
            destination: azblob://cores/c/
            credentials: {c_secret}
            recipients: [{rcpt_c}]
            key_prefix: ""
          - name: team-d
            namespaces: [team-d]
            destination: azblob://cores
            account: teamd
            endpoint: {accounts.blob_endpoint(account="teamd")}
            credentials: {d_secret}
            key_prefix: "{{namespace}}/"
          - name: team-g
            namespaces: ["team-g*"]
            destination: gs://{gcs.name}/g/
            key_prefix: ""
        """))
    env = base_env(tmp_path, s3_server.agent_env(bucket), **SMALL_PARTS, CDH_ROUTES_FILE=str(routes),
                   CDH_S3_KEY_PREFIX="", STORAGE_EMULATOR_HOST=fake_gcs.url)
    big_c = make_zip(core_dir, 7 << 20, namespace="team-c", podname="api-1")  # several blocks
    plain_c = Path(big_c.path).read_bytes()
    d = make_zip(core_dir, 4096, namespace="team-d", podname="web-1")
    g = make_zip(core_dir, 4096, namespace="team-g-dev", podname="job-1")
    shop = make_zip(core_dir, 4096, namespace="shop", podname="cart-1")
    agent = start_agent(env)
    done = agent.wait_event("upload.done", count=4, timeout=120)
    assert {(e["file"].rsplit("/", 1)[-1], e["route"], e["kind"]) for e in done} == {
        (big_c.filename, "team-c", "azblob"), (d.filename, "team-d", "azblob"), (g.filename, "team-g", "gs"),
        (shop.filename, "main", "s3")}
    wait_until(lambda: not os.listdir(core_dir), what="CORE_DIR empty: every zip and staged copy gone")
    assert {e["route"] for e in agent.events("storage.ok")} == {"main", "team-c", "team-d", "team-g"}

    # Each account, bucket and container holds its team's cores and nothing else.
    in_c, in_d = (accounts.service(a).get_container_client("cores") for a in ACCOUNTS)
    # (plain_key: the prefix and the zip's name, without the listing layout's day and facts)
    (c_name,) = [b.name for b in in_c.list_blobs()]
    assert plain_key(c_name) == f"c/{big_c.filename}.age"
    assert [plain_key(b.name) for b in in_d.list_blobs()] == [f"team-d/{d.filename}"]
    (g_name,) = gcs.names()
    assert plain_key(g_name) == f"g/{g.filename}"
    assert [plain_key(k) for k in list_keys(s3_server.client(), bucket)] == [shop.filename]
    meta = in_c.get_blob_client(c_name).get_blob_properties().metadata
    assert meta[keys.ENCRYPTION] == "age" and meta[keys.RECIPIENTS] == agecrypt.fingerprint(rcpt_c)
    assert meta[keys.ROUTE] == "team-c" and meta["namespace"] == "team-c" and meta["pod"] == "api-1"
    assert gcs.metadata(g_name)[keys.ROUTE] == "team-g"

    # Azurite keeps each team's key to its own account.
    from azure.core.exceptions import HttpResponseError

    cross = accounts.service("teamd", ACCOUNTS["teamc"]).get_container_client("cores")
    with pytest.raises(HttpResponseError) as refused:
        list(cross.list_blobs())
    assert refused.value.status_code == 403

    # Team C's blob opens with team C's identity only (age's CLI), byte for byte the zip.
    body = in_c.download_blob(c_name).readall()
    assert body.startswith(b"age-encryption.org/v1\n") and age_decrypt(ident_c, body) == plain_c
    assert age_decrypt(ident_d, body) is None

    # cdh get, as team C runs it with its own connection string: without its identity, then with it.
    team_c = {"CDH_DESTINATION": "azblob://cores/c/", "CDH_S3_KEY_PREFIX": "",
              "CDH_AZURE_CONNECTION_STRING": accounts.connection_string(account="teamc")}
    out = tmp_path / "got"
    got = run_cdh("get", big_c.info["uuid"], "-o", str(out), env=team_c)
    assert got.returncode != 0 and agecrypt.fingerprint(rcpt_c) in got.stderr and "route team-c" in got.stderr
    got = run_cdh("get", big_c.info["uuid"], "-o", str(out), "-i", ident_c, "--keep-zip", env=team_c)
    assert got.returncode == 0, got.stderr
    assert (out / big_c.filename).read_bytes() == plain_c

    # cdh doctor checks each route's store with that route's own credential: team D's key pointed at
    # team C's account is refused there, and doctor names the route.
    checks = {c["name"]: c for c in json.loads(run_cdh("doctor", "--json", env=env).stdout)["checks"]}
    assert all(checks[f"bucket {r}"]["status"] == "pass" for r in ("team-c", "team-d", "team-g")), checks
    routes.write_text(routes.read_text().replace('account: teamd\n', 'account: teamc\n').replace(
        accounts.blob_endpoint(account="teamd"), accounts.blob_endpoint(account="teamc")))
    checks = {c["name"]: c for c in json.loads(run_cdh("doctor", "--json", env=env).stdout)["checks"]}
    assert checks["bucket team-d"]["status"] == "fail" and "route team-d" in checks["bucket team-d"]["hint"]
    said = agent.text()
    assert all(key not in said for key in ACCOUNTS.values())


def test_a_gs_routes_own_key_file_signs_its_requests(fake_gcs, s3_server, bucket, tmp_path, core_dir):
    """Cloud Storage, as the real one does, refuses a request without the route's token (the fault proxy
    in front of fake-gcs-server, which checks none); the platform's own credentials (the metadata
    server, which would answer too) are not what the route uses."""
    from tests.support.faultproxy import FaultProxy, Rule
    from tests.support.tokenstubs import GKE_TOKEN, TokenStubs

    gcs = fake_gcs.create()
    with TokenStubs() as stubs, FaultProxy(fake_gcs.url, "gs") as proxy:
        key = tmp_path / "sa.json"
        stubs.add_service_account(key, "team-h@test-project.iam.gserviceaccount.com", "ya29.team-h")
        creds = secret(tmp_path, "team-h", {"key.json": key.read_text()})
        refused = proxy.add(Rule("error", header=("authorization", r"^(?!Bearer ya29\.team-h$)"), status=401,
                                 code="required"))
        routes = tmp_path / "routes.yaml"
        routes.write_text(f"routes:\n  - {{name: team-h, namespaces: [team-h], destination: 'gs://{gcs.name}',"
                          f" endpoint: '{proxy.url}', credentials: {creds}, key_prefix: ''}}\n")
        metadata_server = f"127.0.0.1:{stubs.http_port}"  # the platform's chain: it would give GKE_TOKEN
        env = base_env(tmp_path, s3_server.agent_env(bucket), CDH_ROUTES_FILE=str(routes),
                       GCE_METADATA_HOST=metadata_server, GCE_METADATA_IP=metadata_server)
        h = make_zip(core_dir, 4096, namespace="team-h", podname="api-1")
        done = run_sweep(env)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        assert [plain_key(n) for n in gcs.names()] == [h.filename] and refused.hits == 0
        assert stubs.requests("google-token") and not stubs.requests("gce-token")
        assert GKE_TOKEN not in done.stdout and "ya29.team-h" not in done.stdout + done.stderr
