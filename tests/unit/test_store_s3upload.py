"""Verification before delete on S3: size, ETag and CRC32, and S3's composite checksum."""

from __future__ import annotations

import pytest

from cdh.store import VerifyError, body, s3upload
from cdh.store.s3 import crc32_b64


def test_verify_checks_size_etag_and_checksum():
    data = b"x" * 100
    exp = s3upload.Expected(size=100, etag='"e"', crc32=crc32_b64(body.crc32(data)))
    assert s3upload.check({"ContentLength": 100, "ETag": '"e"'}, exp) == "size+etag"
    with_crc = {"ContentLength": 100, "ETag": '"e"', "ChecksumCRC32": exp.crc32}
    assert s3upload.check(with_crc, exp) == "size+etag+crc32"
    for bad in ({"ContentLength": 99, "ETag": '"e"'}, {"ContentLength": 100, "ETag": '"f"'},
                {"ContentLength": 100, "ETag": '"e"', "ChecksumCRC32": "AAAAAA=="}):
        with pytest.raises(VerifyError):
            s3upload.check(bad, exp)


def test_composite_checksum_matches_s3s_multipart_form():
    a, b = b"a" * 10, b"b" * 10
    comp = s3upload.composite([body.crc32(a), body.crc32(b)])
    exp = s3upload.Expected(size=20, etag="", crc32=comp)
    assert s3upload.check({"ContentLength": 20, "ChecksumCRC32": comp + "-2"}, exp)
