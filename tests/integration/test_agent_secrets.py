"""Secrets never reach the log: not at debug level, not in botocore's request dumps, not in errors."""

from __future__ import annotations

import signal

from tests.support.agentproc import run_sweep
from tests.support.zips import make_zip

SESSION_TOKEN = "FQoGZXIvYXdzEXAMPLE+session/token=="


def test_keys_and_token_never_appear_in_logs_even_at_debug(agent_env, start_agent, core_dir, tmp_path,
                                                          s3_server):
    secret_file = tmp_path / "secret"
    secret_file.write_text(agent_env["CDH_S3_SECRET_KEY"] + "\n")
    env = {k: v for k, v in agent_env.items() if k != "CDH_S3_SECRET_KEY"}
    env.update(CDH_LOG_LEVEL="debug", CDH_S3_SECRET_KEY_FILE=str(secret_file),
               CDH_S3_SESSION_TOKEN=SESSION_TOKEN, CDH_MULTIPART_THRESHOLD="5MiB", CDH_PART_SIZE="5MiB")
    make_zip(core_dir, 100)
    make_zip(core_dir, 6 * 1024 * 1024)
    agent = start_agent(env)
    if s3_server.checks_credentials:  # a real store knows its session tokens: this made-up one is refused
        refused = "InvalidAccessKeyId"
        assert {e["code"] for e in agent.wait_event("upload.denied", count=2)} == {refused}
    else:                              # moto takes any token
        refused = "NoSuchBucket"
        agent.wait_event("upload.done", count=2)
    agent.signal(signal.SIGTERM)
    assert agent.wait(30) == 0
    bad = {**env, "CDH_S3_BUCKET": "cdh-no-such-bucket"}  # error paths log request details too
    make_zip(core_dir, 100)
    swept = run_sweep(bad)
    assert swept.returncode == 1 and refused in swept.stdout
    logs = agent.text() + swept.stdout + swept.stderr
    assert "lib.log" in logs and "Authorization" in logs  # botocore's debug dumps are there...
    for secret in (agent_env["CDH_S3_ACCESS_KEY"], agent_env["CDH_S3_SECRET_KEY"], SESSION_TOKEN):
        assert secret not in logs                           # ...with every secret redacted
    assert "<redacted>" in logs


def test_config_output_hides_secrets(agent_env):
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "cdh", "config"], env=agent_env, capture_output=True,
                         text=True, timeout=60, cwd="/")
    assert out.returncode == 0
    assert agent_env["CDH_S3_SECRET_KEY"] not in out.stdout
