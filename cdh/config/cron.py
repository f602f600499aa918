"""Sweep schedules: ``CDH_SCHEDULE`` (standard cron) and IBM's ``SCHEDULE`` (IBM's scheduler).

Two dialects, one iterator (:class:`Schedule`, on croniter):

- ``CDH_SCHEDULE``: Unix cron, 5 fields (``*/10 * * * *``), or 6 with seconds first; day of week
  0-7 (0 and 7 = Sunday); a day of month and a day of week both restricted match either (Vixie cron).
- IBM's ``SCHEDULE`` (the Rust ``cron`` crate under tokio-cron-scheduler, in UTC): seconds first, 6
  fields or 7 with a year (1970-2100); day of week **1 = Sunday ... 7 = Saturday** (0 is invalid);
  names (``Mon``, ``Jan``, full names too); ``?`` in day of month / day of week; ``a/b`` counts from a
  to the end; day of month **and** day of week must both match; ``@yearly @monthly @weekly @daily
  @hourly``. :func:`parse_ibm` expands every field to explicit numbers, so croniter iterates it with
  the same meaning (day of week renumbered, ``day_or=False``); the year is filtered here (croniter's
  own year field fails to find some dates).

Agent only: croniter is imported when a schedule is parsed or iterated, never by the composer.
"""

from __future__ import annotations

import calendar
from datetime import UTC, datetime

YEARS = (1970, 2100)
# IBM's fields: (name, low, high, names → ordinal)
_MONTHS = {m.lower(): i for i, m in enumerate(calendar.month_name) if m}
_MONTHS |= {m.lower(): i for i, m in enumerate(calendar.month_abbr) if m}
_DAYS = {d.lower(): (i + 1) % 7 + 1 for i, d in enumerate(calendar.day_name)}  # Monday → 2 (1 = Sunday)
_DAYS |= {d.lower(): (i + 1) % 7 + 1 for i, d in enumerate(calendar.day_abbr)}
_DAYS |= {"tues": 3, "wednes": 4, "thur": 5, "thurs": 5}
_IBM_FIELDS = (("second", 0, 59, {}), ("minute", 0, 59, {}), ("hour", 0, 23, {}),
               ("day of month", 1, 31, {}), ("month", 1, 12, _MONTHS), ("day of week", 1, 7, _DAYS),
               ("year", *YEARS, {}))
_IBM_SHORTHANDS = {"@yearly": "0 0 0 1 1 *", "@monthly": "0 0 0 1 * *", "@weekly": "0 0 0 * * 1",
                   "@daily": "0 0 0 * * *", "@hourly": "0 0 * * * *"}
_ANY_ALLOWED = (3, 5)  # `?` only in day of month and day of week


class Schedule:
    """When to sweep: ``next_after(t)`` gives the next tick (epoch seconds) after ``t``."""

    __slots__ = ("croniter_expr", "day_or", "dialect", "seconds_first", "text", "years")

    def __init__(self, text: str, dialect: str, croniter_expr: str, seconds_first: bool, day_or: bool,
                 years: frozenset[int] | None = None) -> None:
        self.text = text                  # as the user wrote it
        self.dialect = dialect            # "cron" (CDH_SCHEDULE) or "ibm" (SCHEDULE)
        self.croniter_expr = croniter_expr
        self.seconds_first = seconds_first
        self.day_or = day_or
        self.years = years                # IBM's year field; None: every year

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return f"Schedule({self.text!r}, {self.dialect})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Schedule) and (self.text, self.dialect) == (other.text, other.dialect)

    def __hash__(self) -> int:
        return hash((self.text, self.dialect))

    def next_after(self, t: float) -> float | None:
        """The first tick after epoch second ``t``, or None when there is none (a year gone by)."""
        from croniter import CroniterBadDateError, croniter

        start = datetime.fromtimestamp(t, UTC)
        while True:
            if self.years is not None:
                later = [y for y in self.years if y >= start.year]
                if not later:
                    return None
                if later[0] > start.year:  # jump to the next year the schedule allows
                    start = datetime(later[0], 1, 1, tzinfo=UTC).replace(microsecond=0)
                    start = datetime.fromtimestamp(start.timestamp() - 1, UTC)
            ticks = croniter(self.croniter_expr, start, second_at_beginning=self.seconds_first,
                             day_or=self.day_or)
            try:
                at = ticks.get_next(datetime)
            except CroniterBadDateError:  # a date that never comes (30 February)
                return None
            if self.years is None or at.year in self.years:
                return at.timestamp()
            start = datetime(at.year, 12, 31, 23, 59, 59, tzinfo=UTC)


