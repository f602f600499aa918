"""The agent's log: one JSON line per event on stdout (cdh.jsonline), secrets redacted.

botocore and aiobotocore log through the stdlib ``logging`` module; :func:`route_stdlib`
sends those records through the same writer, so their lines are JSON too and the
same redaction applies (botocore's debug output includes request headers, where
an access key id or session token would otherwise appear).

Taps (:attr:`Log.taps`) see every event, whatever the level, before it is
filtered: the metrics (cdh/agent/metrics.py) count what the log says happened,
so the two never disagree.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

import orjson

from cdh import jsonline

if TYPE_CHECKING:
    from cdh.config import Settings

Tap = Callable[[str, str, dict], None]  # (level, event, fields)


class Log(jsonline.Logger):
    def __init__(self, level: str = "info", secrets: tuple[str, ...] = (), stream=None) -> None:
        self.threshold = jsonline.LEVELS[level]
        self.secrets = secrets
        self.stream = stream or sys.stdout.buffer
        self.taps: list[Tap] = []

    def configure(self, settings: Settings) -> None:
        """Follow ``settings`` (at start and after every reload: keys may have changed)."""
        # Old secrets stay redacted after a reload: uploads in flight still use the old client.
        # Longest first, so a secret that contains another is redacted whole.
        self.secrets = tuple(sorted(set(self.secrets) | set(settings.secrets), key=len, reverse=True))
        self.threshold = jsonline.LEVELS[settings.log_level]
        logging.getLogger().setLevel(logging.DEBUG if settings.log_level == "debug" else logging.WARNING)

    def emit(self, level: str, event: str, fields: dict) -> None:
        for tap in self.taps:
            try:
                tap(level, event, fields)
            except Exception:  # a metric must never cost a log line, nor an upload
                pass
        if not self.enabled(level):
            return
        self.stream.write(jsonline.line(level, event, fields, self.secrets, encode=_orjson))
        self.stream.flush()


def _orjson(obj: object) -> bytes:
    # The agent logs with orjson (the composer keeps the stdlib json: see cdh.jsonline).
    return orjson.dumps(obj, default=str)


class _Bridge(logging.Handler):
    def __init__(self, log: Log) -> None:
        super().__init__(logging.DEBUG)
        self.log = log

    def emit(self, record: logging.LogRecord) -> None:
        try:
            level = {"CRITICAL": "error", "WARNING": "warning", "ERROR": "error", "INFO": "info"}.get(
                record.levelname, "debug")
            fields = {"logger": record.name, "message": record.getMessage()}
            if record.exc_info and record.exc_info[1] is not None:
                fields["error"] = repr(record.exc_info[1])
            self.log.emit(level, "lib.log", fields)
        except Exception:  # a log line must never break an upload
            self.handleError(record)


def route_stdlib(log: Log) -> None:
    """Send every stdlib logging record (botocore, aiobotocore, aiohttp) through ``log``."""
    root = logging.getLogger()
    root.handlers[:] = [_Bridge(log)]
    root.setLevel(logging.DEBUG if log.threshold <= jsonline.LEVELS["debug"] else logging.WARNING)
