"""/readyz and cdh_core_pattern_ours flip when core_pattern changes behind the agent's back (a fake
/proc/sys here; tests/kernel/test_ops_kernel.py does it with the real kernel), and come back; the
bucket's readiness recovers without an upload or a reload."""

from __future__ import annotations

from tests.support.agentproc import set_fake_sysctl, wait_until
from tests.support.s3server import free_port
from tests.support.scrape import probe, scrape


def test_core_pattern_changed_behind_the_agents_back(agent_env, start_agent, tmp_path):
    port = free_port()
    agent = start_agent({**agent_env, "CDH_METRICS_PORT": str(port), "CDH_CHECK_INTERVAL": "200ms"})
    agent.wait_event("agent.started")
    assert probe(port, "/readyz") == (200, {"ready": True, "checks": {
        "host_setup": True, "core_pattern": True, "storage": True}})
    pattern = tmp_path / "proc-sys" / "kernel" / "core_pattern"
    ours = pattern.read_text()
    set_fake_sysctl(pattern, "|/usr/lib/systemd/systemd-coredump %P %u %g %s %t %c %h\n")  # a package install
    (changed,) = agent.wait_event("host.core_pattern_changed")  # seen by the periodic check, unasked
    assert changed["core_pattern"].startswith("|/usr/lib/systemd/systemd-coredump")
    status, body = probe(port, "/readyz")
    assert status == 503 and body["checks"]["core_pattern"] is False and body["checks"]["storage"] is True
    assert scrape(port).value("cdh_core_pattern_ours") == 0
    assert probe(port, "/healthz")[0] == 200  # not a liveness matter: a restart is the fix, not a loop
    set_fake_sysctl(pattern, ours)
    wait_until(lambda: probe(port, "/readyz")[0] == 200, what="ready again")
    assert scrape(port).value("cdh_core_pattern_ours") == 1
    assert len(agent.events("host.core_pattern_changed")) == 1  # said once, not on every check


def test_metrics_and_probes_listen_only_where_configured(agent_env, start_agent):
    """CDH_METRICS_ADDRESS: /metrics, /healthz and /readyz on that address alone (behind a proxy on
    127.0.0.1, or the pod's IP under hostNetwork), not on every interface."""
    import socket

    port = free_port()
    agent = start_agent({**agent_env, "CDH_METRICS_PORT": str(port), "CDH_METRICS_ADDRESS": "127.0.0.2"})
    (listening,) = agent.wait_event("health.listening")
    assert (listening["address"], listening["port"]) == ("127.0.0.2", port)
    assert probe(port, "/healthz", host="127.0.0.2")[0] == 200
    with socket.socket() as s:  # another address of this machine: nothing listens there
        assert s.connect_ex(("127.0.0.1", port)) != 0


def test_storage_readiness_recovers_by_itself(agent_env, start_agent, s3):
    port = free_port()
    late = agent_env["CDH_S3_BUCKET"] + "-late"
    agent = start_agent({**agent_env, "CDH_METRICS_PORT": str(port), "CDH_S3_BUCKET": late,
                         "CDH_CHECK_INTERVAL": "200ms"})
    agent.wait_event("storage.unavailable")
    status, body = probe(port, "/readyz")
    assert status == 503 and body["checks"]["storage"] is False
    s3.create_bucket(Bucket=late)  # the bucket appears (created by a slow Terraform run)
    agent.wait_event("storage.ok")
    assert probe(port, "/readyz")[0] == 200 and scrape(port).value("cdh_storage_reachable", route="main") == 1


def test_a_lost_intake_watch_is_set_up_again_and_liveness_stays_ok(agent_env, start_agent, core_dir, s3,
                                                                    bucket):
    """A cleanup job removes CORE_DIR: inotify drops the watch; the agent makes CORE_DIR again and
    watches it, so neither a restart nor the probes are needed for the next zip to go."""
    from tests.support.s3server import zip_keys
    from tests.support.zips import make_zip

    port = free_port()
    agent = start_agent({**agent_env, "CDH_METRICS_PORT": str(port)})
    agent.wait_event("agent.started")
    assert probe(port, "/healthz")[0] == 200
    core_dir.rmdir()
    agent.wait_event("intake.watch_lost")
    wait_until(lambda: core_dir.is_dir(), what="CORE_DIR made again")
    assert probe(port, "/healthz") == (200, {"alive": True, "checks": {"loop": True, "workers": True,
                                                                       "intake": True}})
    z = make_zip(core_dir, 100)
    wait_until(lambda: list(zip_keys(s3, bucket)) == [z.filename], what="the next zip uploaded")