def parse_cron(raw: str) -> Schedule | None:
    """``CDH_SCHEDULE``: 5-field cron, or 6 with seconds first; empty: no schedule."""
    s = " ".join(raw.split())
    if not s:
        return None
    from croniter import croniter

    n = len(s.split(" "))
    if n not in (5, 6) or not croniter.is_valid(s, second_at_beginning=(n == 6)):
        raise ValueError("a cron expression: 5 fields, or 6 with seconds first")
    return Schedule(s, "cron", s, seconds_first=(n == 6), day_or=True)


def parse_ibm(raw: str) -> Schedule | None:
    """IBM's ``SCHEDULE`` with IBM's meaning (module docstring); empty: no schedule."""
    s = " ".join(raw.split())
    if not s:
        return None
    fields = _IBM_SHORTHANDS.get(s.lower(), s).split(" ")
    if len(fields) not in (6, 7):
        raise ValueError("IBM's cron: 6 fields (seconds first) or 7 (with a year), e.g. 0 */5 * * * *")
    sets = [_ibm_field(f, i) for i, f in enumerate(fields)]
    dow = sets[5]
    cron_fields = [_numbers(x) for x in sets[:5]]
    cron_fields.append("*" if dow is None else ",".join(str(d - 1) for d in sorted(dow)))  # 0 = Sunday
    years = frozenset(sets[6]) if len(sets) == 7 and sets[6] is not None else None
    return Schedule(s, "ibm", " ".join(cron_fields), seconds_first=True, day_or=False, years=years)


def _numbers(values: set[int] | None) -> str:
    return "*" if values is None else ",".join(str(v) for v in sorted(values))


def _ibm_field(text: str, index: int) -> set[int] | None:
    """The ordinals a field allows, or None for all of them (``*``, ``?``)."""
    name, lo, hi, names = _IBM_FIELDS[index]
    out: set[int] = set()
    for part in text.split(","):
        if part in ("*", "?") and (part == "*" or index in _ANY_ALLOWED):
            if text.count(",") == 0:
                return None
            out |= set(range(lo, hi + 1))
            continue
        base, slash, step = part.partition("/")
        if base == "?" and index in _ANY_ALLOWED:
            base = "*"
        first, last = lo, hi
        if base != "*":
            a, dash, b = base.partition("-")
            first = _ordinal(a, name, lo, hi, names)
            last = _ordinal(b, name, lo, hi, names) if dash else (hi if slash else first)
            if not dash and not slash:
                out.add(first)
                continue
            if slash and not dash and not a.isdigit():
                raise ValueError(f"IBM's cron: {name} {part!r}: a step needs a number or a range")
        if first > last:
            raise ValueError(f"IBM's cron: {name} range {part!r} runs backwards")
        n = int(step) if slash and step.isdigit() else (1 if not slash else 0)
        if n <= 0:
            raise ValueError(f"IBM's cron: {name} {part!r}: the step must be a positive number")
        out |= set(range(first, last + 1, n))
    return out


def _ordinal(text: str, name: str, lo: int, hi: int, names: dict[str, int]) -> int:
    v = int(text) if text.isdigit() else names.get(text.lower())
    if v is None or not lo <= v <= hi:
        raise ValueError(f"IBM's cron: {name} {text!r} is not in {lo}-{hi}"
                         + (" (1 = Sunday ... 7 = Saturday)" if name == "day of week" else ""))
    return v
