"""Object keys: what a key's prefix and name say about a dump without downloading it.

The agent writes key = CDH_S3_KEY_PREFIX (rendered) + zip name. Listing a big
bucket is cheapest when the prefix is narrowed before listing: the template's
literal start, plus every variable whose value a filter fixes (``--node``,
``--namespace``, ``--pod``), plus the dates ``--since`` spans. The rest is
filtered on object metadata after listing.
"""

from __future__ import annotations

import time

from cdh.config.values import TEMPLATE_FIELD, template_fields
from cdh.keys import DATE_VARIABLES, date_values, is_key_safe

MAX_PREFIXES = 400          # more date slots than this: list from the first date variable instead
DAY, HOUR = 86400, 3600


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

