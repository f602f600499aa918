"""The Google Cloud Storage store: the JSON API's resumable upload through cdh's own thin client
(gcsapi.py), on aiohttp; credentials from google-auth. Why not a Google library's upload: README
"Dependencies".

Upload, the same contract as S3's (cdh/store/__init__.py):

- The CRC-32C of the whole file first (ISA-L, crc.py: one read, in a worker thread), then a
  resumable session started with the object's name, metadata (cdh/keys.py), ``application/zip`` and
  that CRC-32C: Cloud Storage refuses to create the object if the bytes it received do not match.
  (The JSON API has no checksum per chunk: the session is checked as a whole.)
- The body in one streamed request (a FileSlice of the held zip, within one of the shared slots):
  fewer requests than chunks, and no chunk in memory. After a failed send, the session is asked
  how much it holds and the rest is sent from there, up to :data:`SENDS` times; a session the
  service forgot (404, 410) means a new one.
- Verify before delete: the object the last answer describes, and the object read again after it,
  have the file's size and CRC-32C and the same generation. Otherwise that generation is deleted
  (so a wrong object never stays: fake-gcs-server finalises a session truncated on a status query)
  and the attempt fails.
- Nothing half left: an unfinished session creates nothing and is cancelled (DELETE) when the
  attempt gives up; one the agent could not cancel (it was killed) expires after a week unseen.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any

from cdh import keys
from cdh.store import ObjectInfo, VerifyError, http
from cdh.store.body import FileSlice, fold_slice
from cdh.store.crc import crc32c, crc32c_b64
from cdh.store.gcsapi import Bucket, GcsError

if TYPE_CHECKING:
    from cdh.destination import Destination, GcsAccess
    from cdh.store import HeldFile, Transfer

SENDS = 4                  # sends of the body per attempt (the first, then resumes)
CANCEL_TIMEOUT_S = 10.0    # cancelling a session is best effort: it expires on its own
HINTS = {
    "": "check CDH_DESTINATION's bucket and the credential (Workload Identity's service account, or "
        "CDH_GCS_CREDENTIALS_FILE) and its role on the bucket (Storage Object User)",
    "forbidden": "the service account needs roles/storage.objectUser on the bucket (GKE Workload Identity: "
                 "the Kubernetes service account bound to it, or granted as a principal)",
    "notFound": "check CDH_DESTINATION's bucket",
    "DefaultCredentialsError": "no credentials: set up GKE Workload Identity, or mount a key and set "
                               "CDH_GCS_CREDENTIALS_FILE",
    "RefreshError": "the token service refused the credential: check the service account, its key, or the "
                    "Workload Identity binding",
    "ClientConnectorError": "cannot connect: check CDH_GCS_ENDPOINT, network policies and proxies",
}


class GcsStore(http.HttpStore):
    kind = "gs"
    hints = HINTS

    def __init__(self, destination: Destination, pool_size: int = 10, log=None) -> None:
        super().__init__(destination, pool_size, log)
        assert destination.gcs is not None
        self.access: GcsAccess = destination.gcs

    def _api(self, session: Any) -> Bucket:
        return Bucket(session, self.access, self.destination.bucket)

    def _credential_error(self, err: BaseException) -> bool:
        """google-auth found no credentials, or the token service refused them (not a passing failure)."""
        try:
            from google.auth import exceptions
        except ImportError:  # pragma: no cover - google-auth is a dependency
            return False
        if isinstance(err, exceptions.RefreshError):
            return not getattr(err, "retryable", False)
        return isinstance(err, exceptions.DefaultCredentialsError)

    # ---------------------------------------------------------------- upload

    async def upload(self, held: HeldFile, key: str, metadata: dict[str, str], transfer: Transfer) -> str:
        async with transfer.slots:  # one request carries the file: one slot
            crc = crc32c_b64(await asyncio.to_thread(fold_slice, held.fd, 0, held.size, held.path, crc32c, 0))
            stored = keys.stored_metadata(self.kind, metadata)
            session = await http.retried(lambda: self.api.start(key, held.size, crc, stored))
            try:
                done = await self._send(session, held)
            except BaseException:
                await self._cancel(session, key)
                raise
        return await self._verify(key, done, held, crc)

    async def _send(self, session: str, held: HeldFile) -> dict:
        """The body from where the service stands until it says done; the object resource."""
        offset, last = 0, None
        for send in range(1, SENDS + 1):
            try:
                body = FileSlice(held.fd, offset, held.size - offset, held.path)
                held_bytes, done = await body.sent_by(self.api.send(session, body, offset, held.size))
            except Exception as err:
                if not http.transient(err) or send == SENDS:
                    raise
                last = err
                await asyncio.sleep(random.uniform(0, http.BACKOFF_BASE_S * 2 ** send))
                held_bytes, done = await http.retried(lambda: self.api.status(session, held.size))
            if done is not None:
                return done
            if not 0 <= held_bytes <= held.size:
                raise VerifyError(f"the session says it holds {held_bytes} of {held.size} bytes")
            offset = held_bytes
        raise last or VerifyError("the session did not finish")

    async def _cancel(self, session: str, key: str) -> None:
        """Cancel the session, also when we are being cancelled (shielded, bounded, best effort)."""
        try:
            await asyncio.wait_for(asyncio.shield(self.api.cancel(session)), CANCEL_TIMEOUT_S)
        except BaseException as err:  # the original failure is what the caller raises
            self.log.warning("upload.cancel_failed", key=key, error=repr(err))

    async def _verify(self, key: str, done: dict, held: HeldFile, crc: str) -> str:
        again = await http.retried(lambda: self.api.get(key))
        for what, obj in (("the upload's answer", done), ("the object", again)):
            problem = _mismatch(obj, held.size, crc, done.get("generation"))
            if problem:
                await self._drop(key, done.get("generation"))
                raise VerifyError(f"{what}: {problem}")
        if not held.still_there():
            raise VerifyError("the zip changed on disk during the upload")
        return "size+crc32c+generation"

    async def _drop(self, key: str, generation: Any) -> None:
        """Delete the wrong object we made (that generation only: never someone else's)."""
        try:
            await http.retried(lambda: self.api.delete(key, str(generation or "")))
            self.log.warning("upload.wrong_object_deleted", key=key, generation=generation)
        except Exception as err:
            self.log.warning("upload.wrong_object_kept", key=key, generation=generation, error=repr(err))

    # ---------------------------------------------------------------- reading

    async def list(self, prefix: str) -> AsyncIterator[ObjectInfo]:
        async for item in self.api.list(prefix):
            yield _info(self.kind, item)

    async def head(self, key: str) -> ObjectInfo | None:
        found = await http.retried(lambda: self.api.get(key))
        return _info(self.kind, found) if found is not None else None

    async def put_bytes(self, key: str, data: bytes) -> None:
        await http.retried(lambda: self.api.insert(key, data, crc32c_b64(crc32c(data))))

    async def get_bytes(self, key: str) -> bytes:
        return await self._whole(lambda: self.api.read(key))

    async def delete(self, key: str) -> None:
        try:
            await http.retried(lambda: self.api.delete(key))
        except GcsError as err:
            if err.status != 404:
                raise

    async def _read(self, info: ObjectInfo) -> AsyncIterator[bytes]:
        generation = str(info.facts.get("generation") or "")
        async for chunk in self._chunks(await self.api.read(info.key, generation)):
            yield chunk

    def _download_digest(self, info: ObjectInfo) -> Any:
        return _Crc32c()

    async def _check_download(self, info: ObjectInfo, path: str, digest: Any) -> str:
        stored = info.facts.get("crc32c")
        if not stored:
            return "no CRC-32C stored"
        got = crc32c_b64(digest.value)
        if got != stored:
            raise VerifyError(f"CRC-32C {got} does not match the object's {stored}")
        return "CRC-32C"


def _mismatch(obj: dict | None, size: int, crc: str, generation: Any) -> str:
    if obj is None:
        return "no object"
    if int(obj.get("size", -1)) != size:
        return f"{obj.get('size')} bytes, the file {size}"
    if obj.get("crc32c") != crc:
        return f"CRC-32C {obj.get('crc32c')}, the file's {crc}"
    if generation is not None and str(obj.get("generation")) != str(generation):
        return f"generation {obj.get('generation')}, the upload made {generation}"
    return ""


def _info(kind: str, item: dict) -> ObjectInfo:
    updated = item.get("updated") or item.get("timeCreated") or ""
    return ObjectInfo(key=item["name"], size=int(item.get("size", 0)), last_modified=_rfc3339(updated),
                      etag=str(item.get("etag", "")),
                      metadata=keys.read_metadata(kind, item.get("metadata") or {}),
                      facts={"generation": str(item.get("generation", "")), "crc32c": item.get("crc32c", "")})


def _rfc3339(value: str) -> float:
    from datetime import datetime

    if not value:
        return 0.0
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return parsedate_to_datetime(value).timestamp()


class _Crc32c:
    def __init__(self) -> None:
        self.value = 0

    def update(self, chunk: bytes) -> None:
        self.value = crc32c(chunk, self.value)
