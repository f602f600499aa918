"""Schedules: IBM's SCHEDULE with IBM's meaning, CDH_SCHEDULE as standard cron, by next-fire times."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from cdh.config import ConfigError, load
from cdh.config.cron import parse_cron, parse_ibm

WED_2025 = datetime(2025, 1, 1, tzinfo=UTC).timestamp()  # Wednesday 1 January 2025, 00:00:00 UTC


def fires(schedule, start: float = WED_2025, n: int = 2) -> list[str]:
    out, t = [], start
    for _ in range(n):
        t = schedule.next_after(t)
        if t is None:
            break
        out.append(datetime.fromtimestamp(t, UTC).strftime("%a %Y-%m-%d %H:%M:%S"))
    return out


@pytest.mark.parametrize(("expression", "expected"), [
    ("0 0 0 * * 1", ["Sun 2025-01-05 00:00:00", "Sun 2025-01-12 00:00:00"]),  # 1 = Sunday
    ("0 0 0 * * 7", ["Sat 2025-01-04 00:00:00", "Sat 2025-01-11 00:00:00"]),  # 7 = Saturday
    ("0 0 0 * * 2-6", ["Thu 2025-01-02 00:00:00", "Fri 2025-01-03 00:00:00"]),  # Monday to Friday
    ("0 0 0 * * Mon,Fri", ["Fri 2025-01-03 00:00:00", "Mon 2025-01-06 00:00:00"]),
    ("0 0 0 ? * MON", ["Mon 2025-01-06 00:00:00", "Mon 2025-01-13 00:00:00"]),
    ("0 0 0 * * */2", ["Thu 2025-01-02 00:00:00", "Sat 2025-01-04 00:00:00"]),  # 1,3,5,7: Sun Tue Thu Sat
    ("0 0 0 13 * 6", ["Fri 2025-06-13 00:00:00", "Fri 2026-02-13 00:00:00"]),  # the 13th AND a Friday
    ("0 0 0 1 1 * 2030", ["Tue 2030-01-01 00:00:00"]),                          # the year field
    ("0 0 12 29 2 * 2027-2029", ["Tue 2028-02-29 12:00:00"]),                   # only 2028 has the day
    ("1/60 * * * * *", ["Wed 2025-01-01 00:00:01", "Wed 2025-01-01 00:01:01"]),  # IBM's INTERVAL form
    ("*/20 30 9 * Jan-Feb *", ["Wed 2025-01-01 09:30:00", "Wed 2025-01-01 09:30:20"]),
    ("@weekly", ["Sun 2025-01-05 00:00:00", "Sun 2025-01-12 00:00:00"]),
    ("@hourly", ["Wed 2025-01-01 01:00:00", "Wed 2025-01-01 02:00:00"]),
    ("@yearly", ["Thu 2026-01-01 00:00:00", "Fri 2027-01-01 00:00:00"]),
])
def test_ibm_schedule_fires_when_ibms_scheduler_did(expression, expected):
    assert fires(parse_ibm(expression)) == expected


def test_a_schedule_whose_years_are_past_ends():
    assert fires(parse_ibm("0 0 0 * * * 2024")) == []


@pytest.mark.parametrize("expression", [
    "0 0 0 * * 0",          # IBM's days of week are 1-7
    "0 0 * * *",            # 5 fields: IBM's scheduler refused it
    "0 0 0 * ? *",          # ? only for the days
    "0 0 0 * * Tue/2",      # a named point takes no step
    "0 0 0 * * * 1969",
    "0 0 0 * * 5-2",
    "61 * * * * *",
])
def test_ibm_schedule_refuses_what_ibms_scheduler_refused(expression):
    with pytest.raises(ValueError):
        parse_ibm(expression)


def test_cdh_schedule_is_standard_cron():
    # 0 and 7 are Sunday, 1 is Monday; day of month OR day of week (Vixie cron)
    assert fires(parse_cron("0 0 * * 1")) == ["Mon 2025-01-06 00:00:00", "Mon 2025-01-13 00:00:00"]
    assert fires(parse_cron("0 0 0 * * 1")) == ["Mon 2025-01-06 00:00:00", "Mon 2025-01-13 00:00:00"]
    assert fires(parse_cron("0 0 13 * 5")) == ["Fri 2025-01-03 00:00:00", "Fri 2025-01-10 00:00:00"]


def test_the_ibm_name_keeps_ibms_meaning_and_the_cdh_name_standard_cron():
    ibm, cdh = load([{"SCHEDULE": "0 0 0 * * 1"}]).schedule, load([{"CDH_SCHEDULE": "0 0 0 * * 1"}]).schedule
    assert fires(ibm, n=1) == ["Sun 2025-01-05 00:00:00"] and fires(cdh, n=1) == ["Mon 2025-01-06 00:00:00"]
    assert str(ibm) == "0 0 0 * * 1" and ibm != cdh
    assert any("1 = Sunday" in n for n in load([{"SCHEDULE": "0 0 0 * * 1"}]).notes)
    with pytest.raises(ConfigError, match=r"^SCHEDULE='0 0 0 \* \* 0' is not valid: IBM's cron"):
        load([{"SCHEDULE": "0 0 0 * * 0"}])
