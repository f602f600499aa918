"""Part sizing, retry policy, key rendering and verification rules."""

from __future__ import annotations

import random

import pytest

from cdh import keys, s3
from cdh.agent import body, retry, upload, verify
from cdh.agent.parts import MAX_PART_BYTES, MAX_PARTS, MiB, PartSizer, TiB
from cdh.config import load


def test_part_size_grows_so_a_tebibyte_fits():
    sizer = PartSizer(16 * MiB)
    assert sizer.part_size(1 * MiB) == 16 * MiB
    size = sizer.part_size(TiB)
    assert size % MiB == 0 and TiB / size <= MAX_PARTS
    parts = sizer.parts(TiB)
    assert len(parts) <= MAX_PARTS
    assert sum(p.length for p in parts) == TiB
    assert parts[-1].offset + parts[-1].length == TiB


def test_parts_cover_the_file_exactly():
    parts = PartSizer(5 * MiB).parts(12 * MiB + 7)
    assert [(p.number, p.offset, p.length) for p in parts] == [
        (1, 0, 5 * MiB), (2, 5 * MiB, 5 * MiB), (3, 10 * MiB, 2 * MiB + 7)]


def test_too_big_for_s3_is_refused():
    with pytest.raises(ValueError, match="10000 parts"):
        PartSizer(16 * MiB).part_size(MAX_PARTS * MAX_PART_BYTES + 1)
    with pytest.raises(ValueError):
        PartSizer(1 * MiB)


def test_backoff_grows_with_jitter_and_caps():
    b = retry.Backoff(2, 60, rng=random.Random(1))
    delays = [b.delay("f") for _ in range(10)]
    assert all(2 <= d <= 60 for d in delays)
    assert delays[0] <= 2 and delays[-1] >= 30
    assert retry.Backoff(2, 60).delay("g", permanent=True) >= 54
    b.forget("f")
    assert b.delay("f") <= 2


def test_permanent_errors_are_recognised():
    from botocore.exceptions import ClientError, EndpointConnectionError

    def client_error(code, status=403):
        return ClientError({"Error": {"Code": code}, "ResponseMetadata": {"HTTPStatusCode": status}},
                           "PutObject")

    for code in ("AccessDenied", "NoSuchBucket", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
        assert retry.is_permanent(client_error(code))
    assert retry.is_permanent(client_error("403"))
    assert not retry.is_permanent(client_error("SlowDown", 503))
    assert not retry.is_permanent(client_error("InternalError", 500))
    assert not retry.is_permanent(EndpointConnectionError(endpoint_url="http://x"))


def _settings(**env):
    return load([{"CDH_HOST_DIR": "/tmp/h", "CDH_NODE_NAME": "node-1", **env}])


def test_key_prefix_is_rendered_from_dump_info_and_sanitised():
    s = _settings(CDH_S3_KEY_PREFIX="{node}/{namespace}/{pod}/{date}/{hour}/")
    info = {"namespace": "../../etc", "podname": "web/1", "timestamp": 1700000000}
    key = upload.object_key(s, info, "a.zip", mtime=0)
    assert key == "node-1/.._.._etc/web_1/2023-11-14/22/a.zip"
    assert ".." not in key.split("/")
    assert upload.object_key(_settings(), info, "a.zip", 0) == "a.zip"
    assert upload.object_key(_settings(CDH_S3_KEY_PREFIX="{container}-"), {}, "a.zip", 0) == "unknown-a.zip"


def test_metadata_names_are_the_shared_ones_and_ascii():
    s = _settings()
    md = upload.object_args(s, {"namespace": "shop", "podname": "web", "container": None, "signal": 11,
                                "exe": "crash\u00e9\n", "uuid": "u", "timestamp": 1700000000})["Metadata"]
    assert set(md) == {"namespace", "pod", "node", "signal", "exe", "uuid", "timestamp"}
    assert set(md) <= set(keys.METADATA_NAMES)
    assert md["exe"] == "crash\\xe9?" and md["signal"] == "11" and md["node"] == "node-1"


def test_verify_checks_size_etag_and_checksum():
    data = b"x" * 100
    exp = verify.Expected(size=100, etag='"e"', crc32=s3.crc32_b64(body.crc32(data)))
    assert verify.check({"ContentLength": 100, "ETag": '"e"'}, exp) == "size+etag"
    with_crc = {"ContentLength": 100, "ETag": '"e"', "ChecksumCRC32": exp.crc32}
    assert verify.check(with_crc, exp) == "size+etag+crc32"
    for bad in ({"ContentLength": 99, "ETag": '"e"'}, {"ContentLength": 100, "ETag": '"f"'},
                {"ContentLength": 100, "ETag": '"e"', "ChecksumCRC32": "AAAAAA=="}):
        with pytest.raises(verify.VerifyError):
            verify.check(bad, exp)


def test_composite_checksum_matches_s3s_multipart_form():
    a, b = b"a" * 10, b"b" * 10
    comp = verify.composite([body.crc32(a), body.crc32(b)])
    exp = verify.Expected(size=20, etag="", crc32=comp)
    assert verify.check({"ContentLength": 20, "ChecksumCRC32": comp + "-2"}, exp)
