"""One JSON object per line: the log format of the agent and the composer, and their loggers' base.

Every line has ``ts`` (UTC, RFC 3339 with milliseconds), ``level`` and
``event`` (a dotted name such as ``upload.done``), then the event's fields.
Secret values are replaced wherever they appear, so a key that leaks into an
exception text still never reaches a log.

:class:`Logger` is the level plumbing both logs share: ``log.info("event", field=value)``;
where the line goes is each one's :meth:`Logger.emit` (the agent: stdout, after its taps,
cdh/agent/log.py; the composer: HOST_DIR/composer.log, cdh/composer/log.py). Stdlib only:
the composer imports this on every crash.
"""

from __future__ import annotations

import json
import time


def dumps(obj: object) -> bytes:
    # stdlib json, not orjson: importing orjson pulls in dataclasses, uuid, inspect and
    # datetime (README "Dependencies"), paid by the composer on every crash while the
    # kernel holds the dying process. Log lines are small; json is fast enough.
    return json.dumps(obj, default=str, ensure_ascii=False, separators=(",", ":")).encode()

LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40}
OFF = 100  # a threshold above every level: nothing is written (IBM's COMP_LOG_LEVEL=Off)
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


class Logger:
    """``debug``/``info``/``warning``/``error`` → :meth:`emit`; lines below :attr:`threshold` are not
    written (a subclass decides what else sees them)."""

    threshold = LEVELS["info"]

    def enabled(self, level: str) -> bool:
        return LEVELS[level] >= self.threshold

    def emit(self, level: str, event: str, fields: dict) -> None:
        raise NotImplementedError

    def debug(self, event: str, **fields) -> None:
        self.emit("debug", event, fields)

    def info(self, event: str, **fields) -> None:
        self.emit("info", event, fields)

    def warning(self, event: str, **fields) -> None:
        self.emit("warning", event, fields)

    def error(self, event: str, **fields) -> None:
        self.emit("error", event, fields)
