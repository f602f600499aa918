"""The Azure Blob Storage store: block blobs through cdh's own thin REST client (azblobapi.py), on
aiohttp; Entra ID tokens from azure-identity. Why not the Azure SDK's upload: README "Dependencies".

Upload, the same contract as S3's (cdh/store/__init__.py):

- Blocks of ``CDH_PART_SIZE`` (grown so a file fits in 50,000), each a FileSlice of the held zip
  sent as Put Block within the shared slots, with a checksum the service verifies:
  ``x-ms-content-crc64`` (CRC-64/NVME, ISA-L: crc.py), or ``Content-MD5`` where the endpoint is
  Azurite (it refuses crc64 headers) or ``CDH_AZURE_CHECKSUM=md5``. Each request is retried on its
  own when that can help (http.retried), the block resent from its first byte.
- Block ids: this attempt's random nonce + the block's index, every id the same length (Azure's
  rule), so ids of a dead attempt never collide with the next one's.
- Put Block List commits exactly our blocks, in order, with the metadata (cdh/keys.py) and
  ``application/zip``: the blob appears whole at once.
- Verify before delete: Get Blob Properties shows the file's size, the commit's ETag and a block
  blob; Get Block List shows exactly the blocks we sent, in order, with their sizes (each checked by
  the service against its checksum). Anything else raises VerifyError.
- Nothing half left: uncommitted blocks are invisible (no listing, no read shows them). A dead
  attempt's blocks are discarded by the next attempt's commit (every block not in a committed list
  is), or by Azure seven days after their last Put Block if the zip never comes back (another agent
  uploaded it). There is nothing to abort.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from cdh import keys
from cdh.store import ObjectInfo, VerifyError, http
from cdh.store.azblobapi import AzureError, Container, block_id, http_time
from cdh.store.body import FileSlice, fold_slice
from cdh.store.crc import crc64_b64, crc64nvme
from cdh.store.parts import AZURE_LIMITS, Part, PartSizer, send_in_slots

if TYPE_CHECKING:
    from cdh.destination import AzureAccess, Destination
    from cdh.store import HeldFile, Transfer

HINTS = {
    "": "check CDH_DESTINATION's container, CDH_AZURE_ACCOUNT and the credential (key, SAS, or the "
        "identity's role on the container)",
    "ContainerNotFound": "check CDH_DESTINATION's container and CDH_AZURE_ACCOUNT",
    "AuthenticationFailed": "wrong key or expired SAS: check the Secret (CDH_AZURE_ACCOUNT_KEY, "
                            "CDH_AZURE_SAS, CDH_AZURE_CONNECTION_STRING)",
    "AuthorizationPermissionMismatch": "the identity needs the Storage Blob Data Contributor role on the "
                                       "container (a SAS: r, c, w, d)",
    "AuthorizationFailure": "the account refuses this credential or this network (firewall, private "
                            "endpoint): check its networking and the credential",
    "ClientAuthenticationError": "no Entra ID token: check Workload Identity (the service account's "
                                 "azure.workload.identity/client-id annotation, the pod's "
                                 "azure.workload.identity/use label, the federated credential) or the "
                                 "managed identity",
    "CredentialUnavailableError": "no identity found: set up Workload Identity or a managed identity, or "
                                  "mount a key or SAS (CDH_AZURE_ACCOUNT_KEY_FILE, CDH_AZURE_SAS_FILE)",
    "ClientConnectorError": "cannot connect: check CDH_AZURE_ACCOUNT / CDH_AZURE_ENDPOINT, network "
                            "policies and proxies",
}


class AzureBlobStore(http.HttpStore):
    kind = "azblob"
    hints = HINTS

    def __init__(self, destination: Destination, pool_size: int = 10, log=None) -> None:
        super().__init__(destination, pool_size, log)
        assert destination.azure is not None
        self.access: AzureAccess = destination.azure

    def _api(self, session: Any) -> Container:
        return Container(session, self.access, self.destination.bucket)

    def _credential_error(self, err: BaseException) -> bool:
        try:
            from azure.core.exceptions import ClientAuthenticationError
        except ImportError:  # pragma: no cover - azure-identity is a dependency
            return False
        return isinstance(err, ClientAuthenticationError)  # no identity, or a token refused

    # ---------------------------------------------------------------- upload

    async def upload(self, held: HeldFile, key: str, metadata: dict[str, str], transfer: Transfer) -> str:
        sizer = PartSizer(transfer.part_size_bytes, AZURE_LIMITS)
        parts = sizer.parts(held.size) if held.size else []
        nonce = os.urandom(4).hex()

        async def put(part: Part) -> tuple[str, int]:
            return await self._put_block(held, key, block_id(nonce, part.number), part)

        sent = await send_in_slots(parts, put, transfer.slots, "PutBlock")
        stored = keys.stored_metadata(self.kind, metadata)
        committed = await http.retried(lambda: self.api.put_block_list(key, [b for b, _ in sent], stored))
        props = await http.retried(lambda: self.api.properties(key))
        blocks = await http.retried(lambda: self.api.committed_blocks(key))
        if not held.still_there():
            raise VerifyError("the zip changed on disk during the upload")
        return check(props, committed.get("ETag", ""), held.size, blocks, sent, self.access.checksum)

    async def _put_block(self, held: HeldFile, key: str, block: str, part: Part) -> tuple[str, int]:
        checksum = await asyncio.to_thread(self._checksum, held, part)
        body = FileSlice(held.fd, part.offset, part.length, held.path)
        await body.sent_by(http.retried(lambda: self.api.put_block(key, block, body, part.length, checksum)))
        return block, part.length

    def _checksum(self, held: HeldFile, part: Part) -> tuple[str, str]:
        """(header, value) of a block's checksum, read off disk (blocking: a worker thread)."""
        if self.access.checksum == "md5":
            md5 = fold_slice(held.fd, part.offset, part.length, held.path, _md5_update,
                             hashlib.md5(usedforsecurity=False))
            return "Content-MD5", _b64(md5.digest())
        crc = fold_slice(held.fd, part.offset, part.length, held.path, crc64nvme, 0)
        return "x-ms-content-crc64", crc64_b64(crc)

    # ---------------------------------------------------------------- reading

    async def list(self, prefix: str) -> AsyncIterator[ObjectInfo]:
        async for name, props, meta in self.api.list(prefix):  # the listing's Etag comes unquoted
            yield self._info(name, props, meta, _quoted(props.get("Etag", "")))

    async def head(self, key: str) -> ObjectInfo | None:
        props = await http.retried(lambda: self.api.properties(key))
        if props is None:
            return None
        meta = {k[len("x-ms-meta-"):]: v for k, v in props.items() if k.lower().startswith("x-ms-meta-")}
        return self._info(key, props, meta, props.get("ETag", ""))

    def _info(self, key: str, props: Any, meta: dict, etag: str) -> ObjectInfo:
        return ObjectInfo(key=key, size=int(props.get("Content-Length") or 0),
                          last_modified=http_time(props["Last-Modified"]), etag=etag,
                          metadata=keys.read_metadata(self.kind, meta),
                          facts={"content_md5": props.get("Content-MD5", "")})

    async def put_bytes(self, key: str, data: bytes) -> None:
        await http.retried(lambda: self.api.put_blob(key, data))

    async def get_bytes(self, key: str) -> bytes:
        return await self._whole(lambda: self.api.get(key))

    async def delete(self, key: str) -> None:
        try:
            await http.retried(lambda: self.api.delete(key))
        except AzureError as err:
            if err.code != "BlobNotFound":
                raise

    async def _read(self, info: ObjectInfo) -> AsyncIterator[bytes]:
        async for chunk in self._chunks(await self.api.get(info.key, etag=info.etag)):
            yield chunk

    def _download_digest(self, info: ObjectInfo) -> Any:
        return hashlib.md5(usedforsecurity=False) if info.facts.get("content_md5") else _NoDigest()

    async def _check_download(self, info: ObjectInfo, path: str, digest: Any) -> str:
        stored = info.facts.get("content_md5")
        if not stored:  # a block blob: its blocks were checked at upload; no whole-blob checksum
            return "ETag (If-Match)"
        if _b64(digest.digest()) != stored:
            raise VerifyError(f"MD5 {_b64(digest.digest())} does not match the blob's Content-MD5 {stored}")
        return "Content-MD5"


