"""Small formatting helpers shared by the bucket tools: what reaches the terminal, sizes, times, tables.

:func:`shown` is the one gate for text that came from a workload or the bucket (object keys and
metadata, a dump's log lines, argv, paths, image names): a crashing pod or anyone who can write to
the bucket must not be able to drive the developer's terminal (retitle it, clear it, set its
clipboard with OSC 52, overprint a line with a carriage return) or reorder what it shows.
"""

from __future__ import annotations

import re
import time

# C0 controls, DEL and C1 controls (a terminal acts on ESC, CSI, OSC, BEL, CR, BS ...), and the
# Unicode bidirectional overrides and isolates (Trojan Source: the shown order is not the byte order).
_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(m: re.Match) -> str:
    c = m.group()
    return _NAMED.get(c) or (f"\\x{ord(c):02x}" if ord(c) < 0x80 else f"\\u{ord(c):04x}")


def shown(text: object, keep: str = "") -> str:
    """``text`` with every character a terminal would act on written as an escape, as ``git`` and
    ``ls -b`` show file names: ``\\x1b``, ``\\r``, ``\\n``, ``\\u009b``, ``\\u202e``. ``keep`` names
    characters to leave as they are (a tab in a log line)."""
    text = str(text)
    if keep:
        return _UNSAFE.sub(lambda m: m.group() if m.group() in keep else _escape(m), text)
    return _UNSAFE.sub(_escape, text)


def has_control(text: str | None) -> bool:
    """True when :func:`shown` would change ``text``."""
    return bool(text) and _UNSAFE.search(text) is not None


def human_size(n: int | None) -> str:
    if n is None:
        return "?"
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def utc(ts: float | None) -> str:
    if ts is None:
        return "?"
    try:
        return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ts))
    except (TypeError, ValueError, OverflowError, OSError):  # None, or a time from the bucket: 1e999, nan
        return "?"


def table(headers: list[str], rows: list[list[str]]) -> str:
    """Left-aligned columns separated by two spaces; the last column is not padded. Every cell goes
    through :func:`shown` (tabs and newlines too: a cell is one line)."""
    rows = [[shown(c) for c in r] for r in rows]
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]
    lines = []
    for row in [headers, *rows]:
        cells = [c.ljust(w) for c, w in zip(row[:-1], widths[:-1], strict=True)] + [row[-1]]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)
