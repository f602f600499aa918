"""``--since``: a duration back from now (``30m``, ``2h``, ``7d``) or an absolute UTC date/time."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from cdh.config.values import duration


def parse_since(text: str, now: float | None = None) -> float:
    """Epoch seconds; raises ValueError with what is allowed."""
    now = time.time() if now is None else now
    s = text.strip()
    try:
        return now - duration(0)(s)
    except ValueError:
        pass
    try:
        when = datetime.fromisoformat(s)
    except ValueError:
        raise ValueError("a duration (30m, 2h, 7d) or a date/time (2024-06-10, 2024-06-10T06:00)") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()
