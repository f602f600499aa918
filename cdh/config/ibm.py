"""IBM Core Dump Handler values, read with IBM's meaning: the alias converters of cdh/config/table.py.

Every value IBM's Helm chart can render is accepted (README "Coming from the IBM Core Dump Handler"):
the chart renders unset values as empty strings (``INTERVAL=``, ``SCHEDULE=``), numbers of a million
and more in Helm's float notation (``3.6e+06``), and its README's file name template with double
braces. A converter returns the value in cdh's terms, or ``(value, note)`` when cdh reads it
differently from IBM or better: the note is said once at start and by ``cdh config``.

Stdlib only and cheap: the composer imports the settings table on every crash.
"""

from __future__ import annotations

import re

from cdh.config.values import is_region_name, parse_bool, template_fields

U32_MAX = (1 << 32) - 1


def number(raw: str) -> int | None:
    """A non-negative integer as IBM's chart renders it: digits, or Helm's ``3.6e+06``; else None."""
    v = raw.strip()
    if v.isdigit():
        return int(v)
    if re.fullmatch(r"\d+(\.\d+)?[eE]\+?\d+", v):
        f = float(v)
        if f == int(f) and f < 1 << 63:
            return int(f)
    return None


def _float_note(raw: str, n: int, what: str) -> str | None:
    if raw.strip().isdigit():
        return None
    return f"read as {n} (Helm writes numbers of a million and more this way; IBM's {what} could not read it)"


def compression(raw: str) -> str:
    """``COMP_COMPRESSION``: true → deflate, false → none."""
    return "deflate" if parse_bool(raw) else "none"


def interval(raw: str):
    """``INTERVAL``: milliseconds; empty (the chart's unset value) is no interval."""
    if not raw.strip():
        return ""
    ms = number(raw)
    if ms is None or ms <= 0:
        raise ValueError("milliseconds, a positive integer")
    note = _float_note(raw, ms, "agent")
    if ms >= 59_000:
        note = (f"a sweep every {ms / 1000:g} s (IBM's agent swept once a minute for any INTERVAL of "
                "59000 and more)")
    elif ms < 1000:
        note = "IBM's agent stopped at start on an INTERVAL under 1000; cdh sweeps that often"
    return (f"{ms}ms", note)


def schedule(raw: str):
    """``SCHEDULE``: IBM's cron, with IBM's meaning (cdh/config/cron.py); empty is no schedule."""
    from cdh.config.cron import parse_ibm  # agent only (SCHEDULE is an agent setting)

    s = parse_ibm(raw)
    if s is None:
        return ""
    return (s, "IBM's cron: seconds first, day of week 1 = Sunday ... 7 = Saturday, day of month AND "
               "day of week, UTC (CDH_SCHEDULE takes standard cron)")


_LOG_LEVELS = {"trace": "debug", "debug": "debug", "info": "info", "warn": "warning", "error": "error",
               "off": "off"}


def log_level(raw: str):
    """``COMP_LOG_LEVEL``: IBM's Trace, Debug, Info, Warn, Error, Off in any case; anything else is
    Debug, as IBM's composer read it (``warning`` and ``""`` included)."""
    level = _LOG_LEVELS.get(raw.lower())  # exact, as IBM's parser: " Warn" is not Warn
    if level is None:
        return ("debug", "not one of IBM's Trace, Debug, Info, Warn, Error, Off: IBM's composer used "
                         "Debug, and so does cdh (CDH_COMPOSER_LOG_LEVEL takes warning)")
    if raw.lower() == "trace":
        return (level, "cdh has no trace level: debug")
    return level


def log_length(raw: str):
    """``COMP_LOG_LENGTH``: any u32 (IBM's type); CDH_LOG_MAX_BYTES caps the bytes either way."""
    n = number(raw)
    if n is None or n > U32_MAX:
        raise ValueError(f"an integer from 0 to {U32_MAX}")
    return (str(n), _float_note(raw, n, "composer"))


def timeout(raw: str):
    """``COMP_TIMEOUT``: seconds (u32). 0 timed out every crash at once in IBM's composer."""
    n = number(raw)
    if n is None or n > U32_MAX:
        raise ValueError("seconds, an integer")
    if n == 0:
        return ("600s", "IBM's composer gave up on every crash at once with 0 (cores lost); cdh uses 600s")
    return (f"{n}s", _float_note(raw, n, "composer"))


def image_cmd(raw: str):
    """``COMP_CRIO_IMAGE_CMD``: img or images (any case); IBM used img for anything else."""
    v = raw.strip().lower()
    if v in ("img", "images"):
        return v
    return ("img", "not img or images: IBM's composer used img, and so does cdh")


_DOUBLE = re.compile(r"\{\{\s*([^{}|\s]*)\s*\}\}")
_SINGLE = re.compile(r"\{\s*([^{}|\s]*)\s*(\|\s*\w+\s*)?\}")


