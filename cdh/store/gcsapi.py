"""Google Cloud Storage's JSON API, the few calls cdh makes, on aiohttp: a resumable upload (start,
send, ask how much arrived, cancel), object resources, listing, reading, deleting, the bucket.
Bodies are any aiohttp payload (the store's FileSlice streams from the held zip): nothing is
buffered here. Every call is one request; retries are the caller's.

Credentials: Application Default Credentials from google-auth (GKE Workload Identity and any GCE
metadata server, ``GOOGLE_APPLICATION_CREDENTIALS``: a service account key or a workload identity
federation file), or the file ``CDH_GCS_CREDENTIALS_FILE`` names; none at all for an emulator.
google-auth is synchronous: tokens are refreshed in a worker thread, five minutes before they expire.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.parse
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from cdh.store.http import ServiceError

if TYPE_CHECKING:
    import aiohttp

    from cdh.destination import GcsAccess

SCOPE = "https://www.googleapis.com/auth/devstorage.read_write"
TOKEN_EARLY_S = 300
LIST_PAGE = 1000
# A status answer that is not 308 (done, or gone) ends the resumable session.
RESUME_INCOMPLETE = 308


class GcsError(ServiceError):
    @property
    def permanent(self) -> bool:
        # 401 after a fresh token, 403 (IAM, billing), a bucket that is not there: a config change helps.
        # An object that is not there is an answer, not a failure (callers see None).
        return self.status in (401, 403) or (self.status == 404 and "bucket" in self.message.lower())

    @property
    def retryable(self) -> bool:
        return super().retryable


class GoogleToken:
    """``await header()``: a bearer token from Application Default Credentials or a credentials file."""

    def __init__(self, credentials_file: str = "") -> None:
        self.credentials_file = credentials_file
        self._credentials: Any = None
        self._lock = asyncio.Lock()

    def _refresh(self) -> None:
        import google.auth
        from google.auth.transport.requests import Request

        request = Request()
        if self._credentials is None:
            if self.credentials_file:
                self._credentials, _ = google.auth.load_credentials_from_file(self.credentials_file,
                                                                              scopes=[SCOPE])
            else:
                self._credentials, _ = google.auth.default(scopes=[SCOPE], request=request)
        self._credentials.refresh(request)

    async def header(self) -> str:
        async with self._lock:
            c = self._credentials
            expiry = getattr(c, "expiry", None)
            stale = expiry is not None and _epoch(expiry) - TOKEN_EARLY_S < time.time()
            if c is None or not c.token or stale:
                await asyncio.to_thread(self._refresh)  # blocking HTTP: off the loop
            return f"Bearer {self._credentials.token}"


def _epoch(expiry: Any) -> float:
    """google-auth's expiry is a naive UTC datetime."""
    import calendar

    return calendar.timegm(expiry.utctimetuple())


