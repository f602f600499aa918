"""What a zip says about its crash: the dump-info entry, the object key and metadata.

The composer puts ``<name>-dump-info.json`` into every zip. From it come the
object key and the object metadata, as cdh/keys.py defines them for the
agent and the bucket tools alike.
"""

from __future__ import annotations

import json
import zipfile
from typing import IO, TYPE_CHECKING

from cdh import keys

if TYPE_CHECKING:
    from cdh.config import Settings

INFO_SUFFIX = "-dump-info.json"
MAX_INFO_BYTES = 1 << 20      # dump-info is a few hundred bytes; refuse a zip bomb
METADATA_NAMES = keys.METADATA_NAMES


class DumpInfoError(ValueError):
    """The zip cannot be read or has no usable dump-info: it is reported and left in place."""


def read(fileobj: IO[bytes]) -> dict:
    """The dump-info of an open zip file (blocking: call it in a thread)."""
    try:
        with zipfile.ZipFile(fileobj) as zf:
            names = [i for i in zf.infolist() if i.filename.endswith(INFO_SUFFIX)]
            if len(names) != 1:
                raise DumpInfoError(f"expected one *{INFO_SUFFIX} entry, found {len(names)}")
            if names[0].file_size > MAX_INFO_BYTES:
                raise DumpInfoError(f"{names[0].filename} is {names[0].file_size} bytes, too big")
            info = json.loads(zf.read(names[0]))
    except DumpInfoError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError, EOFError) as err:
        raise DumpInfoError(f"not a readable zip: {err}") from None
    if not isinstance(info, dict):
        raise DumpInfoError("dump-info is not a JSON object")
    return info


def crash_time(info: dict, fallback: float) -> float:
    """Epoch seconds of the crash (the kernel's %t), or ``fallback`` (the zip's mtime)."""
    try:
        t = float(info.get("timestamp"))
    except (TypeError, ValueError):
        return fallback
    return t if 0 < t < 1e11 else fallback


def node(settings: Settings, info: dict) -> object:
    return settings.node_name or info.get("node_hostname")


def object_key(settings: Settings, info: dict, zip_name: str, mtime: float) -> str:
    """Rendered CDH_S3_KEY_PREFIX + zip name (cdh/keys.py)."""
    return keys.object_key(settings.s3_key_prefix, info, node(settings, info), crash_time(info, mtime),
                           zip_name)


def metadata(settings: Settings, info: dict) -> dict[str, str]:
    return keys.metadata(info, node(settings, info))
