"""Fixtures shared by every test suite."""

from __future__ import annotations

import os

import pytest

# Shared helpers: real S3 server process, fault proxy (tests/support/).
pytest_plugins = ["tests.support.fixtures"]


@pytest.fixture
def host_dir(tmp_path):
    """A temporary HOST_DIR; private, as the agent creates it."""
    d = tmp_path / "host"
    d.mkdir(mode=0o700)
    return d


@pytest.fixture
def clean_env(monkeypatch):
    """No CDH_* or IBM setting leaks from the developer's shell into a test."""
    from cdh.config import BY_ALIAS, NOT_SETTINGS

    for name in list(os.environ):
        if (name.startswith("CDH_") or name in BY_ALIAS) and not name.startswith(NOT_SETTINGS):
            monkeypatch.delenv(name)
    return monkeypatch
