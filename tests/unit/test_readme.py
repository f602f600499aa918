"""The README's settings table is the settings table: a new or changed setting must be documented."""

from __future__ import annotations

from pathlib import Path

from cdh import config

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_configuration_table_matches_the_settings():
    text = README.read_text()
    table = config.markdown_table()
    assert table in text, "README's Configuration table is stale: paste `cdh config --list --markdown`"


def test_every_setting_is_in_the_table():
    rows = config.markdown_table().splitlines()[2:]
    assert [r.split("`")[1] for r in rows] == [s.name for s in config.SPECS]
