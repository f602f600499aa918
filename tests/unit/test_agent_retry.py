"""Retry policy: per-file backoff with jitter, and which failures no retry fixes."""

from __future__ import annotations

import random

from cdh.agent import retry


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
