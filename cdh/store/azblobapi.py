"""Azure Blob Storage's REST API, the few calls cdh makes, on aiohttp: Put Block, Put Block List, Put
Blob, Get Blob Properties, Get Block List, List Blobs, Get Blob, Delete Blob, Get Container
Properties. Bodies are any aiohttp payload (the store's FileSlice streams from the held zip):
nothing is buffered here. Every call is one request; retries are the caller's (http.retried).

Authorisation, one of: Shared Key (an account key; the string-to-sign of the "Authorize with Shared
Key" reference, version 2015-02-21 and later), a SAS token (query string), or an Entra ID bearer
token from azure-identity (aio), kept until five minutes before it expires. Path-style endpoints
(Azurite, custom domains) carry the account in the path; the canonical resource is then
``/account/account/container/blob``, which signing the raw path gives.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time
import urllib.parse
from collections.abc import AsyncIterator
from email.utils import formatdate, parsedate_to_datetime
from typing import TYPE_CHECKING, Any
from xml.etree import ElementTree

from multidict import CIMultiDict
from yarl import URL

from cdh.store.http import ServiceError

if TYPE_CHECKING:
    import aiohttp

    from cdh.destination import AzureAccess

API_VERSION = "2025-01-05"  # Azurite 3.35 accepts up to 2025-11-05; Entra tokens need >= 2017-11-09
STORAGE_SCOPE = "https://storage.azure.com/.default"
TOKEN_EARLY_S = 300
LIST_PAGE = 5000
# Error codes (x-ms-error-code) that no retry fixes: a config change (or a reload) does.
PERMANENT_CODES = frozenset({
    "AuthenticationFailed", "AuthorizationFailure", "AuthorizationPermissionMismatch",
    "AuthorizationPermissionDenied", "AuthorizationResourceTypeMismatch", "AuthorizationServiceMismatch",
    "AuthorizationSourceIPMismatch", "AuthorizationProtocolMismatch", "InvalidAuthenticationInfo",
    "InsufficientAccountPermissions", "AccountIsDisabled", "ContainerNotFound", "ContainerBeingDeleted",
    "ContainerDisabled", "KeyVaultEncryptionKeyNotFound", "NoAuthenticationInformation",
})
# Bytes damaged on the way: the block is sent again. Azurite says InvalidOperation for Content-MD5.
CHECKSUM_MISMATCH = frozenset({"Md5Mismatch", "Crc64Mismatch"})


class AzureError(ServiceError):
    @property
    def permanent(self) -> bool:
        return self.code in PERMANENT_CODES or self.status in (401, 403)

    @property
    def retryable(self) -> bool:
        return super().retryable or self.code in CHECKSUM_MISMATCH or (
            self.code == "InvalidOperation" and "contentMD5" in self.message)


# ---------------------------------------------------------------- authorisation


class SharedKey:
    def __init__(self, account: str, key_b64: str) -> None:
        self.account = account
        self._key = base64.b64decode(key_b64)

    def sign(self, method: str, url: URL, headers: dict[str, str]) -> None:
        h = {k.lower(): v for k, v in headers.items()}
        length = h.get("content-length", "")
        standard = [method, h.get("content-encoding", ""), h.get("content-language", ""),
                    "" if length == "0" else length, h.get("content-md5", ""), h.get("content-type", ""),
                    "", h.get("if-modified-since", ""), h.get("if-match", ""), h.get("if-none-match", ""),
                    h.get("if-unmodified-since", ""), h.get("range", "")]
        ms = "".join(f"{k}:{_unfold(h[k])}\n" for k in sorted(h) if k.startswith("x-ms-"))
        resource = f"/{self.account}{url.raw_path}"
        query: dict[str, list[str]] = {}
        for k, v in urllib.parse.parse_qsl(url.raw_query_string, keep_blank_values=True):
            query.setdefault(k.lower(), []).append(v)
        resource += "".join(f"\n{k}:{','.join(sorted(query[k]))}" for k in sorted(query))
        to_sign = "\n".join(standard) + "\n" + ms + resource
        mac = hmac.new(self._key, to_sign.encode(), hashlib.sha256).digest()
        headers["Authorization"] = f"SharedKey {self.account}:{base64.b64encode(mac).decode()}"


def _unfold(value: str) -> str:
    return re.sub(r"\s+", " ", value.strip())


class Bearer:
    """An Entra ID token from any azure-identity (aio) credential, kept until shortly before it expires."""

    def __init__(self, credential: Any) -> None:
        self.credential = credential
        self._token: Any = None

    async def header(self) -> str:
        if self._token is None or self._token.expires_on - TOKEN_EARLY_S < time.time():
            self._token = await self.credential.get_token(STORAGE_SCOPE)
        return f"Bearer {self._token.token}"

    async def close(self) -> None:
        await self.credential.close()


def token_credential() -> Any:
    """The platform's identity, as azure-identity finds it in the environment: a service principal
    (``AZURE_CLIENT_SECRET`` / ``AZURE_CLIENT_CERTIFICATE_PATH``: ARO), Workload Identity (the webhook
    sets ``AZURE_FEDERATED_TOKEN_FILE``: AKS, ARO), else a managed identity (IMDS: AKS's kubelet or
    pod identity). No developer credentials (CLI, VS Code): the image has none of those tools."""
    import os

    from azure.identity.aio import (
        ChainedTokenCredential,
        EnvironmentCredential,
        ManagedIdentityCredential,
        WorkloadIdentityCredential,
    )

    chain: list[Any] = []
    if {"AZURE_CLIENT_SECRET", "AZURE_CLIENT_CERTIFICATE_PATH"} & set(os.environ):
        chain.append(EnvironmentCredential())
    if os.environ.get("AZURE_FEDERATED_TOKEN_FILE"):
        chain.append(WorkloadIdentityCredential())
    chain.append(ManagedIdentityCredential(client_id=os.environ.get("AZURE_CLIENT_ID") or None))
    return ChainedTokenCredential(*chain)


def authorisation(access: AzureAccess) -> SharedKey | str | Bearer:
    """Shared Key, a SAS token (a query string), or Entra ID tokens."""
    if access.account_key:
        return SharedKey(access.account, access.account_key)
    if access.sas:
        return access.sas
    return Bearer(token_credential())


# ---------------------------------------------------------------- the calls


def block_id(nonce: str, index: int) -> str:
    """Every block id of a blob has the same length (Azure's rule: a blob whose uncommitted blocks
    have ids of another length refuses new ones). 8 hex + 7 digits = 15 characters, a multiple of 3:
    the base64 has no '=', '+' or '/', so it needs no escaping in the query string."""
    return base64.b64encode(f"{nonce:0>8.8}{index:07d}".encode()).decode()


class Container:
    def __init__(self, session: aiohttp.ClientSession, access: AzureAccess, container: str) -> None:
        self.session = session
        self.endpoint = access.endpoint.rstrip("/")
        self.container = container
        self.auth = authorisation(access)

    async def close(self) -> None:
        if isinstance(self.auth, Bearer):
            await self.auth.close()

    def url(self, blob: str | None = None, **query: str) -> URL:
        path = f"{self.endpoint}/{self.container}"
        if blob is not None:
            path += "/" + urllib.parse.quote(blob, safe="/")
        qs = "&".join(f"{k}={urllib.parse.quote(v, safe='')}" for k, v in query.items())
        return URL(path + ("?" + qs if qs else ""), encoded=True)

    async def request(self, method: str, url: URL, headers: dict[str, str] | None = None, data: Any = None,
                      ok: tuple[int, ...] = (200, 201, 202)) -> aiohttp.ClientResponse:
        """The response, its status one of ``ok`` (the caller releases it); else AzureError."""
        h = {"x-ms-version": API_VERSION, "x-ms-date": formatdate(usegmt=True), **(headers or {})}
        if isinstance(self.auth, SharedKey):
            if data is None and method in ("PUT", "POST"):
                h.setdefault("Content-Length", "0")
            self.auth.sign(method, url, h)
        elif isinstance(self.auth, Bearer):
            h["Authorization"] = await self.auth.header()
        elif self.auth:
            url = URL(f"{url}{'&' if url.raw_query_string else '?'}{self.auth}", encoded=True)
        # aiohttp would add a Content-Type to a request without one after we signed: not that.
        skip = () if any(k.lower() == "content-type" for k in h) else ("Content-Type",)
        resp = await self.session.request(method, url, headers=h, data=data, skip_auto_headers=skip)
        if resp.status in ok:
            return resp
        try:
            body = await resp.text(errors="replace") if method != "HEAD" else ""
        finally:
            resp.release()
        code, message = resp.headers.get("x-ms-error-code", ""), ""
        if body.lstrip("\ufeff").startswith("<"):
            try:
                root = ElementTree.fromstring(body.lstrip("\ufeff"))
                code = code or (root.findtext("Code") or "")
                message = (root.findtext("Message") or "").split("\n")[0]
            except ElementTree.ParseError:
                pass
        raise AzureError(resp.status, code or f"HTTP{resp.status}", message or body[:200].strip())

    async def _done(self, method: str, url: URL, headers: dict[str, str] | None = None, data: Any = None,
                    ok: tuple[int, ...] = (200, 201, 202)) -> CIMultiDict:
        resp = await self.request(method, url, headers, data, ok)
        resp.release()
        return CIMultiDict(resp.headers)

    async def put_block(self, blob: str, block: str, body: Any, length: int,
                        checksum: tuple[str, str]) -> None:
        """``checksum``: ("Content-MD5" | "x-ms-content-crc64", base64 value): the service refuses the
        block if the bytes it received do not match."""
        headers = {"Content-Length": str(length), "Content-Type": "application/octet-stream",
                   checksum[0]: checksum[1]}
        await self._done("PUT", self.url(blob, comp="block", blockid=block), headers, body, ok=(201,))

    async def put_block_list(self, blob: str, blocks: list[str], metadata: dict[str, str],
                             content_type: str = "application/zip") -> CIMultiDict:
        xml = ('<?xml version="1.0" encoding="utf-8"?><BlockList>'
               + "".join(f"<Latest>{b}</Latest>" for b in blocks) + "</BlockList>").encode()
        headers = {"Content-Type": "application/xml", "Content-Length": str(len(xml)),
                   "Content-MD5": _md5(xml), "x-ms-blob-content-type": content_type, **_meta(metadata)}
        return await self._done("PUT", self.url(blob, comp="blocklist"), headers, xml, ok=(201,))

    async def put_blob(self, blob: str, data: bytes, metadata: dict[str, str] | None = None,
                       content_type: str = "application/octet-stream") -> CIMultiDict:
        """One small blob; Content-MD5 makes the service check it."""
        headers = {"x-ms-blob-type": "BlockBlob", "Content-Length": str(len(data)),
                   "Content-Type": content_type, "Content-MD5": _md5(data), **_meta(metadata or {})}
        return await self._done("PUT", self.url(blob), headers, data, ok=(201,))

    async def properties(self, blob: str) -> CIMultiDict | None:
        """Get Blob Properties (HEAD): the headers, or None when there is no such (committed) blob."""
        try:
            return await self._done("HEAD", self.url(blob))
        except AzureError as err:
            if err.status == 404 and err.code != "ContainerNotFound":
                return None
            raise

    async def committed_blocks(self, blob: str) -> list[tuple[str, int]]:
        """Get Block List, committed blocks: (id, size) in the blob's order."""
        resp = await self.request("GET", self.url(blob, comp="blocklist", blocklisttype="committed"))
        try:
            root = _xml(await resp.text())
        finally:
            resp.release()
        node = root.find("CommittedBlocks")
        blocks = node if node is not None else []
        return [(b.findtext("Name") or "", int(b.findtext("Size") or 0)) for b in blocks]

    async def list(self, prefix: str, include: str = "metadata") -> AsyncIterator[tuple[str, dict, dict]]:
        """(name, properties, metadata) of every blob under ``prefix``, in name order, page by page."""
        marker = ""
        while True:
            query = {"restype": "container", "comp": "list", "prefix": prefix, "maxresults": str(LIST_PAGE)}
            if include:
                query["include"] = include
            if marker:
                query["marker"] = marker
            resp = await self.request("GET", self.url(None, **query))
            try:
                root = _xml(await resp.text())
            finally:
                resp.release()
            for b in root.iter("Blob"):
                props = {p.tag: p.text or "" for p in (b.find("Properties") or [])}
                meta = {m.tag.lower(): m.text or "" for m in (b.find("Metadata") or [])}
                yield b.findtext("Name") or "", props, meta
            marker = root.findtext("NextMarker") or ""
            if not marker:
                return

    async def get(self, blob: str, etag: str = "") -> aiohttp.ClientResponse:
        """Get Blob, streamed (the caller reads and releases); If-Match ``etag``: this version only."""
        return await self.request("GET", self.url(blob), {"If-Match": etag} if etag else {}, ok=(200,))

    async def delete(self, blob: str) -> None:
        await self._done("DELETE", self.url(blob), ok=(202,))

    async def check(self) -> None:
        """Get Container Properties: the container is there and ours to read."""
        await self._done("GET", self.url(None, restype="container"))


def _md5(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data, usedforsecurity=False).digest()).decode()


def _meta(metadata: dict[str, str]) -> dict[str, str]:
    return {f"x-ms-meta-{k}": v for k, v in metadata.items()}


def _xml(text: str) -> ElementTree.Element:
    return ElementTree.fromstring(text.lstrip("\ufeff"))


def http_time(value: str) -> float:
    """An RFC 1123 date (Last-Modified) as epoch seconds."""
    return parsedate_to_datetime(value).timestamp()
