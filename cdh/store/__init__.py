"""Object storage as every part of cdh speaks it: one :class:`Store` per destination, one
implementation per kind, the same contract for each (README "Agent": verify, then delete).

Users: the agent's upload (cdh/agent/upload.py), ``cdh sweep``, ``cdh ls``/``get`` (cdh/tools/) and
``cdh doctor`` (cdh/doctor/bucket.py). A store is built from a :class:`~cdh.destination.Destination`
by :func:`open_store`, which imports that kind's module only (an S3 user never imports another
cloud's code): ``s3`` (aiobotocore), ``azblob`` (Azure Blob Storage), ``gcs`` (Google Cloud Storage).

The contract of :meth:`Store.upload`: the body streams from the held zip's descriptor (body.py), each
request carrying file data holds one of the shared :class:`Transfer` slots (what bounds the agent's
memory); every piece carries a checksum the service verifies; before it returns, the object is read
back (size and the service's own checksum or ETag) and anything else raises :class:`VerifyError`;
on failure nothing half-made is left behind. The caller deletes the zip only after it returned.

Errors stay the kind's own exceptions; :meth:`Store.failure` reads one (once per kind) as a
:class:`Failure`: its code, a one-line description, and whether it is permanent (keys, permissions,
a missing bucket: only a config change fixes it) or transient (retry with backoff: cdh/agent/retry.py).

Modules: ``body`` (bodies streamed from the held file), ``parts`` (how a file is cut into parts),
``s3`` (the S3 store), ``s3client`` (its client, errors, arguments), ``s3upload`` (PUT, multipart,
verify), ``s3download`` (``cdh get``'s ETag check); ``azblob`` (the Azure store) and ``azblobapi``
(its REST calls and credentials); ``gcs`` (the Cloud Storage store) and ``gcsapi`` (its JSON API
calls and credentials); ``http`` (what those two share: session, errors, the retry of a request);
``crc`` (CRC-64/NVME and CRC-32C from ISA-L).
"""

from __future__ import annotations

import abc
import hashlib
import os
from dataclasses import dataclass, field

from cdh import fsutil, jsonline

TYPE_CHECKING = False
if TYPE_CHECKING:
    import asyncio
    from collections.abc import AsyncIterator, Mapping
    from typing import Any, Protocol

    from cdh.destination import Destination

    class HeldFile(Protocol):
        """A file held open (and locked) for upload: cdh/agent/localzip.py's LocalZip."""

        path: str
        fd: int
        size: int

        def still_there(self) -> bool: ...

    class Progress(Protocol):
        def update(self, n: int) -> None: ...

        def finish(self) -> None: ...

CHUNK = 1 << 20  # downloads are read and written in pieces of this size


class VerifyError(RuntimeError):
    """The object in the bucket is not the file on disk (or the download is not the object)."""


@dataclass(frozen=True)
class Transfer:
    """The agent's upload limits, shared by every upload in flight (and every store)."""

    slots: asyncio.Semaphore          # requests carrying file data in flight: bounds memory (body.py)
    part_size_bytes: int              # CDH_PART_SIZE: the smallest part (block); grows for big files
    multipart_threshold_bytes: int    # CDH_MULTIPART_THRESHOLD: below it, one request (where the kind has it)


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    last_modified: float               # epoch seconds
    etag: str = ""                     # as the service gives it (S3: quoted)
    metadata: Mapping[str, str] | None = None  # names lower-cased; None: the listing does not carry it
    facts: Mapping[str, Any] = field(default_factory=dict)  # the kind's own (encryption, generation ...)


@dataclass(frozen=True)
class Failure:
    """A store error, read once per kind."""

    code: str          # the service's error code, else the exception's class name
    message: str       # the service's own message, else the exception's text (never request details)
    detail: str        # one line: code and message
    permanent: bool    # only a config change fixes it (keys, permissions, a missing bucket)
    status: int | None = None  # the HTTP status, when there was an answer


class NullLog(jsonline.Logger):
    """For stores used outside the agent (the tools, doctor): their few log lines go nowhere."""

    def emit(self, level: str, event: str, fields: dict) -> None:
        pass


