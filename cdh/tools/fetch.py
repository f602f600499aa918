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
from cdh.tools.bucket import BucketError, Walk, head, with_metadata

TYPE_CHECKING = False
if TYPE_CHECKING:
    from cdh.store import ObjectInfo, Store
    from cdh.tools.progress import Progress

__all__ = ["VerifyError", "download", "resolve"]


async def resolve(store: Store, wanted: str, prefixes: list[str], levels: list[int],
                  concurrency: int = 16) -> ObjectInfo:
    """The object of a key or a dump uuid (with its metadata).

    A uuid is looked for in the listing: in the keys of the listing layout, and in every other
    object's name. Only objects whose name holds no uuid at all (a template without ``{uuid}``,
    written by an older agent) are asked for their metadata, one HEAD each.
    """
    url = store.destination.url
    if not ondisk.is_uuid(wanted):
        zipped = ondisk.zip_name(wanted)
        for key in (wanted, zipped) if not wanted.endswith(ondisk.ZIP_SUFFIX) else (wanted,):
            found = await head(store, key)
            if found is not None:
                return found
        raise BucketError(f"no object {url(wanted)}")
    wanted = wanted.lower()
    walk = await Walk(store, concurrency=concurrency).run(prefixes, levels)
    keys = [d.key for d in walk.dumps if d.uuid.lower() == wanted]
    named = {o.key: ondisk.find_uuid(o.key.rsplit("/", 1)[-1]).lower() for o in walk.other}
    keys += [k for k, u in named.items() if u == wanted]
    if not keys:  # names without a uuid: ask their metadata
        unnamed = [o for o in walk.other if not named[o.key]]
        keys = [d.key for d in await with_metadata(store, unnamed, concurrency) if d.uuid.lower() == wanted]
    if len(keys) > 1:
        raise BucketError(f"uuid {wanted} matches {len(keys)} objects: " + ", ".join(keys[:5])
                          + "; give the key instead")
    if not keys:
        raise BucketError(f"no dump with uuid {wanted} in {url(prefixes[0] if prefixes else '')}")
    found = await head(store, keys[0])
    if found is None:
        raise BucketError(f"{url(keys[0])} vanished while looking it up")
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
