"""Object keys and metadata: the one definition the agent writes and the bucket tools read.

key = ``CDH_S3_KEY_PREFIX`` rendered + zip name. Every value put into a key is
sanitised to ``[A-Za-z0-9._-]`` (never ``.``/``..``, never empty), so only the
template's own ``/`` separate key components. Object metadata
(``x-amz-meta-<name>``) carries :data:`METADATA_NAMES`; unknown values are left
out rather than sent empty. Stdlib only.
"""

from __future__ import annotations

import re
import time

from cdh.config.values import render_template

MAX_VALUE_CHARS = 128         # per key component and per metadata value
UNKNOWN = "unknown"
METADATA_NAMES = ("namespace", "pod", "container", "node", "signal", "exe", "uuid", "timestamp")
DATE_VARIABLES = ("date", "year", "month", "day", "hour")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def sanitise(value: object) -> str:
    """A key component: ``[A-Za-z0-9._-]``, never ``.``/``..``, never empty, length-capped."""
    if value is None or value == "":
        return UNKNOWN
    s = _UNSAFE.sub("_", str(value))[:MAX_VALUE_CHARS]
    return "_" * len(s) if s in (".", "..") else s


def is_key_safe(value: str) -> bool:
    """True when the agent writes ``value`` into a key unchanged (so a filter can narrow a listing)."""
    return bool(value) and sanitise(value) == value


def date_values(t: float) -> dict[str, str]:
    """The date variables of a key prefix at epoch ``t`` (UTC)."""
    g = time.gmtime(t)
    return {"date": time.strftime("%Y-%m-%d", g), "year": f"{g.tm_year:04d}",
            "month": f"{g.tm_mon:02d}", "day": f"{g.tm_mday:02d}", "hour": f"{g.tm_hour:02d}"}


def crash_time(info: dict, fallback: float) -> float:
    """Epoch seconds of the crash (dump-info's ``timestamp``, the kernel's %t), or ``fallback``."""
    try:
        t = float(info.get("timestamp"))
    except (TypeError, ValueError):
        return fallback
    return t if 0 < t < 1e11 else fallback


def node_of(info: dict, node_name: str | None) -> object:
    """The crash's node: the agent's CDH_NODE_NAME, else the host name the composer saw."""
    return node_name or info.get("node_hostname")


def crash_values(info: dict, node: object) -> dict[str, object]:
    """What a dump-info says about the crash, by metadata / key variable name (unsanitised)."""
    return {
        "namespace": info.get("namespace"), "pod": info.get("podname") or info.get("pod"),
        "container": info.get("container"), "node": node, "signal": info.get("signal"),
        "exe": info.get("exe"), "uuid": info.get("uuid"), "timestamp": info.get("timestamp"),
    }


def object_key(template: str, info: dict, node: object, crash_time: float, zip_name: str) -> str:
    """The object key of a zip: the rendered prefix (values sanitised) + the zip's name."""
    values = crash_values(info, node)
    variables = {k: sanitise(v) for k, v in values.items()}
    variables["exe_name"] = variables.pop("exe")
    variables.update(date_values(crash_time))
    return render_template(template, variables.__getitem__).lstrip("/") + zip_name


def metadata(info: dict, node: object) -> dict[str, str]:
    """``x-amz-meta-*`` values: printable ASCII (HTTP headers), capped, unknown ones left out."""
    return {k: _header_value(v) for k, v in crash_values(info, node).items() if v not in (None, "")}


def _header_value(value: object) -> str:
    s = str(value).encode("ascii", "backslashreplace").decode("ascii")
    return "".join(c if " " <= c <= "~" else "?" for c in s)[:MAX_VALUE_CHARS]
