"""The identity a pod gets on AKS, ARO and GKE, through the clouds' own credential libraries, end to end
against loopback stand-ins of their token services (tests/support/tokenstubs.py) and the emulators:

- AKS/ARO Workload Identity: the webhook's AZURE_* variables and projected token file → Entra's token
  exchange → a bearer token Azurite checks (https, ``--oauth basic``);
- an Azure managed identity (the instance metadata service);
- GKE Workload Identity (the metadata server) and a service account key file → Cloud Storage, whose
  every request must carry the token (the fault proxy refuses any other, as Cloud Storage would).

No chain may reach a real cloud: every variable the chains read is set here or removed.
"""

from __future__ import annotations

import pytest

from tests.support.agentproc import base_env, run_sweep
from tests.support.apiserver import make_tls
from tests.support.emulators import Azurite
from tests.support.faultproxy import Rule
from tests.support.require import require
from tests.support.s3server import list_keys, object_sha256, plain_key
from tests.support.tokenstubs import GKE_TOKEN, TENANT, TokenStubs
from tests.support.zips import make_zip, zips_left

CLIENT_ID = "5a1b7c9e-0000-4000-8000-00000000cdh0"
CLOUD_VARS = ("AZURE_", "GOOGLE_", "GCE_", "MSI_", "IDENTITY_", "IMDS_", "CLOUDSDK_")


