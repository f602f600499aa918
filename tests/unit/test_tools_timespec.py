"""--since: a duration back from now, or a UTC date/time."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from cdh.tools.timespec import parse_since

T = datetime(2024, 6, 10, 6, 13, 20, tzinfo=UTC).timestamp()


def test_parse_since():
    assert parse_since("2h", now=T) == T - 7200
    assert parse_since("7d", now=T) == T - 7 * 86400
    assert parse_since("2024-06-10", now=T) == datetime(2024, 6, 10, tzinfo=UTC).timestamp()
    assert parse_since("2024-06-10T08:00:00+02:00", now=T) == T - 13 * 60 - 20
    with pytest.raises(ValueError, match="a duration"):
        parse_since("last tuesday", now=T)
