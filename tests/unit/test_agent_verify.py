"""Verification before delete: size, ETag and CRC32, and S3's composite checksum."""

from __future__ import annotations

import pytest

from cdh import s3
from cdh.agent import body, verify


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