class Bucket:
    def __init__(self, session: aiohttp.ClientSession, access: GcsAccess, bucket: str) -> None:
        self.session = session
        self.endpoint = access.endpoint.rstrip("/")
        self.bucket = bucket
        self.token = None if access.anonymous else GoogleToken(access.credentials_file)

    async def close(self) -> None:
        """Nothing of its own to close: google-auth's transport is made per refresh."""

    async def _headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        h = dict(extra or {})
        if self.token is not None:
            h["Authorization"] = await self.token.header()
        return h

    async def request(self, method: str, url: str, headers: dict[str, str] | None = None, data: Any = None,
                      ok: tuple[int, ...] = (200, 201, 204),
                      of_bucket: bool = False) -> aiohttp.ClientResponse:
        """The response, its status one of ``ok`` (the caller releases it); else GcsError. ``of_bucket``:
        a call on the bucket itself, whose 404 means there is no such bucket."""
        resp = await self.session.request(method, url, headers=await self._headers(headers), data=data)
        if resp.status in ok:
            return resp
        try:
            text = await resp.text(errors="replace")
        finally:
            resp.release()
        reason, message = f"HTTP{resp.status}", text[:300].strip()
        try:
            err = json.loads(text)["error"]
            message = str(err.get("message") or message)
            reason = str((err.get("errors") or [{}])[0].get("reason") or reason)
        except (ValueError, KeyError, TypeError, AttributeError, IndexError):
            pass
        if of_bucket and resp.status == 404:
            reason, message = "notFound", f"no bucket {self.bucket}: {message}"
        raise GcsError(resp.status, reason, message)

    async def _json(self, method: str, url: str, headers: dict[str, str] | None = None, data: Any = None,
                    ok: tuple[int, ...] = (200, 201, 204), of_bucket: bool = False) -> Any:
        resp = await self.request(method, url, headers, data, ok, of_bucket)
        try:
            return await resp.json(content_type=None) if resp.status != 204 else None
        finally:
            resp.release()

    def object_url(self, name: str, **query: str) -> str:
        q = ("?" + urllib.parse.urlencode(query)) if query else ""
        return f"{self.endpoint}/storage/v1/b/{self.bucket}/o/{urllib.parse.quote(name, safe='')}{q}"

    # ---------------------------------------------------------------- resumable upload

    async def start(self, name: str, size: int, crc32c: str, metadata: dict[str, str],
                    content_type: str = "application/zip") -> str:
        """A resumable session for ``name``, its metadata and CRC-32C (the service refuses to create
        the object if the bytes it received do not match); the session's URL."""
        body = json.dumps({"name": name, "contentType": content_type, "metadata": metadata,
                           "crc32c": crc32c}).encode()
        url = (f"{self.endpoint}/upload/storage/v1/b/{self.bucket}/o?"
               + urllib.parse.urlencode({"uploadType": "resumable", "name": name}))
        headers = {"Content-Type": "application/json; charset=UTF-8", "X-Upload-Content-Type": content_type,
                   "X-Upload-Content-Length": str(size)}
        resp = await self.request("POST", url, headers, body, ok=(200, 201), of_bucket=True)
        resp.release()
        return resp.headers["Location"]

    async def send(self, session_url: str, body: Any, offset: int, total: int) -> tuple[int, dict | None]:
        """Send bytes ``offset`` to the end; (bytes the service holds, the object when it is done)."""
        length = total - offset
        headers = {"Content-Length": str(length), "Content-Type": "application/octet-stream",
                   "Content-Range": f"bytes {offset}-{total - 1}/{total}" if length else f"bytes */{total}"}
        return await self._step(session_url, headers, body)

    async def status(self, session_url: str, total: int) -> tuple[int, dict | None]:
        """How much of the session the service holds (an empty PUT with ``bytes */total``)."""
        headers = {"Content-Range": f"bytes */{total}", "Content-Length": "0"}
        return await self._step(session_url, headers, None)

    async def _step(self, session_url: str, headers: dict[str, str], body: Any) -> tuple[int, dict | None]:
        resp = await self.request("PUT", session_url, headers, body, ok=(200, 201, RESUME_INCOMPLETE))
        try:
            if resp.status == RESUME_INCOMPLETE:
                held = resp.headers.get("Range", "")  # "bytes=0-N": N+1 bytes held; none: nothing yet
                return (int(held.rsplit("-", 1)[1]) + 1 if held else 0), None
            return -1, await resp.json(content_type=None)
        finally:
            resp.release()

    async def cancel(self, session_url: str) -> None:
        """DELETE the session: the service answers 499 and discards what it held."""
        resp = await self.request("DELETE", session_url, ok=(200, 204, 499))
        resp.release()

    # ---------------------------------------------------------------- objects

    async def get(self, name: str) -> dict | None:
        try:
            return await self._json("GET", self.object_url(name))
        except GcsError as err:
            if err.status == 404 and "bucket" not in err.message.lower():
                return None
            raise

    async def list(self, prefix: str) -> AsyncIterator[dict]:
        token = ""
        while True:
            query = {"prefix": prefix, "maxResults": str(LIST_PAGE)}
            if token:
                query["pageToken"] = token
            page = await self._json("GET", f"{self.endpoint}/storage/v1/b/{self.bucket}/o?"
                                    + urllib.parse.urlencode(query), of_bucket=True)
            for item in page.get("items", []):
                yield item
            token = page.get("nextPageToken", "")
            if not token:
                return

    async def read(self, name: str, generation: str = "") -> aiohttp.ClientResponse:
        """The object's bytes, streamed (the caller reads and releases); ``generation``: that one only."""
        query = {"alt": "media", **({"generation": generation} if generation else {})}
        return await self.request("GET", self.object_url(name, **query), ok=(200,))

    async def insert(self, name: str, data: bytes, crc32c: str, content_type: str = "text/plain") -> dict:
        """One small object in one request (multipart upload), its CRC-32C for the service to check."""
        boundary = "cdh-" + format(time.monotonic_ns(), "x")
        meta = json.dumps({"name": name, "contentType": content_type, "crc32c": crc32c})
        body = (f"--{boundary}\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n{meta}\r\n"
                f"--{boundary}\r\nContent-Type: {content_type}\r\n\r\n").encode() + data + \
            f"\r\n--{boundary}--\r\n".encode()
        url = f"{self.endpoint}/upload/storage/v1/b/{self.bucket}/o?uploadType=multipart"
        headers = {"Content-Type": f"multipart/related; boundary={boundary}"}
        return await self._json("POST", url, headers, body)

    async def delete(self, name: str, generation: str = "") -> None:
        query = {"ifGenerationMatch": generation} if generation else {}
        resp = await self.request("DELETE", self.object_url(name, **query), ok=(200, 204))
        resp.release()

    async def check(self) -> None:
        """The bucket is there and ours to use (its resource: storage.buckets.get, or an empty listing)."""
        resp = await self.request("GET", f"{self.endpoint}/storage/v1/b/{self.bucket}/o?maxResults=1"
                                  "&fields=nextPageToken", of_bucket=True)
        resp.release()
