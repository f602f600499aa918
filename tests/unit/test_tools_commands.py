"""The bucket tools' commands as a user meets them: one line on stderr, exit 1; their output."""

from __future__ import annotations

import json

import pytest

from cdh.tools import commands


def test_inspect_of_a_missing_or_foreign_file_fails_in_one_line(tmp_path):
    from tests.support.cli import run_cdh

    r = run_cdh("inspect", str(tmp_path / "nope.zip"))
    assert r.returncode == 1 and r.stderr.startswith("cdh inspect: ") and r.stderr.count("\n") == 1
    (tmp_path / "x.zip").write_bytes(b"garbage")
    r = run_cdh("inspect", str(tmp_path / "x.zip"))
    assert r.returncode == 1 and "not a readable zip" in r.stderr


@pytest.mark.parametrize("items", [[], [{"key": "a", "metadata": {"pod": "p"}, "signal": None}, {"k": 1}]])
def test_the_json_array_is_written_item_by_item_as_json_dumps_writes_it(items, capsys):
    commands._print_json_array(iter(items))
    assert capsys.readouterr().out == json.dumps(items, indent=2) + "\n"


def test_the_table_is_written_row_by_row_as_table_writes_it(capsys):
    from cdh.tools.fmt import print_table, table

    rows = [["2026-12-02 04:37:12", "shop", "a-long-pod-name", "k1"], ["x", "y", "z", "k2"]]
    print_table(["TIME", "NS", "POD", "KEY"], lambda r: r, rows)
    assert capsys.readouterr().out == table(["TIME", "NS", "POD", "KEY"], rows) + "\n"
