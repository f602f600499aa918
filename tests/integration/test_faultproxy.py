"""The fault proxy itself: transparent by default, and each action does what it says."""

from __future__ import annotations

import botocore.exceptions
import pytest
from botocore.config import Config

from tests.support.faultproxy import Rule
from tests.support.s3server import ACCESS_KEY, REGION, SECRET_KEY


def client(url: str, attempts: int = 1):
    import boto3

    return boto3.client("s3", endpoint_url=url, region_name=REGION, aws_access_key_id=ACCESS_KEY,
                        aws_secret_access_key=SECRET_KEY,
                        config=Config(s3={"addressing_style": "path"}, connect_timeout=2, read_timeout=2,
                                      retries={"mode": "standard", "total_max_attempts": attempts}))


def test_forwards_everything_byte_for_byte(fault_proxy, bucket, s3):
    c = client(fault_proxy.url)
    body = bytes(range(256)) * 4000
    c.put_object(Bucket=bucket, Key="k", Body=body)
    assert c.get_object(Bucket=bucket, Key="k")["Body"].read() == body
    assert c.head_object(Bucket=bucket, Key="k")["ContentLength"] == len(body)
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == body
    assert fault_proxy.count("PUT") == 1


def test_error_rule_answers_s3_errors_a_number_of_times(fault_proxy, bucket):
    rule = fault_proxy.add(Rule("error", method="PUT", status=503, code="SlowDown", times=2))
    c = client(fault_proxy.url)
    with pytest.raises(botocore.exceptions.ClientError, match="SlowDown"):
        c.put_object(Bucket=bucket, Key="k", Body=b"x")
    c2 = client(fault_proxy.url, attempts=3)
    c2.put_object(Bucket=bucket, Key="k", Body=b"x")  # one more error, then through
    assert rule.hits == 2


def test_reset_rule_cuts_the_connection_mid_body(fault_proxy, bucket, s3):
    rule = fault_proxy.add(Rule("reset", method="PUT", times=1))
    c = client(fault_proxy.url)
    cut = (botocore.exceptions.ConnectionClosedError, botocore.exceptions.EndpointConnectionError)
    with pytest.raises(cut):
        c.put_object(Bucket=bucket, Key="k", Body=b"y" * 100_000)
    assert rule.hits == 1
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket)


def test_stall_rule_holds_until_released(fault_proxy, bucket):
    fault_proxy.add(Rule("stall", method="HEAD", times=1))
    c = client(fault_proxy.url)
    with pytest.raises(botocore.exceptions.ReadTimeoutError):
        c.head_bucket(Bucket=bucket)
    fault_proxy.clear()
    c.head_bucket(Bucket=bucket)
