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