class Store(abc.ABC):
    """The async client of one destination. Use as ``async with open_store(dest) as store``."""

    kind = ""
    # What to check when the store refuses us (upload.denied, doctor), by Failure.code; "" is the default.
    hints: Mapping[str, str] = {}

    def __init__(self, destination: Destination, pool_size: int = 10,
                 log: jsonline.Logger | None = None) -> None:
        self.destination = destination
        self.pool_size = pool_size
        self.log = log or NullLog()

    async def __aenter__(self) -> Store:
        await self.open()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    @abc.abstractmethod
    async def open(self) -> None:
        """Build the client (connections, credentials); cheap to call, nothing is sent yet."""

    @abc.abstractmethod
    async def close(self) -> None: ...

    # ---------------------------------------------------------------- the agent's side

    @abc.abstractmethod
    async def upload(self, held: HeldFile, key: str, metadata: dict[str, str], transfer: Transfer) -> str:
        """Send ``held`` as ``key`` and confirm it (see the module's docstring); return what was checked."""

    @abc.abstractmethod
    async def check(self) -> None:
        """Raise unless the bucket is there and ours to use (the agent's start and re-checks)."""

    @abc.abstractmethod
    def failure(self, err: BaseException) -> Failure: ...

    # ---------------------------------------------------------------- the tools' side

    @abc.abstractmethod
    def list(self, prefix: str) -> AsyncIterator[ObjectInfo]:
        """Every object under ``prefix``, in key order (an async iterator; errors raise while iterating)."""

    @abc.abstractmethod
    async def head(self, key: str) -> ObjectInfo | None:
        """The object with its metadata, or None when there is none."""

    @abc.abstractmethod
    async def put_bytes(self, key: str, data: bytes) -> None:
        """A small object, with a checksum and the destination's object settings (``cdh doctor``)."""

    @abc.abstractmethod
    async def get_bytes(self, key: str) -> bytes: ...

    @abc.abstractmethod
    async def delete(self, key: str) -> None: ...

    async def download(self, info: ObjectInfo, target: str, progress: Progress | None = None) -> list[str]:
        """Download to ``target`` and verify; return what was checked.

        The bytes go to ``.<name>.<random>.part`` beside it, created O_EXCL|O_NOFOLLOW and 0600 (a
        core is a process's memory; a link planted in a shared directory is never followed), which
        becomes ``target`` only when verified, and never over a file already there
        (:func:`cdh.fsutil.publish`). Raises :class:`VerifyError` when the bytes are not the
        object's; leaves nothing behind then.
        """
        import secrets

        import aiofiles

        digest = self._download_digest(info)
        directory, name = os.path.split(target)
        got, tmp = 0, os.path.join(directory, f".{name}.{secrets.token_hex(8)}.part")
        fd = os.open(tmp, fsutil.CREATE_NEW, 0o600)
        try:
            # aiofiles: each disk write runs in a worker thread while the event loop goes on
            # receiving the next bytes (a slow disk does not stall the socket).
            async with aiofiles.open(fd, "wb") as out:
                async for chunk in self._read(info):
                    await out.write(chunk)
                    digest.update(chunk)
                    got += len(chunk)
                    if progress:
                        progress.update(len(chunk))
            if progress:
                progress.finish()
            if got != info.size:
                raise VerifyError(f"got {got} bytes, the object has {info.size}")
            checked = [f"size {info.size} bytes", await self._check_download(info, tmp, digest)]
            fsutil.publish(tmp, target)
            return checked
        finally:
            _remove(tmp)  # the target is a link to it when the download succeeded

    def _download_digest(self, info: ObjectInfo) -> Any:
        """What :meth:`download` feeds every chunk to (the kind's whole-object checksum)."""
        return hashlib.md5(usedforsecurity=False)

    @abc.abstractmethod
    def _read(self, info: ObjectInfo) -> AsyncIterator[bytes]:
        """The object's bytes in pieces of about :data:`CHUNK`, refused if it changed since ``info``."""

    @abc.abstractmethod
    async def _check_download(self, info: ObjectInfo, path: str, digest: Any) -> str:
        """Raise VerifyError unless the file at ``path`` (with ``digest`` of it) is the object."""


def open_store(destination: Destination, pool_size: int = 10, log: jsonline.Logger | None = None) -> Store:
    """The store of ``destination``'s kind (its module imported now, not before)."""
    if destination.kind == "s3":
        from cdh.store.s3 import S3Store

        return S3Store(destination, pool_size, log)
    if destination.kind == "azblob":
        from cdh.store.azblob import AzureBlobStore

        return AzureBlobStore(destination, pool_size, log)
    if destination.kind == "gs":
        from cdh.store.gcs import GcsStore

        return GcsStore(destination, pool_size, log)
    raise ValueError(f"no store for destination kind {destination.kind!r}")


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
