"""The DaemonSet's split (cdh/agent/hostside.py): `cdh host` sets up, keeps and restores the node;
`cdh agent` with CDH_MANAGE_HOST=false uploads and never writes HOST_DIR outside CORE_DIR, EVENT_DIR and
state/. Both on one HOST_DIR and a fake /proc/sys (the node test: in containers, real kernel)."""

from __future__ import annotations

import os
import signal

from tests.support.agentproc import set_fake_sysctl, wait_until
from tests.support.projected import ConfigMapVolume
from tests.support.s3server import free_port
from tests.support.scrape import probe
from tests.support.zips import make_zip


def _tree(top) -> set[str]:
    return {os.path.relpath(os.path.join(root, name), top)
            for root, dirs, files in os.walk(top) for name in [*dirs, *files]}


def test_host_and_uploader_side_by_side(agent_env, start_agent, core_dir, tmp_path):
    host_dir = tmp_path / "host"
    sysctls = tmp_path / "proc-sys"
    cfg = ConfigMapVolume(tmp_path / "config")
    cfg.write(f"CDH_S3_BUCKET={agent_env['CDH_S3_BUCKET']}\n")
    port = free_port()
    uploader_env = {**agent_env, "CDH_MANAGE_HOST": "false", "CDH_CONFIG_FILE": cfg.path,
                    "CDH_METRICS_PORT": str(port)}
    # The two containers start in parallel: here the uploader first, on a HOST_DIR nobody set up.
    (host_dir / "state").mkdir()
    before = _tree(host_dir)
    agent = start_agent(uploader_env)
    agent.wait_event("agent.started")
    assert agent.events("host.managed_elsewhere")
    assert _tree(host_dir) == before  # it installed nothing
    status, body = probe(port, "/readyz")
    assert status == 503 and body["checks"]["host_setup"] is False and body["checks"]["core_pattern"] is False

    host_env = {k: v for k, v in agent_env.items() if not k.startswith(("CDH_S3_", "AWS_"))}
    host_env.update(CDH_CONFIG_FILE=cfg.path, CDH_UNINSTALL_ON_STOP="true", CDH_CHECK_INTERVAL="200ms")
    keeper = start_agent(host_env, args=("host",))
    keeper.wait_event("host.started")
    assert (host_dir / "cdc").is_file()
    assert 'CDH_COMPRESSION="deflate"' in (host_dir / "composer.env").read_text()
    pattern = sysctls / "kernel" / "core_pattern"
    assert pattern.read_text().startswith(f"|{host_dir}/cdc")
    wait_until(lambda: probe(port, "/readyz")[0] == 200, what="the uploader ready once the host is set up")

    make_zip(core_dir, 100)
    agent.wait_event("upload.done")
    with open(host_dir / "composer.log", "a") as log:  # what a composer writes; the uploader relays it
        log.write('{"ts":"2026-01-01T00:00:00Z","level":"info","event":"compose.done"}\n')
    wait_until(lambda: [e for e in agent.events("compose.done") if e.get("component") == "composer"],
               what="the composer's line relayed")

    # A ConfigMap change: the host rewrites composer.env; the uploader reloads its own settings.
    cfg.write(f"CDH_S3_BUCKET={agent_env['CDH_S3_BUCKET']}\nCDH_COMPRESSION=zstd\n")
    keeper.wait_event("config.reloaded")
    agent.wait_event("config.reloaded")
    wait_until(lambda: 'CDH_COMPRESSION="zstd"' in (host_dir / "composer.env").read_text(),
               what="composer.env rewritten by cdh host")

    # Something else takes core_pattern: the host says so, once.
    ours = pattern.read_text()
    set_fake_sysctl(pattern, "|/usr/lib/systemd/systemd-coredump %P\n")
    keeper.wait_event("host.core_pattern_changed")
    set_fake_sysctl(pattern, ours)

    agent.signal(signal.SIGTERM)
    assert agent.wait(30) == 0
    assert not agent.events("host.restore")  # the uploader never restores: the host container does
    assert os.path.isfile(host_dir / "state" / "composer-log.position")  # its one file outside CORE_DIR

    keeper.signal(signal.SIGTERM)
    assert keeper.wait(30) == 0
    assert keeper.events("host.restore") and keeper.events("host.stopped")
    assert pattern.read_text().strip() == "core"  # the fake tree's value before install
    assert not (host_dir / "cdc").exists()


def test_cdh_host_that_cannot_set_up_exits_1_with_one_line(agent_env, start_agent, tmp_path):
    long_dir = tmp_path / ("h" * 120)
    long_dir.mkdir()
    env = {**agent_env, "CDH_HOST_DIR": str(long_dir)}
    keeper = start_agent(env, args=("host",))
    assert keeper.wait(60) == 1
    (failed,) = keeper.events("agent.host_setup_failed")
    assert "CDH_HOST_DIR" in failed["error"]
