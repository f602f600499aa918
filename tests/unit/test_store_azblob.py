"""The Azure store's own rules: block ids, what a verified blob is, errors read once, Shared Key."""

from __future__ import annotations

import base64
import urllib.parse

import pytest
from multidict import CIMultiDict
from yarl import URL

from cdh import destination
from cdh.store import VerifyError, open_store
from cdh.store.azblob import AzureBlobStore, check
from cdh.store.azblobapi import AzureError, SharedKey, block_id


def test_block_ids_have_one_length_and_need_no_escaping():
    ids = [block_id(nonce, n) for nonce in ("0", "deadbeef", "ffffffff") for n in (0, 1, 49_999, 9_999_999)]
    assert len({len(i) for i in ids}) == 1
    assert all(urllib.parse.quote(i, safe="") == i for i in ids)  # no '+', '/', '='
    assert base64.b64decode(block_id("deadbeef", 42)) == b"deadbeef0000042"
    assert block_id("a", 1) != block_id("b", 1)  # another attempt, other ids


def test_a_blob_is_verified_by_size_etag_and_its_committed_blocks():
    sent = [("id1", 10), ("id2", 5)]
    props = CIMultiDict({"Content-Length": "15", "ETag": '"0x1"', "x-ms-blob-type": "BlockBlob"})
    assert check(props, '"0x1"', 15, sent, sent, "crc64") == "size+etag+blocks+crc64"
    for bad_props, etag, blocks in ((CIMultiDict({**props, "Content-Length": "14"}), '"0x1"', sent),
                                    (props, '"0x2"', sent), (props, '"0x1"', sent[:1]),
                                    (props, '"0x1"', [("id1", 10), ("other", 5)]), (None, '"0x1"', sent)):
        with pytest.raises(VerifyError):
            check(bad_props, etag, 15, blocks, sent, "crc64")


def test_failures_are_read_once():
    store = open_store(destination.Destination("azblob", "cores", azure=destination.AzureAccess(
        "acct1", "https://acct1.blob.core.windows.net")))
    assert isinstance(store, AzureBlobStore)
    denied = store.failure(AzureError(403, "AuthorizationPermissionMismatch", "This request is not allowed"))
    assert denied.permanent and denied.code == "AuthorizationPermissionMismatch"
    assert "Storage Blob Data Contributor" in store.hints[denied.code]
    busy = store.failure(AzureError(503, "ServerBusy", "Ingress is over the account limit."))
    assert not busy.permanent and busy.status == 503


def test_shared_key_signs_what_is_sent_with_whitespace_unfolded():
    key = base64.b64encode(b"k" * 32).decode()
    url = URL("http://127.0.0.1:10000/devstoreaccount1/cores/a.zip?comp=block&blockid=QQ", encoded=True)
    a = {"x-ms-date": "Mon, 01 Jan 2024 00:00:00 GMT", "x-ms-meta-exe": "a  b", "Content-Length": "5"}
    b = {**a, "x-ms-meta-exe": " a b "}
    SharedKey("devstoreaccount1", key).sign("PUT", url, a)
    SharedKey("devstoreaccount1", key).sign("PUT", url, b)
    assert a["Authorization"] == b["Authorization"]
    assert a["Authorization"].startswith("SharedKey devstoreaccount1:")
    c = {**a}
    del c["Authorization"]
    SharedKey("devstoreaccount1", key).sign("PUT", URL(str(url).replace("QQ", "QR"), encoded=True), c)
    assert c["Authorization"] != a["Authorization"]
