"""Small formatting helpers shared by the bucket tools: sizes, times, tables."""

from __future__ import annotations

import sys
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import TypeVar

    T = TypeVar("T")


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
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ts))


def print_table(headers: list[str], row: Callable[[T], list[str]], items: Sequence[T]) -> None:
    """:func:`table` of ``row(item)`` for each item, printed line by line: the rows are made twice
    (widths, then lines) and never held, so a listing of 100,000 dumps prints in little memory."""
    widths = [len(h) for h in headers]
    for item in items:
        widths = [max(w, len(c)) for w, c in zip(widths, row(item), strict=True)]
    write = sys.stdout.write
    write(_line(headers, widths) + "\n")
    for item in items:
        write(_line(row(item), widths) + "\n")


def _line(cells: list[str], widths: list[int]) -> str:
    padded = [c.ljust(w) for c, w in zip(cells[:-1], widths[:-1], strict=True)]
    return "  ".join([*padded, cells[-1]]).rstrip()


def table(headers: list[str], rows: list[list[str]]) -> str:
    """Left-aligned columns separated by two spaces; the last column is not padded."""
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]
    return "\n".join(_line(row, widths) for row in [headers, *rows])
