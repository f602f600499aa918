"""``cdh get``: find one dump by key or uuid, download it, verify it, unpack it.

Verification, in order: the byte count against the object's size; the store's own
whole-object check (cdh/store/: on S3 the ETag where it is an MD5 or an MD5 of part
MD5s); then the CRC-32 of every zip entry while unpacking (cdh/tools/dumpzip.py). The
object is read on the condition that it is still the one looked up, so a dump replaced
mid-download is not mixed with its successor.

A dump a route encrypted (``<name>.zip.age``, cdh/routes.py) is downloaded and checked as above,
then decrypted with the identities the user gives (``-i FILE``, as ``age -d -i``; cdh/agecrypt.py:
every 64 KiB chunk authenticated, a cut file refused), then unpacked and checked as any zip. Without
an identity that opens it, nothing is downloaded: :func:`identities_for` names its recipients.
Disk: the encrypted download and the zip are both there while it is decrypted.
"""

from __future__ import annotations

import asyncio
import os

from cdh import agecrypt, keys, ondisk
from cdh.store import VerifyError
from cdh.tools.bucket import BucketError, head, list_zip_objects, with_metadata

TYPE_CHECKING = False
if TYPE_CHECKING:
    from cdh.store import ObjectInfo, Store
    from cdh.tools.progress import Progress

__all__ = ["NeedsIdentity", "VerifyError", "decrypt", "download", "identities_for", "resolve"]


class NeedsIdentity(Exception):
    """The dump is encrypted and no identity given opens it: the message names its recipients."""


async def resolve(store: Store, wanted: str, prefixes: list[str], concurrency: int = 16) -> ObjectInfo:
    """The object of a key or a dump uuid (with its metadata)."""
    url = store.destination.url
    if not ondisk.is_uuid(wanted):
        names = (wanted,) if keys.is_dump_key(wanted) else (
            wanted, ondisk.zip_name(wanted), keys.encrypted_name(ondisk.zip_name(wanted)))
        for key in names:
            found = await head(store, key)
            if found is not None:
                return found
        raise BucketError(f"no object {url(wanted)}")
    objects = await list_zip_objects(store, prefixes)
    by_name = [o.key for o in objects if wanted.lower() in o.key.rsplit("/", 1)[-1].lower()]
    if not by_name:  # names without the uuid: ask each object's metadata
        by_name = [d.key for d in await with_metadata(store, objects, concurrency)
                   if d.uuid.lower() == wanted.lower()]
    if len(by_name) > 1:
        raise BucketError(f"uuid {wanted} matches {len(by_name)} objects: "
                          + ", ".join(by_name[:5]) + "; give the key instead")
    if not by_name:
        raise BucketError(f"no dump with uuid {wanted} in {url(prefixes[0] if prefixes else '')}")
    found = await head(store, by_name[0])
    if found is None:
        raise BucketError(f"{url(by_name[0])} vanished while looking it up")
    return found


async def download(store: Store, info: ObjectInfo, target: str,
                   progress: Progress | None = None) -> list[str]:
    """Download to ``target`` (via ``target.part``) and verify; return what was checked."""
    try:
        return await store.download(info, target, progress)
    except (VerifyError, BucketError, OSError):
        raise
    except Exception as err:  # the store's client: a failed or cut transfer
        raise BucketError(f"cannot download {store.destination.url(info.key)}: "
                          f"{store.failure(err).detail}") from None


def identities_for(info: ObjectInfo, url: str, identity_files: list[str]) -> list | None:
    """The identities to decrypt ``info`` with (None: it is not encrypted). NeedsIdentity, before any
    download, when none is given or none of those given is one of its recipients (by fingerprint)."""
    encryption = keys.encryption_of(info.key, info.metadata)
    if encryption is None:
        return None
    fmt, recipients = encryption
    meta = info.metadata or {}
    route = f" by route {meta[keys.ROUTE]}" if meta.get(keys.ROUTE) else ""
    to = f"to recipients {', '.join(recipients)}" if recipients else "to recipients it does not name"
    if fmt != agecrypt.FORMAT:
        raise NeedsIdentity(f"{url} is encrypted with {fmt!r}, which cdh cannot open")
    if not identity_files:
        raise NeedsIdentity(f"{url} is encrypted (age){route} {to}: give an identity that opens it with "
                            "-i FILE (as age -d -i)")
    identities, mine = [], []
    for path in identity_files:
        try:
            found = agecrypt.read_identities(path)
        except ValueError as err:
            raise NeedsIdentity(str(err)) from None
        identities += found
        mine += [f"{fp} ({path})" for fp in agecrypt.identity_fingerprints(found)]
    if recipients and not set(agecrypt.identity_fingerprints(identities)) & set(recipients):
        raise NeedsIdentity(f"{url} is encrypted (age){route} {to}; none of the identities given is one "
                            f"of them: {', '.join(mine)}")
    return identities


async def decrypt(encrypted: str, target: str, identities: list) -> str:
    """Decrypt the downloaded ``encrypted`` into ``target`` (off the event loop), then remove it;
    what was checked. DecryptError (nothing kept) when it does not open or is damaged."""
    try:
        size = await asyncio.to_thread(agecrypt.decrypt, encrypted, target, identities)
    finally:
        os.unlink(encrypted)
    return f"age: decrypted, every chunk authenticated ({size} bytes)"
