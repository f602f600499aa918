"""Object keys and metadata: the one definition the agent writes and the bucket tools read.

key = the destination's prefix + ``CDH_S3_KEY_PREFIX`` rendered + the object's name, for every kind
of store; ``CDH_KEY_LAYOUT`` chooses the name:

- ``listing`` (the default): ``<YYYY-MM-DD>/<HHMMSS>~<signal>~<signature>~<namespace>~<pod>~
  <container>~<exe>~<node>~<uuid>~<image>~<top frame>~<zip name>`` (:func:`listed_name`, read
  back by :func:`parse_listed`), so what ``cdh ls`` shows and ``cdh ls --group`` groups comes from
  the listing itself, 1,000 objects per request, never one HEAD per object (README "From bucket to
  debugger" has the measurements);
- ``plain``: the zip's name, as IBM's agent names objects (for consumers that expect that).

Every value put into the prefix template is sanitised to ``[A-Za-z0-9._-]`` (never ``.``/``..``,
never empty), so only the template's own ``/`` separate key components. A listed value is kept
exactly, escaped (:func:`escape_listed`: each byte outside ``[A-Za-z0-9._-]`` as ``!XX``, from
S3's safe key characters), so neither ``/`` nor ``~`` occurs in it. Object metadata
(``x-amz-meta-<name>``, ``x-ms-meta-<name>``, Cloud Storage's ``metadata``) carries
:data:`METADATA_NAMES` (as each kind may name them: :func:`stored_metadata`); unknown values are
left out rather than sent empty. Each value is printable ASCII and at most MAX_VALUE_CHARS, so all
of them stay within S3's 2 KB of user metadata (:data:`METADATA_MAX_BYTES`, checked by
tests/unit/test_keys.py; Azure and Cloud Storage allow 8 KiB); ``signature`` and ``top-frame``
(cdh/stack/signature.py) let ``cdh ls --group`` group a bucket by cause without a download.
Stdlib only.

An object of a route that encrypts (cdh/routes.py, cdh/agecrypt.py) is named ``<zip name>.age``
and its metadata stays readable (the names above, so listing works) plus :data:`ENCRYPTION`
(``age``), :data:`RECIPIENTS` (the recipients' fingerprints, comma-separated) and, for any object
sent through a route, :data:`ROUTE` (its name; never a key or a credential).

Reading keys back (``cdh ls``, ``cdh get``): listing a big bucket is cheapest when
the prefix is narrowed before listing (:func:`listing_prefixes`): the template's
literal start, plus every variable whose value a filter fixes (``--node``,
``--namespace``, ``--pod``), plus the dates ``--since`` spans. The rest is
filtered on object metadata after listing.
"""

from __future__ import annotations

import calendar
import re
import time

from cdh.config.values import TEMPLATE_FIELD, render_template, template_fields
from cdh.ondisk import ZIP_SUFFIX, dump_int

MAX_VALUE_CHARS = 128         # per key component and per metadata value
UNKNOWN = "unknown"
METADATA_NAMES = ("namespace", "pod", "container", "node", "signal", "exe", "uuid", "timestamp", "image",
                  "signature", "top-frame")
METADATA_MAX_BYTES = 2048     # S3: user-defined metadata, names and values, at most 2 KB
ENCRYPTION, RECIPIENTS, ROUTE = "encryption", "recipients", "route"
ENCRYPTED_SUFFIX = ".age"     # <name>.zip.age: the zip, encrypted to a route's age recipients
DUMP_SUFFIXES = (ZIP_SUFFIX, ZIP_SUFFIX + ENCRYPTED_SUFFIX)
DATE_VARIABLES = ("date", "year", "month", "day", "hour")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
MAX_PREFIXES = 400            # more date slots than this: list from the first date variable instead
DAY, HOUR = 86400, 3600


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
    """Epoch seconds of the crash (dump-info's ``timestamp_s``, or IBM's ``timestamp``: the kernel's
    %t), or ``fallback``."""
    t = dump_int(info, "timestamp_s", "timestamp")
    return t if t is not None and 0 < t < 1e11 else fallback