def filename_template(allowed: frozenset[str]):
    """``COMP_FILENAME_TEMPLATE``: IBM's documented ``{{uuid}}`` form is read as ``{uuid}``; spaces and
    a ``|formatter`` inside braces are dropped. A template IBM's composer could not render (a variable
    not in ``allowed``, unbalanced braces) gave a bare uuid: so ``{uuid}``."""
    def convert(raw: str):
        out = _DOUBLE.sub(r"{\1}", raw.strip())
        doubled = out != raw.strip()
        out = _SINGLE.sub(r"{\1}", out)
        fields = template_fields(out)
        if fields is None or any(n not in allowed for n in fields):
            return ("{uuid}", "IBM's composer could not render this template and named every zip "
                              "<uuid>.zip; cdh does the same ({uuid})")
        if doubled:
            return (out, f"read as {out} (IBM's composer did not render the double-brace form it "
                         "documents and named every zip <uuid>.zip)")
        return out
    return convert


# ---------------------------------------------------------------- S3_REGION: a region, or a host


_AWS_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d+$")
# rust-s3's named regions that are not AWS (IBM's S3 library): endpoint, signing region
_NAMED = {**{r: (f"https://{r}.digitaloceanspaces.com", r) for r in ("nyc3", "ams3", "sgp1", "fra1")},
          "yandex": ("https://storage.yandexcloud.net", "ru-central1"),
          "ru-central1": ("https://storage.yandexcloud.net", "ru-central1"),
          **{f"wa-{r}": (f"https://s3.{r}.wasabisys.com", r)
             for r in ("us-east-1", "us-east-2", "us-west-1", "eu-central-1")}}
DEFAULT_SIGNING_REGION = "us-east-1"


def s3_location(region: str, endpoint: str | None) -> tuple[str, str | None, str | None]:
    """IBM's ``S3_REGION`` → (signing region, endpoint, note).

    IBM's S3 library took ``S3_REGION`` as an AWS region when it was one of its names, as a known
    provider's region (DigitalOcean, Yandex, Wasabi), and as **a host** otherwise: ``https://<value>``
    unless a scheme is given, port kept (IBM COS, ODF, MinIO). ``S3_ENDPOINT`` set wins as the
    endpoint. The signing region is named by the host where it names one (``s3.eu-west-1.amazonaws.com``,
    ``s3.us-south.cloud-object-storage.appdomain.cloud``), else us-east-1, which IBM COS, ODF, MinIO and
    Ceph accept (IBM signed with the whole host string, which botocore cannot).
    """
    value = region.strip()
    if not value:
        return "", endpoint, None
    if value in _NAMED and not endpoint:
        url, signing = _NAMED[value]
        return signing, url, f"{value} is a region of another provider: endpoint {url}, as IBM's agent used"
    if is_region_name(value):  # one word: a region (IBM would have taken `minio` for a host too)
        return value, endpoint, None
    url = value if "://" in value else "https://" + value
    m = re.match(r"^(https?)://([^/\s]+)/?$", url)
    if not m:
        raise ValueError("a region name, or a host (IBM's way: https://<host>[:port])")
    signing = _region_in_host(m.group(2).rsplit(":", 1)[0]) or DEFAULT_SIGNING_REGION
    if endpoint:
        return signing, endpoint, (f"a host while S3_ENDPOINT is {endpoint}: signing region {signing} "
                                   "(set CDH_S3_REGION to change it)")
    return signing, url, (f"a host, IBM's way to name a store: endpoint {url}, signing region {signing} "
                          "(set CDH_S3_REGION to change it)")


def _region_in_host(host: str) -> str | None:
    labels = host.lower().split(".")
    for label in labels:
        if _AWS_REGION.match(label):
            return label
    # IBM Cloud Object Storage: s3[.direct|.private].<region>.cloud-object-storage.appdomain.cloud
    if "cloud-object-storage" in labels:
        i = labels.index("cloud-object-storage")
        if i >= 1 and labels[i - 1] not in ("s3", "direct", "private"):
            return labels[i - 1]
    return None


# ---------------------------------------------------------------- HOST_DIR/.env, IBM's composer settings

# The names IBM's agent wrote into HOST_DIR/.env for its composer, and the chart's name for each.
COMPOSER_ENV = {
    "LOG_LEVEL": "COMP_LOG_LEVEL", "IGNORE_CRIO": "COMP_IGNORE_CRIO",
    "INCLUDE_PROC_INFO": "COMP_INCLUDE_PROC_INFO", "CRIO_IMAGE_CMD": "COMP_CRIO_IMAGE_CMD",
    "USE_CRIO_CONF": "DEPLOY_CRIO_CONFIG", "FILENAME_TEMPLATE": "COMP_FILENAME_TEMPLATE",
    "LOG_LENGTH": "COMP_LOG_LENGTH", "POD_SELECTOR_LABEL": "COMP_POD_SELECTOR_LABEL",
    "TIMEOUT": "COMP_TIMEOUT", "COMPRESSION": "COMP_COMPRESSION", "CORE_EVENTS": "COMP_CORE_EVENTS",
    "EVENT_DIRECTORY": "COMP_CORE_EVENT_DIR",
}
