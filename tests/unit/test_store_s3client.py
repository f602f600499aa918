"""S3 as the store speaks it (cdh/store/s3client.py): errors read one way, which no retry fixes,
encryption and CRC32 arguments."""

from __future__ import annotations

import zlib

from botocore.exceptions import ClientError, EndpointConnectionError

from cdh import destination
from cdh.config import load
from cdh.store import s3client as s3


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


def test_permanent_errors_are_recognised():
    for code in ("AccessDenied", "NoSuchBucket", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
        assert s3.is_permanent(client_error(code, 403))
    assert s3.is_permanent(client_error("403", 403))
    assert not s3.is_permanent(client_error("SlowDown", 503))
    assert not s3.is_permanent(client_error("InternalError", 500))
    assert not s3.is_permanent(EndpointConnectionError(endpoint_url="http://x"))


def access(**env) -> destination.S3Access:
    s3_access = destination.from_settings(load([{"CDH_HOST_DIR": "/tmp/h", **env}])).s3
    assert s3_access is not None
    return s3_access


def test_encryption_arguments_follow_the_settings():
    assert s3.encryption_args(access()) == {}
    assert s3.encryption_args(access(CDH_S3_SSE="AES256")) == {"ServerSideEncryption": "AES256"}
    kms = access(CDH_S3_SSE="aws:kms", CDH_S3_SSE_KMS_KEY_ID="k-1")
    assert s3.encryption_args(kms) == {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": "k-1"}


def test_a_crc32_as_s3_carries_it():
    assert s3.crc32_b64(zlib.crc32(b"")) == "AAAAAA=="
    assert s3.crc32_b64(0xDEADBEEF) == "3q2+7w=="


async def test_a_client_botocore_refuses_is_a_config_error():
    """Settings check what they can; what botocore still refuses is one line (exit 3), not a traceback."""
    import pytest

    from cdh.config import ConfigError

    with pytest.raises(ConfigError, match="the S3 client cannot be built from region 'not a region!'"):
        async with s3.create_client(destination.S3Access(region="not a region!")):
            pass
    async with s3.create_client(destination.S3Access(region="eu-west-1")) as client:
        assert client.meta.region_name == "eu-west-1"
