"""``cdh get``: find one dump by key or uuid, download it, verify it, unpack it.

Verification, in order: the byte count against the object's size; the store's own
whole-object check (cdh/store/: on S3 the ETag where it is an MD5 or an MD5 of part
MD5s); then the CRC-32 of every zip entry while unpacking (cdh/tools/dumpzip.py). The
object is read on the condition that it is still the one looked up, so a dump replaced
mid-download is not mixed with its successor.
"""

from __future__ import annotations

from cdh import ondisk
from cdh.store import VerifyError
from cdh.tools.bucket import BucketError, head, list_zip_objects, with_metadata

TYPE_CHECKING = False
if TYPE_CHECKING:
    from cdh.store import ObjectInfo, Store
    from cdh.tools.progress import Progress

__all__ = ["VerifyError", "download", "resolve"]


async def resolve(store: Store, wanted: str, prefixes: list[str], concurrency: int = 16) -> ObjectInfo:
    """The object of a key or a dump uuid (with its metadata)."""
    url = store.destination.url
    if not ondisk.is_uuid(wanted):
        zipped = ondisk.zip_name(wanted)
        for key in (wanted, zipped) if not wanted.endswith(ondisk.ZIP_SUFFIX) else (wanted,):
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
