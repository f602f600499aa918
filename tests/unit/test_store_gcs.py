"""The Cloud Storage store's own rules: what a verified object is, errors read once, times."""

from __future__ import annotations

from cdh import destination
from cdh.store import open_store
from cdh.store.gcs import GcsStore, _mismatch, _rfc3339
from cdh.store.gcsapi import GcsError


def test_an_object_is_verified_by_size_crc32c_and_generation():
    good = {"size": "15", "crc32c": "4waSgw==", "generation": "7"}
    assert _mismatch(good, 15, "4waSgw==", "7") == ""
    assert "bytes" in _mismatch({**good, "size": "3"}, 15, "4waSgw==", "7")  # a truncated session
    assert "CRC-32C" in _mismatch({**good, "crc32c": "AAAAAA=="}, 15, "4waSgw==", "7")
    assert "generation" in _mismatch({**good, "generation": "8"}, 15, "4waSgw==", "7")  # overwritten since
    assert _mismatch(None, 15, "4waSgw==", "7") == "no object"


def test_failures_are_read_once():
    from google.auth import exceptions

    store = open_store(destination.Destination("gs", "cores", gcs=destination.GcsAccess()))
    assert isinstance(store, GcsStore)
    forbidden = store.failure(GcsError(403, "forbidden", "cdh@p.iam does not have storage.objects.create"))
    assert forbidden.permanent and "roles/storage.objectUser" in store.hints[forbidden.code]
    assert not store.failure(GcsError(503, "backendError", "")).permanent
    assert store.failure(exceptions.DefaultCredentialsError("no ADC")).permanent
    assert store.failure(exceptions.RefreshError("invalid_grant")).permanent
    assert not store.failure(exceptions.RefreshError("try again", retryable=True)).permanent
    assert not store.failure(exceptions.TransportError("reset")).permanent


def test_times_as_the_json_api_gives_them():
    assert _rfc3339("2024-01-01T00:00:00.123Z") == 1704067200.123
    assert _rfc3339("") == 0.0
