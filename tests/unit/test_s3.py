"""S3 as every part of cdh speaks it (cdh/s3.py): errors read one way, encryption and CRC32 arguments."""

from __future__ import annotations

import zlib

from botocore.exceptions import ClientError, EndpointConnectionError

from cdh import s3
from cdh.config import load


def client_error(code: str, status: int, message: str = "") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message},
                        "ResponseMetadata": {"HTTPStatusCode": status}}, "HeadObject")


def test_errors_are_read_one_way():
    denied = client_error("AccessDenied", 403, "Access Denied")
    assert (s3.error_code(denied), s3.http_status(denied)) == ("AccessDenied", 403)
    assert s3.error_message(denied) == "Access Denied"
    assert s3.describe_error(denied) == "AccessDenied: Access Denied"
    bare = client_error("404", 404)  # a HEAD answers without a body: the status is all there is
    assert s3.describe_error(bare) == "404: HTTP 404"
    down = EndpointConnectionError(endpoint_url="http://x")
    assert (s3.error_code(down), s3.http_status(down)) == ("EndpointConnectionError", None)
    assert s3.describe_error(down).startswith("EndpointConnectionError: Could not connect")
    assert s3.error_message(down) == str(down)


def test_encryption_arguments_follow_the_settings():
    base = {"CDH_HOST_DIR": "/tmp/h"}
    assert s3.encryption_args(load([base])) == {}
    assert s3.encryption_args(load([{**base, "CDH_S3_SSE": "AES256"}])) == {"ServerSideEncryption": "AES256"}
    kms = load([{**base, "CDH_S3_SSE": "aws:kms", "CDH_S3_SSE_KMS_KEY_ID": "k-1"}])
    assert s3.encryption_args(kms) == {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": "k-1"}


def test_a_crc32_as_s3_carries_it():
    assert s3.crc32_b64(zlib.crc32(b"")) == "AAAAAA=="
    assert s3.crc32_b64(0xDEADBEEF) == "3q2+7w=="
