"""What the Azure and Cloud Storage stores share: their aiohttp session, their errors, and the retry of
one request (botocore does both for S3).

- :func:`session`: one connection pool per store, a timeout on connecting and on each read (a
  stalled transfer fails; a long one that keeps moving does not), TLS checked against the CA bundle
  of ``SSL_CERT_FILE``, else certifi's (the image has no system CA store), else the system's.
- :class:`ServiceError`: the service answered with an error; its status, code and message (never a
  request header), and whether a retry may help.
- :func:`retried`: a request tried up to :data:`ATTEMPTS` times while its failure is transient
  (botocore standard mode's shape: full jitter, exponential, capped). A request body is a
  :class:`~cdh.store.body.FileSlice`, which every send starts from its first byte.
- :class:`HttpStore`: the base of both stores: the session and the API client on it, how a failure
  is read, an object's bytes streamed.
"""

from __future__ import annotations

import asyncio
import os
import random
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import aiohttp

from cdh.store import CHUNK, Failure, Store

T = TypeVar("T")
ATTEMPTS = 3
BACKOFF_BASE_S = 0.5
BACKOFF_MAX_S = 20.0
CONNECT_TIMEOUT_S = 10.0
READ_TIMEOUT_S = 120.0
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


class ServiceError(Exception):
    """An error answer. Subclasses (one per kind) say which are permanent and which a retry helps."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}" if message else f"{status} {code}")
        self.status, self.code, self.message = status, code, message

    @property
    def permanent(self) -> bool:
        return self.status in (401, 403)

    @property
    def retryable(self) -> bool:
        return self.status in RETRY_STATUSES


def transient(err: BaseException) -> bool:
    """May the same request succeed if sent again now?"""
    if isinstance(err, ServiceError):
        return err.retryable
    from cdh.store.body import SourceChanged

    if isinstance(err, SourceChanged):
        return False  # the file shrank: no retry makes it whole
    return isinstance(err, aiohttp.ClientError | asyncio.TimeoutError | ConnectionError)


async def retried(request: Callable[[], Awaitable[T]], attempts: int = ATTEMPTS,
                  rng: random.Random | None = None) -> T:
    """``await request()``, again after a transient failure, at most ``attempts`` times in all."""
    rng = rng or random
    for attempt in range(1, attempts + 1):
        try:
            return await request()
        except Exception as err:
            if attempt == attempts or not transient(err):
                raise
            await asyncio.sleep(rng.uniform(0, min(BACKOFF_MAX_S, BACKOFF_BASE_S * 2 ** attempt)))
    raise AssertionError("unreachable")


def ssl_context() -> ssl.SSLContext:
    cafile = os.environ.get("SSL_CERT_FILE") or None
    if cafile is None:
        try:
            import certifi  # comes with requests, which the clouds' credential libraries use

            cafile = certifi.where()
        except ImportError:
            pass
    return ssl.create_default_context(cafile=cafile)


def session(pool_size: int) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(limit=pool_size, ssl=ssl_context())
    timeout = aiohttp.ClientTimeout(total=None, connect=CONNECT_TIMEOUT_S, sock_read=READ_TIMEOUT_S)
    # auto_decompress off: a body is what the service stored, checked byte for byte.
    return aiohttp.ClientSession(connector=connector, timeout=timeout, auto_decompress=False,
                                 raise_for_status=False)


class HttpStore(Store):
    """What the Azure and Cloud Storage stores share: one session, the service's API client on it
    (:meth:`_api`), and how a failure is read (:class:`ServiceError`, else the credential library's)."""

    def __init__(self, destination, pool_size: int = 10, log=None) -> None:
        super().__init__(destination, pool_size, log)
        self.session: Any = None
        self.api: Any = None

    def _api(self, session: aiohttp.ClientSession) -> Any:
        raise NotImplementedError

    async def open(self) -> None:
        self.session = session(self.pool_size)
        self.api = self._api(self.session)

    async def close(self) -> None:
        if self.api is not None:
            await self.api.close()
        if self.session is not None:
            await self.session.close()

    def failure(self, err: BaseException) -> Failure:
        if isinstance(err, ServiceError):
            return Failure(err.code, err.message or err.code, f"{err.code}: {err.message or err.status}",
                           err.permanent, err.status)
        name = type(err).__name__
        return Failure(name, str(err) or name, f"{name}: {err}", self._credential_error(err))

    def _credential_error(self, err: BaseException) -> bool:
        """The credential library found no identity, or was refused a token: a config change helps."""
        return False

    async def check(self) -> None:
        await retried(self.api.check)

    @staticmethod
    async def _whole(request: Callable[[], Awaitable[aiohttp.ClientResponse]]) -> bytes:
        """A small object's body (retried as a request), the response released however it ends."""
        resp = await retried(request)
        try:
            return await resp.read()
        finally:
            resp.release()

    @staticmethod
    async def _chunks(response: aiohttp.ClientResponse) -> AsyncIterator[bytes]:
        try:
            async for chunk in response.content.iter_chunked(CHUNK):
                yield chunk
        finally:
            response.release()