def node_of(info: dict, node_name: str | None) -> object:
    """The crash's node: the agent's CDH_NODE_NAME, else the host name the composer saw."""
    return node_name or info.get("node_hostname")


def crash_values(info: dict, node: object) -> dict[str, object]:
    """What a dump-info says about the crash, by metadata / key variable name (unsanitised)."""
    return {
        "namespace": info.get("namespace"), "pod": info.get("podname") or info.get("pod"),
        "container": info.get("container"), "node": node,
        "signal": dump_int(info, "signal_number", "signal"), "exe": info.get("exe"), "uuid": info.get("uuid"),
        "timestamp": dump_int(info, "timestamp_s", "timestamp"),
        "image": info.get("image"), "signature": info.get("signature"), "top-frame": info.get("top_frame"),
    }


def object_key(template: str, info: dict, node: object, crash_time: float, zip_name: str,
               layout: str = "listing") -> str:
    """The object key of a zip: the rendered prefix (values sanitised) + its name in ``layout``."""
    values = crash_values(info, node)
    variables = {k: sanitise(v) for k, v in values.items()}
    variables["exe_name"] = variables.pop("exe")
    variables.update(date_values(crash_time))
    prefix = render_template(template, variables.__getitem__).lstrip("/")
    if layout == "plain":
        return prefix + zip_name
    return prefix + listed_name(values, crash_time, zip_name, MAX_KEY_BYTES - len(prefix.encode()))


# ---------------------------------------------------------------- the listing layout

LAYOUTS = ("listing", "plain")
# What a listed name carries between its time and the zip's name, in this order (crash_values' names).
LISTED = ("signal", "signature", "namespace", "pod", "container", "exe", "node", "uuid", "image", "top-frame")
LISTED_SEP = "~"
# Each listed value is cut here (escaped), so a key stays below S3's 1,024 bytes whatever the pod
# names (the metadata keeps MAX_VALUE_CHARS); Kubernetes names are at most 63 characters but pods' (253).
LISTED_VALUE_CHARS = 63
MAX_KEY_BYTES = 1024          # S3's limit on a key (UTF-8)
# Stores that keep objects as files (MinIO, SeaweedFS's filer) refuse a key with a path segment over
# 255 bytes (a file name): the listed name's time-and-values segment stays within it.
MAX_SEGMENT_BYTES = 255
_LISTED_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-")
_ESCAPED = re.compile(r"(?:![0-9A-F]{2})+")
_LISTED = re.compile(r"(?:^|/)(\d{4})-(\d\d)-(\d\d)/(\d\d)(\d\d)(\d\d)~"
                     + "~".join(["([A-Za-z0-9._!-]*)"] * len(LISTED)) + r"~([^/]+)$")
DAY_DIR = re.compile(r"\d{4}-\d\d-\d\d/")   # a listing layout's day directory, as a prefix's last part
TIME_NAME = "%H%M%S"


def escape_listed(value: str, limit: int = LISTED_VALUE_CHARS) -> str:
    """``value`` for a listed name: each character outside ``[A-Za-z0-9._-]`` as its UTF-8 bytes in
    ``!XX``; cut after at most ``limit`` characters of the result, never inside a character."""
    out, size = [], 0
    for ch in value:
        piece = ch if ch in _LISTED_SAFE else "".join(f"!{b:02X}" for b in ch.encode("utf-8", "replace"))
        if size + len(piece) > limit:
            break
        out.append(piece)
        size += len(piece)
    return "".join(out)


def unescape_listed(cell: str) -> str:
    if "!" not in cell:
        return cell
    return _ESCAPED.sub(lambda m: bytes.fromhex(m.group(0).replace("!", "")).decode("utf-8", "replace"), cell)


