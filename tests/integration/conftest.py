"""Integration fixtures: an agent subprocess against the session's S3 server (each kind)."""

from __future__ import annotations

import pytest

from tests.support.agentproc import base_env


@pytest.fixture
def core_dir(tmp_path):
    d = tmp_path / "host" / "cores"
    d.mkdir(parents=True, mode=0o700)
    return d


@pytest.fixture
def agent_env(tmp_path, s3_server, bucket, core_dir):
    """Environment for an agent uploading to ``bucket`` directly (no proxy)."""
    return base_env(tmp_path, s3_server.agent_env(bucket))
