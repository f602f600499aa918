"""The S3 store (cdh/store/s3.py): built from a destination, its failures read once."""

from __future__ import annotations

from botocore.exceptions import ClientError

from cdh import destination
from cdh.store import open_store
from cdh.store.s3 import S3Store


def client_error(code: str, status: int, message: str = "") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message},
                        "ResponseMetadata": {"HTTPStatusCode": status}}, "PutObject")


def test_an_s3_destination_gets_the_s3_store():
    store = open_store(destination.Destination("s3", "b", s3=destination.S3Access()))
    assert isinstance(store, S3Store) and store.kind == "s3"


def test_the_store_reads_its_failures_once():
    store = open_store(destination.Destination("s3", "b", s3=destination.S3Access()))
    f = store.failure(client_error("AccessDenied", 403, "Access Denied"))
    assert (f.code, f.message, f.detail, f.permanent, f.status) == (
        "AccessDenied", "Access Denied", "AccessDenied: Access Denied", True, 403)
    assert not store.failure(client_error("SlowDown", 503)).permanent
    assert "CDH_S3_BUCKET" in store.hints[""]


def test_a_server_error_with_encryption_says_what_may_be_behind_it():
    kms = destination.S3Access(sse="aws:kms", sse_kms_key_id="alias/nope")
    store = open_store(destination.Destination("s3", "b", s3=kms))
    hint = store.server_error_hint(store.failure(client_error("InternalError", 500)))
    assert "CDH_S3_SSE=aws:kms with key alias/nope" in hint and "cdh doctor" in hint
    assert store.server_error_hint(store.failure(client_error("AccessDenied", 403))) == ""
    plain = open_store(destination.Destination("s3", "b", s3=destination.S3Access()))
    assert plain.server_error_hint(plain.failure(client_error("InternalError", 500))) == ""


def test_each_kind_imports_only_its_own_cloud():
    """An S3 agent never imports Azure or Google code, and each of those never imports the other's."""
    import subprocess
    import sys

    from tests.support.cli import ROOT

    code = """
import asyncio, sys
from cdh import destination as d
from cdh.store import open_store
kind = sys.argv[1]
dest = {"s3": d.Destination("s3", "b", s3=d.S3Access(endpoint="http://127.0.0.1:9")),
        "azblob": d.Destination("azblob", "b", azure=d.AzureAccess("acct1", "http://127.0.0.1:9/acct1")),
        "gs": d.Destination("gs", "b", gcs=d.GcsAccess(anonymous=True))}[kind]
async def main():
    async with open_store(dest):
        pass
asyncio.run(main())
print(*sorted({m.split(".")[0] for m in sys.modules} & {"azure", "google", "botocore", "aiobotocore"}))
print(*sorted(m for m in sys.modules if m.startswith("cdh.store.")))
"""
    seen = {}
    for kind in ("s3", "azblob", "gs"):
        done = subprocess.run([sys.executable, "-c", code, kind], cwd=ROOT, capture_output=True, text=True,
                              check=True)
        clouds, modules = done.stdout.splitlines()
        seen[kind] = (clouds.split(), {m.removeprefix("cdh.store.") for m in modules.split()})
    assert seen["s3"][0] == ["aiobotocore", "botocore"] and not {"azblob", "gcs", "crc"} & seen["s3"][1]
    assert seen["azblob"][0] == ["azure"] and not {"gcs", "s3"} & seen["azblob"][1]  # Entra ID: no key given
    assert seen["gs"][0] == [] and not {"azblob", "s3"} & seen["gs"][1]  # an emulator: no credentials
