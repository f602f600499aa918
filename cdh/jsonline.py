"""One JSON object per line: the log format of the agent and the composer.

Every line has ``ts`` (UTC, RFC 3339 with milliseconds), ``level`` and
``event`` (a dotted name such as ``upload.done``), then the event's fields.
Secret values are replaced wherever they appear, so a key that leaks into an
exception text still never reaches a log.
"""

from __future__ import annotations

import json
import time


def dumps(obj: object) -> bytes:
    # stdlib json, not orjson: importing orjson pulls in dataclasses, uuid, inspect and
    # datetime (~14 ms measured with -X importtime), paid by the composer on every crash
    # while the kernel holds the dying process. Log lines are small; json is fast enough.
    return json.dumps(obj, default=str, ensure_ascii=False, separators=(",", ":")).encode()

REDACTED = "<redacted>"


def timestamp(t: float | None = None) -> str:
    t = time.time() if t is None else t
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t * 1000) % 1000:03d}Z"


def line(level: str, event: str, fields: dict, secrets: tuple[str, ...] = ()) -> bytes:
    """The bytes of one log line, newline included."""
    data = dumps({"ts": timestamp(), "level": level, "event": event, **fields})
    for s in secrets:
        if s:
            data = data.replace(dumps(s)[1:-1], REDACTED.encode())
    return data + b"\n"