def listed_name(values: dict[str, object], crash_time: float, zip_name: str,
                max_bytes: int = MAX_KEY_BYTES) -> str:
    """``<day>/<HHMMSS>~<signal>~...~<top frame>~<zip name>`` (UTC); unknown values are empty, and
    the uuid is left out (empty) when the zip's name already holds it (the default name does). Within
    ``max_bytes`` (what the prefix leaves of S3's 1,024) and its last segment within
    :data:`MAX_SEGMENT_BYTES`: values are cut shorter where they must be."""
    g = time.gmtime(crash_time)
    raw = ["" if (v := values.get(name)) in (None, "") or (name == "uuid" and str(v) in zip_name) else str(v)
           for name in LISTED]
    day = time.strftime("%Y-%m-%d/", g)
    limit = LISTED_VALUE_CHARS
    while True:
        cells = (escape_listed(v, limit) for v in raw)
        segment = LISTED_SEP.join([time.strftime(TIME_NAME, g), *cells, zip_name])
        size = len(segment.encode())
        if (size <= MAX_SEGMENT_BYTES and len(day) + size <= max_bytes) or limit == 0:
            return day + segment
        limit //= 2


def parse_listed(key: str) -> dict[str, object] | None:
    """What a key in the listing layout says: ``time`` (epoch seconds, UTC, to the second),
    ``zip_name`` (without ``.age``) and the :data:`LISTED` values (unescaped; "" when unknown); None
    for any other key."""
    m = _LISTED.search(key)
    if m is None:
        return None
    g = m.groups()
    year, month, day, hour, minute, second = map(int, g[:6])
    if not (1 <= month <= 12 and 1 <= day <= 31 and hour < 24 and minute < 60 and second < 61):
        return None
    out: dict[str, object] = {name: unescape_listed(v) for name, v in zip(LISTED, g[6:-1], strict=True)}
    out["time"] = calendar.timegm((year, month, day, hour, minute, second))
    out["zip_name"] = g[-1].removesuffix(ENCRYPTED_SUFFIX)
    return out


def day_start(day_dir: str) -> float | None:
    """Epoch seconds (UTC) at the start of a day directory (``...YYYY-MM-DD/``), else None."""
    try:
        return calendar.timegm(time.strptime(day_dir.rstrip("/")[-10:], "%Y-%m-%d"))
    except ValueError:
        return None


def listed_start_after(day_dir: str, since: float) -> str | None:
    """The StartAfter that skips, inside ``day_dir``, every listed name older than ``since``."""
    start = day_start(day_dir)
    if start is None or since <= start:
        return None
    return day_dir + time.strftime(TIME_NAME, time.gmtime(since - 1)) + LISTED_SEP + LISTED_SEP


def metadata(info: dict, node: object) -> dict[str, str]:
    """``x-amz-meta-*`` values: printable ASCII (HTTP headers), capped, unknown ones left out."""
    return {k: _header_value(v) for k, v in crash_values(info, node).items() if v not in (None, "")}


def stored_metadata(kind: str, metadata: dict[str, str]) -> dict[str, str]:
    """The metadata as a store of ``kind`` keeps it: Azure's names must be C# identifiers (``_``,
    never ``-``); S3 (``x-amz-meta-*``) and Cloud Storage take the names as they are."""
    if kind != "azblob":
        return dict(metadata)
    return {name.replace("-", "_"): value for name, value in metadata.items()}


def read_metadata(kind: str, stored: dict[str, str]) -> dict[str, str]:
    """Stored metadata back under :data:`METADATA_NAMES` (names lower-cased: HTTP headers are not)."""
    lowered = {name.lower(): value for name, value in stored.items()}
    if kind != "azblob":
        return lowered
    ours = {name.replace("-", "_"): name for name in METADATA_NAMES}
    return {ours.get(name, name): value for name, value in lowered.items()}


def route_metadata(route: str, fingerprints: list[str] | None = None) -> dict[str, str]:
    """What an object sent through a route carries besides :func:`metadata`: the route's name and, when
    the body is encrypted, the format and the recipients' fingerprints (cdh/agecrypt.py)."""
    out = {ROUTE: _header_value(route)}
    if fingerprints:
        out[ENCRYPTION] = "age"
        out[RECIPIENTS] = ",".join(fingerprints)  # hex: header-safe; routes cap how many
    return out


