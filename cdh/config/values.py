"""Parsers for setting values.

Each parser takes the raw string and returns a typed value, or raises
ValueError whose text says what is allowed; the loader adds the variable's
name and value. Stdlib only: the composer imports this on every crash.
"""

from __future__ import annotations

import os
import re

TYPE_CHECKING = False  # typing costs the composer ~6 ms to import
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import Any


KiB, MiB, GiB, TiB = 1 << 10, 1 << 20, 1 << 30, 1 << 40


class ConfigError(ValueError):
    """A setting is wrong. ``str(err)`` is the one line to show the user."""


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def parse_bool(raw: str) -> bool:
    v = raw.strip().lower()
    if v in _TRUE:
        return True
    if v in _FALSE:
        return False
    raise ValueError("true or false")


def int_range(lo: int | None = None, hi: int | None = None) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        try:
            v = int(raw.strip(), 10)
        except ValueError:
            raise ValueError(_range_text("an integer", lo, hi)) from None
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            raise ValueError(_range_text("an integer", lo, hi))
        return v
    return parse


def _range_text(what: str, lo: float | None, hi: float | None) -> str:
    if lo is not None and hi is not None:
        return f"{what} from {lo} to {hi}"
    if lo is not None:
        return f"{what} >= {lo}"
    if hi is not None:
        return f"{what} <= {hi}"
    return what


_SIZE_UNITS = {"": 1, "b": 1, "k": KiB, "kb": 1000, "kib": KiB, "m": MiB, "mb": 1000**2, "mib": MiB,
               "g": GiB, "gb": 1000**3, "gib": GiB, "t": TiB, "tb": 1000**4, "tib": TiB}
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")


def size(lo: int = 0) -> Callable[[str], int]:
    """Bytes: ``1048576``, ``64MiB``, ``1.5GiB``, ``10MB`` (decimal)."""
    def parse(raw: str) -> int:
        m = _SIZE_RE.match(raw)
        unit = m.group(2).lower() if m else None
        if not m or unit not in _SIZE_UNITS:
            raise ValueError(f"a size in bytes such as 64MiB or 1GiB (>= {human_size(lo)})")
        v = int(float(m.group(1)) * _SIZE_UNITS[unit])
        if v < lo:
            raise ValueError(f"a size in bytes such as 64MiB or 1GiB (>= {human_size(lo)})")
        return v
    return parse


def human_size(n: int) -> str:
    for unit, mult in (("TiB", TiB), ("GiB", GiB), ("MiB", MiB), ("KiB", KiB)):
        if n >= mult and n % mult == 0:
            return f"{n // mult}{unit}"
    return str(n)


_OFF = {"", "off", "none", "unlimited"}


def size_or_percent(allow_off: bool = False) -> Callable[[str], tuple[float, str] | None]:
    """``(bytes, "B")`` from ``64MiB``, or ``(percent, "%")`` from ``10%`` (of a filesystem's size).

    With ``allow_off``, ``off`` / ``none`` / ``unlimited`` / empty give None (no limit).
    """
    sizes = size(0)

    def parse(raw: str) -> tuple[float, str] | None:
        v = raw.strip().lower()
        if allow_off and v in _OFF:
            return None
        if v.endswith("%"):
            try:
                pct = float(v[:-1])
            except ValueError:
                pct = -1.0
            if not 0 <= pct <= 100:
                raise ValueError(_SIZE_OR_PERCENT + (", or off" if allow_off else ""))
            return (pct, "%")
        try:
            return (sizes(raw), "B")
        except ValueError:
            raise ValueError(_SIZE_OR_PERCENT + (", or off" if allow_off else "")) from None
    return parse


_SIZE_OR_PERCENT = "a size such as 10GiB, or a percentage of the filesystem such as 10%"


def rate(raw: str) -> tuple[int, float] | None:
    """``N/DURATION`` (``5/10m``: at most 5 in any 10 minutes); ``off`` or empty: no limit."""
    v = raw.strip().lower()
    if v in _OFF or v == "0":
        return None
    count, slash, window = v.partition("/")
    try:
        n = int(count)
        seconds = duration(0)(window) if slash else -1.0
    except ValueError:
        n, seconds = 0, -1.0
    if n < 1 or seconds <= 0:
        raise ValueError("COUNT/DURATION such as 5/10m (at most 5 in any 10 minutes), or off")
    return (n, seconds)


_DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")


def duration(lo: float = 0, unit_s: float = 1.0) -> Callable[[str], float]:
    """Seconds as float: ``30s``, ``5m``, ``1h30m``, ``250ms``; a bare number is in ``unit_s``."""
    def parse(raw: str) -> float:
        s = raw.strip().lower()
        try:
            v = float(s) * unit_s
        except ValueError:
            pos, v = 0, 0.0
            for m in _DURATION_PART.finditer(s):
                if m.start() != pos:
                    break
                v += float(m.group(1)) * _DURATION_UNITS[m.group(2)]
                pos = m.end()
            if not s or pos != len(s):
                raise ValueError(f"a duration such as 30s, 5m or 1h (> {lo}s)") from None
        if v <= lo or v != v:
            raise ValueError(f"a duration such as 30s, 5m or 1h (> {lo}s)")
        return v
    return parse


def optional(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    """Empty means unset (None); anything else must parse."""
    return lambda raw: None if raw.strip() == "" else parse(raw)


def choice(*options: str, aliases: Mapping[str, str] | None = None) -> Callable[[str], str]:
    table = {o.lower(): o for o in options} | {k.lower(): v for k, v in (aliases or {}).items()}

    def parse(raw: str) -> str:
        v = table.get(raw.strip().lower())
        if v is None:
            raise ValueError("one of " + ", ".join(options))
        return v
    return parse


def abs_path(raw: str) -> str:
    v = raw.strip()
    if not v.startswith("/") or "\0" in v or "\n" in v:
        raise ValueError("an absolute path")
    return os.path.normpath(v)


def text(raw: str) -> str:
    return raw.strip()


def ip_address(raw: str) -> str:
    """An IPv4 or IPv6 address to listen on (0.0.0.0 or :: for every interface)."""
    import ipaddress  # only when set: the composer never parses this

    v = raw.strip()
    try:
        return str(ipaddress.ip_address(v.strip("[]")))
    except ValueError:
        raise ValueError("an IP address, e.g. 0.0.0.0 (every interface), 127.0.0.1 or the pod's IP") from None


def secret(raw: str) -> str:
    # Secrets keep inner characters exactly; only surrounding newlines from files go.
    return raw.strip("\r\n")


def path_list(raw: str) -> tuple[str, ...]:
    parts = tuple(p for p in raw.split(":") if p)
    if any(not p.startswith("/") for p in parts):
        raise ValueError("a colon-separated list of absolute paths")
    return parts


def template(allowed: frozenset[str]) -> Callable[[str], str]:
    """A ``{name}`` template using only ``allowed`` names, single braces (IBM's tinytemplate)."""
    def parse(raw: str) -> str:
        names = template_fields(raw)
        if names is None or any(n not in allowed for n in names):
            raise ValueError("a template using only {" + "}, {".join(sorted(allowed)) + "}")
        return raw.strip()
    return parse


# The one definition of a template field, for every template cdh renders (CDH_FILENAME_TEMPLATE,
# CDH_S3_KEY_PREFIX) and every reader of one (the bucket tools' listing prefixes).
TEMPLATE_FIELD = re.compile(r"\{([^{}]*)\}")


def template_fields(tpl: str) -> list[str] | None:
    """The ``{names}`` in ``tpl``, or None when braces are unbalanced."""
    bare = TEMPLATE_FIELD.sub("", tpl)
    if bare.count("{") or bare.count("}"):
        return None
    return TEMPLATE_FIELD.findall(tpl)


def render_template(tpl: str, value_of: Callable[[str], str]) -> str:
    """``tpl`` with each ``{name}`` replaced by ``value_of(name)``."""
    return TEMPLATE_FIELD.sub(lambda m: value_of(m.group(1)), tpl)


_LABEL_KEY = re.compile(r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")


def label_selector(raw: str) -> tuple[str, str | None] | None:
    """``key`` or ``key=value`` (one Kubernetes label); empty means no selector."""
    s = raw.strip()
    if not s:
        return None
    key, eq, value = s.partition("=")
    if not _LABEL_KEY.match(key) or len(key) > 253 or (eq and (not _LABEL_VALUE.match(value)
                                                              or len(value) > 63)):
        raise ValueError("a label key, or key=value, as Kubernetes allows")
    return (key, value if eq else None)


def endpoint_url(raw: str) -> str | None:
    s = raw.strip().rstrip("/")
    if not s:
        return None
    if "://" not in s:
        s = "https://" + s  # IBM users often give a bare host (storage.googleapis.com)
    if not re.match(r"^https?://[^/\s]+(/\S*)?$", s):
        raise ValueError("an http:// or https:// URL")
    from urllib.parse import urlsplit  # agent settings only: the composer never parses an endpoint

    try:
        parts = urlsplit(s)
        _ = parts.port  # a port that is not a number raises here, as botocore would when building
    except ValueError as err:
        raise ValueError(f"an http:// or https:// URL ({err})") from None
    if not parts.hostname:
        raise ValueError("an http:// or https:// URL with a host")
    return s


def emulator_url(raw: str) -> str | None:
    """An emulator's address as the clouds' SDKs take it: ``host:port`` (plain http) or a URL."""
    s = raw.strip().rstrip("/")
    if not s:
        return None
    return endpoint_url(s if "://" in s else "http://" + s)


# CDH_DESTINATION: kind -> (what the name is, the rule) and the URL's shape. Patterns stay strings:
# re caches them on first use, and the composer (which imports this module) never parses these.
DESTINATION_NAMES = {
    "s3": ("an S3 bucket name", r"[A-Za-z0-9][A-Za-z0-9._-]{0,254}"),
    "gs": ("a Cloud Storage bucket name (3-222 of a-z 0-9 . _ -)", r"[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]"),
    "azblob": ("an Azure container name (3-63 of a-z 0-9 -)", r"(?!.*--)[a-z0-9][a-z0-9-]{1,61}[a-z0-9]"),
}
DESTINATION_FORMS = "s3://bucket[/prefix], gs://bucket[/prefix] or azblob://container[/prefix]"


def destination_url(raw: str) -> str:
    """``kind://bucket[/prefix]``, normalised to ``kind://bucket/`` + ``prefix/``; empty: not set."""
    s = raw.strip()
    if not s:
        return ""
    kind, sep, rest = s.partition("://")
    if not sep or kind not in DESTINATION_NAMES or "?" in rest or "#" in rest:
        raise ValueError(DESTINATION_FORMS)
    bucket, _, prefix = rest.partition("/")
    what, pattern = DESTINATION_NAMES[kind]
    if not re.fullmatch(pattern, bucket):
        raise ValueError(f"{bucket!r} is not {what}")
    prefix = prefix.strip("/")
    if re.search(r"[{}\x00-\x1f\x7f]|(^|/)\.{1,2}(/|$)|//", prefix):
        raise ValueError("the prefix is a plain path (no . or .. parts, no empty parts); "
                         "template variables go in CDH_S3_KEY_PREFIX")
    return f"{kind}://{bucket}/" + (prefix + "/" if prefix else "")


def cron(raw: str):
    """``CDH_SCHEDULE``: standard cron (cdh/config/cron.py); empty means no schedule."""
    from cdh.config.cron import parse_cron  # agent only: croniter is imported when a schedule is set

    return parse_cron(raw)


# botocore's own check of a region name (a host there raises InvalidRegionError when the client is built)
_REGION_NAME = re.compile(r"^[a-zA-Z0-9](?:[a-zA-Z0-9\-]{0,61}[a-zA-Z0-9])?$")


def is_region_name(value: str) -> bool:
    return bool(_REGION_NAME.match(value))


def region(raw: str) -> str:
    """A region name, as botocore checks it at client construction (too late: after host setup)."""
    v = raw.strip()
    if v and not is_region_name(v):
        raise ValueError("a region name such as eu-west-1 (a store's host belongs in CDH_S3_ENDPOINT)")
    return v


def file_mode(raw: str) -> int:
    """An octal file mode, read-write for the owner, at most read for the group and others, no execute
    or special bits: 0600, 0640, 0644. A zip or event file others could write would let any node user
    change a core or an event before it is uploaded or read."""
    v = raw.strip()
    try:
        mode = int(v, 8)
    except ValueError:
        mode = -1
    if mode < 0 or mode & ~0o644 or mode & 0o600 != 0o600:
        raise ValueError("an octal mode such as 0600, 0640 or 0644 (rw for the owner, at most r for others)")
    return mode
