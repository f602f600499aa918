"""Secrets never reach the log: not at debug level, not in botocore's request dumps, not in errors."""

from __future__ import annotations

import signal

from tests.support.agentproc import run_sweep
from tests.support.faultproxy import FaultProxy, Rule
from tests.support.projected import Volume
from tests.support.s3server import list_keys
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
    agent.wait_event("upload.done", count=2)
    agent.signal(signal.SIGTERM)
    assert agent.wait(30) == 0
    bad = {**env, "CDH_S3_BUCKET": "cdh-no-such-bucket"}  # error paths log request details too
    make_zip(core_dir, 100)
    swept = run_sweep(bad)
    assert swept.returncode == 1 and "NoSuchBucket" in swept.stdout
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


def _key_files(agent_env: dict[str, str], keys: Volume) -> dict[str, str]:
    """The agent's environment with its keys as files of a Secret volume (the DaemonSet's way)."""
    env = {k: v for k, v in agent_env.items() if k not in ("CDH_S3_ACCESS_KEY", "CDH_S3_SECRET_KEY")}
    env.update(CDH_S3_ACCESS_KEY_FILE=f"{keys.root}/access-key",
               CDH_S3_SECRET_KEY_FILE=f"{keys.root}/secret-key")
    return env


def test_keys_rotate_without_a_restart(agent_env, start_agent, core_dir, tmp_path, s3_server, s3, bucket):
    """The Secret's files change the kubelet's way (a ..data swap) and the old key is revoked at once:
    the agent reloads its client from the new files and the next zip arrives, with no signal."""
    keys = Volume(tmp_path / "s3-keys", mode=0o400)
    old = {"access-key": "AKIAOLDKEY0000000001", "secret-key": "old-secret"}
    keys.update(old)
    with FaultProxy(s3_server.url) as proxy:
        env = {**_key_files(agent_env, keys), "CDH_S3_ENDPOINT": proxy.url}
        agent = start_agent(env)
        agent.wait_event("agent.started")
        make_zip(core_dir, 100)
        agent.wait_event("upload.done")
        keys.update({"access-key": "AKIANEWKEY0000000002", "secret-key": "new-secret"})
        proxy.add(Rule("error", header=("authorization", f"Credential={old['access-key']}/"), status=403,
                       code="InvalidAccessKeyId"))
        (reloaded,) = agent.wait_event("config.reloaded")
        assert set(reloaded["changed"]) == {"CDH_S3_ACCESS_KEY", "CDH_S3_SECRET_KEY"}  # names, never values
        name = make_zip(core_dir, 100).filename
        agent.wait_event("upload.done", count=2)
        assert any(k.endswith(name) for k in list_keys(s3, bucket))
        assert "new-secret" not in agent.text() and "old-secret" not in agent.text()


def test_an_absent_optional_secret_means_the_credential_chain(agent_env, start_agent, core_dir, tmp_path):
    """IRSA, Pod Identity, Workload Identity: the optional Secret cdh-s3 is not created, so its volume
    is an empty directory. The agent starts (one note), uploads with the chain (here: AWS_* variables),
    and takes the static keys when the Secret appears later."""
    keys = Volume(tmp_path / "s3-keys")
    (tmp_path / "s3-keys").mkdir()
    env = _key_files(agent_env, keys)
    env.update(AWS_ACCESS_KEY_ID=agent_env["CDH_S3_ACCESS_KEY"],
               AWS_SECRET_ACCESS_KEY=agent_env["CDH_S3_SECRET_KEY"])
    agent = start_agent(env)
    (note,) = [n["note"] for n in agent.wait_event("config.note") if "no such file" in n["note"]]
    assert "CDH_S3_ACCESS_KEY, CDH_S3_SECRET_KEY not set" in note
    make_zip(core_dir, 100)
    agent.wait_event("upload.done")
    keys.update({"access-key": agent_env["CDH_S3_ACCESS_KEY"], "secret-key": agent_env["CDH_S3_SECRET_KEY"]})
    (reloaded,) = agent.wait_event("config.reloaded")
    assert set(reloaded["changed"]) == {"CDH_S3_ACCESS_KEY", "CDH_S3_SECRET_KEY"}
