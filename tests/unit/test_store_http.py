"""One request tried again while its failure is transient (the Azure and Cloud Storage stores)."""

from __future__ import annotations

import aiohttp
import pytest

from cdh.store import http
from cdh.store.azblobapi import AzureError
from cdh.store.body import SourceChanged
from cdh.store.gcsapi import GcsError


@pytest.fixture(autouse=True)
def no_waiting(monkeypatch):
    monkeypatch.setattr(http, "BACKOFF_BASE_S", 0.0)


def failing(*errors):
    calls = []

    async def request():
        calls.append(1)
        if len(calls) <= len(errors):
            raise errors[len(calls) - 1]
        return "ok"
    return request, calls


async def test_transient_failures_are_tried_again_up_to_the_limit():
    request, calls = failing(AzureError(503, "ServerBusy", ""), aiohttp.ServerDisconnectedError())
    assert await http.retried(request) == "ok" and len(calls) == 3
    request, calls = failing(*[GcsError(429, "rateLimitExceeded", "")] * 3)
    with pytest.raises(GcsError):
        await http.retried(request)
    assert len(calls) == http.ATTEMPTS


@pytest.mark.parametrize("error", [AzureError(403, "AuthorizationFailure", ""), GcsError(404, "notFound", ""),
                                   SourceChanged("the file shrank"), ValueError("a bug")])
async def test_other_failures_are_raised_at_once(error):
    request, calls = failing(error)
    with pytest.raises(type(error)):
        await http.retried(request)
    assert len(calls) == 1


def test_what_each_kind_calls_transient_or_permanent():
    assert AzureError(400, "Md5Mismatch", "").retryable  # bytes damaged on the way: send the block again
    assert AzureError(400, "InvalidOperation", "Provided contentMD5 doesn't match.").retryable  # Azurite
    assert not AzureError(400, "InvalidBlockList", "").retryable
    assert AzureError(404, "ContainerNotFound", "").permanent and AzureError(403, "Anything", "").permanent
    assert not AzureError(503, "ServerBusy", "").permanent
    assert GcsError(404, "notFound", "no bucket cores: Not Found").permanent
    assert not GcsError(404, "notFound", "No such object: cores/a.zip").permanent
    assert GcsError(401, "required", "").permanent and GcsError(408, "timeout", "").retryable