def encrypted_name(zip_name: str) -> str:
    return zip_name + ENCRYPTED_SUFFIX


def content_type(key: str) -> str:
    """The Content-Type of an object: a zip, or an age file (which has no registered type)."""
    return "application/octet-stream" if key.endswith(ENCRYPTED_SUFFIX) else "application/zip"


def is_dump_key(key: str) -> bool:
    """An object the agent wrote: ``*.zip``, or ``*.zip.age`` (encrypted)."""
    return key.endswith(DUMP_SUFFIXES)


def encryption_of(key: str, metadata: dict[str, str] | None) -> tuple[str, list[str]] | None:
    """(format, recipient fingerprints) when the object's body is encrypted, else None. The name says
    so even when metadata is missing (an object copied without it)."""
    meta = {k.lower(): v for k, v in (metadata or {}).items()}
    if meta.get(ENCRYPTION) or key.endswith(ENCRYPTED_SUFFIX):
        fps = [f for f in meta.get(RECIPIENTS, "").split(",") if f]
        return meta.get(ENCRYPTION) or "age", fps
    return None


def zip_name_of(key: str) -> str:
    """The zip's file name of an object key, whatever the layout, without ``.age``."""
    listed = parse_listed(key)
    return str(listed["zip_name"]) if listed else key.rsplit("/", 1)[-1].removesuffix(ENCRYPTED_SUFFIX)


def _header_value(value: object) -> str:
    s = str(value).encode("ascii", "backslashreplace").decode("ascii")
    return "".join(c if " " <= c <= "~" else "?" for c in s)[:MAX_VALUE_CHARS]


# ---------------------------------------------------------------- reading keys back


def listing_prefixes(template: str, known: dict[str, str | None], since: float | None = None,
                     now: float | None = None) -> list[str]:
    """The key prefixes to list so that every object matching the filters is under one of them.

    ``known`` maps template variables (node, namespace, pod ...) to a filter
    value, or None. A value that is a glob or that the agent would rewrite
    cannot narrow the prefix: listing stops at that variable.
    """
    fields = template_fields(template) or []
    fixed = {k: v for k, v in known.items() if v and is_key_safe(v)}
    used_dates = [f for f in fields if f in DATE_VARIABLES]
    if not used_dates or since is None:
        return [_render_until_unknown(template, fixed)]
    step = HOUR if "hour" in used_dates else DAY
    now = time.time() if now is None else now
    slots = range(int(since // step) * step, int(now) + 1, step)
    if len(slots) > MAX_PREFIXES:
        return [_render_until_unknown(template, fixed)]
    prefixes = {_render_until_unknown(template, {**fixed, **date_values(t)}) for t in slots}
    return _drop_nested(prefixes)


def listing_levels(template: str, prefix: str) -> int:
    """Directories of ``template`` below ``prefix`` (one of its :func:`listing_prefixes`): how deep
    a listing walks before the layout's day directories (rendered values never hold a "/")."""
    return max(template.lstrip("/").count("/") - prefix.count("/"), 0)


def _render_until_unknown(template: str, values: dict[str, str]) -> str:
    """The template rendered up to (not including) the first variable without a value."""
    out, pos = [], 0
    for m in TEMPLATE_FIELD.finditer(template):
        out.append(template[pos:m.start()])
        if m.group(1) not in values:
            break
        out.append(values[m.group(1)])
        pos = m.end()
    else:
        out.append(template[pos:])
    return "".join(out).lstrip("/")   # as the agent writes keys


def _drop_nested(prefixes: set[str]) -> list[str]:
    """Sorted prefixes without any that another one already covers."""
    out: list[str] = []
    for p in sorted(prefixes):
        if not out or not p.startswith(out[-1]):
            out.append(p)
    return out

