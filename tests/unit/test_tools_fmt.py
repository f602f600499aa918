"""cdh/tools/fmt.py: what reaches the developer's terminal from a workload or the bucket."""

from __future__ import annotations

import pytest

from cdh.tools.fmt import has_control, shown, table, utc


@pytest.mark.parametrize(("raw", "expected"), [
    ("\x1b]52;c;ZWNobw==\x07", "\\x1b]52;c;ZWNobw==\\x07"),   # OSC 52: the clipboard
    ("a\r\x1b[2Kb", "a\\r\\x1b[2Kb"),                          # overprint a line
    ("\u009b31m", "\\u009b31m"),                                # an 8-bit CSI
    ("safe\u202egnp.exe", "safe\\u202egnp.exe"),                # Trojan Source: right-to-left override
    ("x\x00\x7f\ny\tz", "x\\x00\\x7f\\ny\\tz"),
    ("plain ünïcödé / 💥 \\x1b", "plain ünïcödé / 💥 \\x1b"),  # printable text (a backslash too) as is
])
def test_controls_are_shown_escaped(raw, expected):
    assert shown(raw) == expected
    assert has_control(raw) == (raw != expected)
    assert shown(shown(raw)) == shown(raw)


def test_a_log_line_may_keep_its_tabs():
    assert shown("a\tb\x1b", keep="\t") == "a\tb\\x1b"


def test_table_cells_are_one_line_each():
    assert table(["A", "KEY"], [["x\ny", "k\x1b[2J"]]).splitlines() == ["A     KEY", "x\\ny  k\\x1b[2J"]


@pytest.mark.parametrize("ts", [None, float("inf"), float("nan"), 1e300, -1e300])
def test_an_impossible_time_from_the_bucket_is_a_question_mark(ts):
    assert utc(ts) == "?"