def check(props: Any, etag: str, size: int, blocks: list[tuple[str, int]], sent: list[tuple[str, int]],
          checksum: str) -> str:
    """Raise VerifyError unless the blob is the one we committed; return what was checked."""
    if props is None:
        raise VerifyError("the blob is not there after its commit")
    got = int(props.get("Content-Length") or -1)
    if got != size:
        raise VerifyError(f"blob is {got} bytes, the file {size}")
    if not etag or props.get("ETag") != etag:
        raise VerifyError(f"blob ETag {props.get('ETag')} is not the commit's {etag}")
    if props.get("x-ms-blob-type", "BlockBlob") != "BlockBlob":
        raise VerifyError(f"blob is a {props.get('x-ms-blob-type')}, not a block blob")
    if blocks != sent:
        raise VerifyError(f"the committed blocks ({len(blocks)}) are not the {len(sent)} sent")
    return f"size+etag+blocks+{checksum}"


def _quoted(etag: str) -> str:
    """An ETag as Get Blob Properties gives it (List Blobs leaves the quotes out)."""
    return etag if not etag or etag.startswith('"') else f'"{etag}"'


def _md5_update(chunk: memoryview, md5: Any) -> Any:
    md5.update(chunk)
    return md5


def _b64(digest: bytes) -> str:
    import base64

    return base64.b64encode(digest).decode()


class _NoDigest:
    def update(self, _: bytes) -> None:
        pass
