"""The bucket tools' commands as a user meets them: one line on stderr, exit 1."""

from __future__ import annotations


def test_inspect_of_a_missing_or_foreign_file_fails_in_one_line(tmp_path):
    from tests.support.cli import run_cdh

    r = run_cdh("inspect", str(tmp_path / "nope.zip"))
    assert r.returncode == 1 and r.stderr.startswith("cdh inspect: ") and r.stderr.count("\n") == 1
    (tmp_path / "x.zip").write_bytes(b"garbage")
    r = run_cdh("inspect", str(tmp_path / "x.zip"))
    assert r.returncode == 1 and "not a readable zip" in r.stderr
