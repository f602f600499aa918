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
# Shorter values cannot be told apart from ordinary text: redacting a 1-letter "secret"
# would mangle every line. Real keys are 16+ characters.
MIN_SECRET_CHARS = 4


def timestamp(t: float | None = None) -> str:
    t = time.time() if t is None else t
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t * 1000) % 1000:03d}Z"


def line(level: str, event: str, fields: dict, secrets: tuple[str, ...] = (), encode=None) -> bytes:
    """The bytes of one log line, newline included. ``encode``: another JSON encoder (the agent's orjson)."""
    encode = encode or dumps
    data = encode({"ts": timestamp(), "level": level, "event": event, **fields})
    for s in secrets:
        if len(s) >= MIN_SECRET_CHARS:
            data = data.replace(dumps(s)[1:-1], REDACTED.encode())
    return data + b"\n"