@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    return make_tls(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def stubs(tls):
    with TokenStubs(tls) as s:
        yield s


@pytest.fixture(scope="module")
def azurite_tls(tls, tmp_path_factory):
    from tests.support.emulators import azurite_binary

    require(azurite_binary(), "azurite-blob is needed (npm install -g azurite@3; .ci/run does)")
    server = Azurite(str(tmp_path_factory.mktemp("azurite-tls") / "azurite.log")).start(
        tls=(str(tls[0]), str(tls[1])))
    yield server
    server.stop()


def clean_env(tmp_path, tls, **settings: str) -> dict[str, str]:
    env = {k: v for k, v in base_env(tmp_path, {}).items() if not k.startswith(CLOUD_VARS)}
    home = tmp_path / "home"  # no gcloud or az CLI state of this machine's user
    home.mkdir(exist_ok=True)
    return {**env, "HOME": str(home), "SSL_CERT_FILE": str(tls[0]), **settings}


def upload_one(tmp_path, env, client, bucket, prefix: str = "") -> None:
    core_dir = tmp_path / "host" / "cores"
    core_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    z = make_zip(core_dir, 6 << 20)
    done = run_sweep(env)
    assert done.returncode == 0, done.stderr + done.stdout
    assert zips_left(core_dir) == []
    (key,) = list_keys(client, bucket)
    assert plain_key(key) == prefix + z.filename  # the prefix, the listing layout's name, the zip's
    assert object_sha256(client, bucket, key) == z.sha256


def azure_env(tmp_path, tls, azurite, container, **identity: str) -> dict[str, str]:
    return clean_env(tmp_path, tls, CDH_DESTINATION=f"azblob://{container.name}",
                     CDH_AZURE_ACCOUNT="devstoreaccount1", CDH_AZURE_ENDPOINT=azurite.blob_endpoint(),
                     CDH_PART_SIZE="5MiB", **identity)


def test_aks_workload_identity(tmp_path, tls, stubs, azurite_tls):
    from tests.support.emulators import S3Shaped

    container = azurite_tls.create()
    token_file = tmp_path / "azure-identity-token"
    token_file.write_text("the-projected-service-account-token")  # what kubelet projects for the pod
    before = len(stubs.requests("entra-token"))
    env = azure_env(tmp_path, tls, azurite_tls, container, AZURE_CLIENT_ID=CLIENT_ID, AZURE_TENANT_ID=TENANT,
                    AZURE_FEDERATED_TOKEN_FILE=str(token_file), AZURE_AUTHORITY_HOST=stubs.https_url)
    upload_one(tmp_path, env, S3Shaped(container), container.name)
    (grant, *_) = stubs.requests("entra-token")[before:]
    assert grant["tenant"] == TENANT and grant["client_id"] == CLIENT_ID
    assert grant["client_assertion"] == "the-projected-service-account-token"
    assert grant["client_assertion_type"] == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
    assert grant["scope"] == "https://storage.azure.com/.default"


def test_an_azure_service_principal(tmp_path, tls, stubs, azurite_tls):
    """ARO without Workload Identity: a service principal's secret in the pod's environment."""
    from tests.support.emulators import S3Shaped

    container = azurite_tls.create()
    before = len(stubs.requests("entra-token"))
    env = azure_env(tmp_path, tls, azurite_tls, container, AZURE_CLIENT_ID=CLIENT_ID, AZURE_TENANT_ID=TENANT,
                    AZURE_CLIENT_SECRET="the-service-principal-secret", AZURE_AUTHORITY_HOST=stubs.https_url)
    upload_one(tmp_path, env, S3Shaped(container), container.name)
    (grant, *_) = stubs.requests("entra-token")[before:]
    assert grant["client_id"] == CLIENT_ID and grant["client_secret"] == "the-service-principal-secret"


def test_azure_managed_identity(tmp_path, tls, stubs, azurite_tls):
    from tests.support.emulators import S3Shaped

    container = azurite_tls.create()
    before = len(stubs.requests("imds-token"))
    env = azure_env(tmp_path, tls, azurite_tls, container, AZURE_POD_IDENTITY_AUTHORITY_HOST=stubs.http_url)
    upload_one(tmp_path, env, S3Shaped(container), container.name)
    asked = stubs.requests("imds-token")[before:]
    assert asked and all(q.get("resource", "").startswith("https://storage.azure.com") for q in asked)


def test_no_azure_identity_is_denied_with_a_hint(tmp_path, tls, stubs, azurite_tls):
    container = azurite_tls.create()
    env = azure_env(tmp_path, tls, azurite_tls, container,
                    AZURE_POD_IDENTITY_AUTHORITY_HOST="http://127.0.0.1:9")  # nothing answers there
    core_dir = tmp_path / "host" / "cores"
    core_dir.mkdir(parents=True, mode=0o700)
    make_zip(core_dir, 1000)
    done = run_sweep(env)
    assert done.returncode == 1
    assert '"upload.denied"' in done.stdout and "managed identity" in done.stdout, done.stdout[-2000:]


@pytest.mark.parametrize("store", ["gs"], indirect=True)
@pytest.mark.parametrize("how", ["gke-metadata-server", "key-file"])
def test_gcs_credentials(tmp_path, tls, stubs, store, how):
    token = GKE_TOKEN if how == "gke-metadata-server" else "ya29.key-file-token"
    # Cloud Storage refuses a request without the token; so does the proxy, in its name.
    refused = store.proxy.add(Rule("error", header=("authorization", rf"^(?!Bearer {token}$)"), status=401,
                                   code="required"))
    env = clean_env(tmp_path, tls, CDH_DESTINATION=f"gs://{store.bucket}", CDH_GCS_ENDPOINT=store.proxy.url)
    if how == "gke-metadata-server":
        host = f"127.0.0.1:{stubs.http_port}"
        env.update(GCE_METADATA_HOST=host, GCE_METADATA_IP=host)
        before = len(stubs.requests("gce-token"))
    else:
        key_file = tmp_path / "sa.json"
        stubs.add_service_account(key_file, "cdh@test-project.iam.gserviceaccount.com", token)
        env.update(CDH_GCS_CREDENTIALS_FILE=str(key_file), GCE_METADATA_HOST="127.0.0.1:9",
                   GCE_METADATA_IP="127.0.0.1:9")  # the metadata server must not be what answers
        before = len(stubs.requests("google-token"))
    upload_one(tmp_path, env, store.client, store.bucket)
    assert refused.hits == 0
    assert stubs.requests("gce-token" if how == "gke-metadata-server" else "google-token")[before:]
