"""What a zip says about its crash: the dump-info entry, the object key and metadata.

The composer puts ``<name>-dump-info.json`` into every zip. From it come the
object key (``CDH_S3_KEY_PREFIX`` rendered + the zip's file name) and the
object metadata that ``cdh ls`` reads back (``x-amz-meta-<name>``):
namespace, pod, container, node, signal, exe, uuid, timestamp. A name whose
value is unknown is left out rather than sent empty.
"""

from __future__ import annotations

import json
import re
import time
import zipfile
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:
    from cdh.config import Settings

INFO_SUFFIX = "-dump-info.json"
MAX_INFO_BYTES = 1 << 20      # dump-info is a few hundred bytes; refuse a zip bomb
MAX_VALUE_CHARS = 128         # per key component and per metadata value
UNKNOWN = "unknown"
# Metadata names, shared with `cdh ls`: change both or neither.
METADATA_NAMES = ("namespace", "pod", "container", "node", "signal", "exe", "uuid", "timestamp")


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


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def sanitise(value: object) -> str:
    """A key component: ``[A-Za-z0-9._-]``, never ``.``/``..``, never empty, length-capped."""
    if value is None or value == "":
        return UNKNOWN
    s = _UNSAFE.sub("_", str(value))[:MAX_VALUE_CHARS]
    return "_" * len(s) if s in (".", "..") else s


def crash_time(info: dict, fallback: float) -> float:
    """Epoch seconds of the crash (the kernel's %t), or ``fallback`` (the zip's mtime)."""
    try:
        t = float(info.get("timestamp"))
    except (TypeError, ValueError):
        return fallback
    return t if 0 < t < 1e11 else fallback


def node(settings: Settings, info: dict) -> object:
    return settings.node_name or info.get("node_hostname")


def key_variables(settings: Settings, info: dict, mtime: float) -> dict[str, str]:
    t = time.gmtime(crash_time(info, mtime))
    values = {
        "node": node(settings, info), "namespace": info.get("namespace"),
        "pod": info.get("podname") or info.get("pod"), "container": info.get("container"),
        "exe_name": info.get("exe"), "signal": info.get("signal"), "uuid": info.get("uuid"),
    }
    out = {k: sanitise(v) for k, v in values.items()}
    out.update(date=time.strftime("%Y-%m-%d", t), year=time.strftime("%Y", t),
               month=time.strftime("%m", t), day=time.strftime("%d", t), hour=time.strftime("%H", t))
    return out


_FIELD = re.compile(r"\{([^{}]*)\}")


def object_key(settings: Settings, info: dict, zip_name: str, mtime: float) -> str:
    """Rendered prefix + zip name. Values never carry ``/``: only the template's own do."""
    variables = key_variables(settings, info, mtime)
    prefix = _FIELD.sub(lambda m: variables[m.group(1)], settings.s3_key_prefix)
    return prefix.lstrip("/") + zip_name


def metadata(settings: Settings, info: dict) -> dict[str, str]:
    """``x-amz-meta-*`` values: printable ASCII (HTTP headers), capped, unknown ones left out."""
    values = {
        "namespace": info.get("namespace"), "pod": info.get("podname") or info.get("pod"),
        "container": info.get("container"), "node": node(settings, info),
        "signal": info.get("signal"), "exe": info.get("exe"), "uuid": info.get("uuid"),
        "timestamp": info.get("timestamp"),
    }
    return {k: _header_value(v) for k, v in values.items() if v not in (None, "")}


def _header_value(value: object) -> str:
    s = str(value).encode("ascii", "backslashreplace").decode("ascii")
    return "".join(c if " " <= c <= "~" else "?" for c in s)[:MAX_VALUE_CHARS]
