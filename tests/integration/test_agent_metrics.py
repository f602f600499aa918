"""/metrics during real runs: an agent subprocess, a real S3 server process, the real composer;
every counter is read back with prometheus_client's text parser after the work it counts."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest

from tests.support.agentproc import via_proxy, wait_until
from tests.support.composer import fake_proc, run_composer
from tests.support.faultproxy import Rule
from tests.support.projected import ConfigMapVolume
from tests.support.s3server import free_port
from tests.support.scrape import probe, scrape
from tests.support.zips import make_zip, zips_left

MARKER = b"CDH_ENVIRON_MARKER=hunter2-xyzzy"


@pytest.fixture
def port():
    return free_port()



def test_counters_follow_uploads_and_the_composers_captures(agent_env, start_agent, core_dir, tmp_path, port):
    agent = start_agent({**agent_env, "CDH_METRICS_PORT": str(port)})
    agent.wait_event("agent.started")
    m = scrape(port)
    assert m.value("cdh_uploads_succeeded_total", route="main", kind="s3") == 0
    assert m.value("cdh_cores_captured_total") == 0
    assert m.value("cdh_core_pattern_ours") == 1 and m.value("cdh_storage_reachable", route="main") == 1
    assert m.value("cdh_build_info", version="0.1.0") == 1

    zips = [make_zip(core_dir, size) for size in (100, 5000, 70_000)]
    agent.wait_event("upload.done", count=3)
    m = scrape(port)
    assert m.value("cdh_uploads_succeeded_total", route="main", kind="s3") == 3
    assert m.value("cdh_upload_bytes_total", route="main", kind="s3") == sum(z.size for z in zips)
    assert m.value("cdh_upload_duration_seconds_count", kind="s3") == 3
    assert m.value("cdh_pending_zips") == 0 and m.value("cdh_oldest_pending_zip_age_seconds") == 0
    assert all(m.value("cdh_queue_depth", state=s) == 0 for s in ("queued", "uploading", "retry_wait"))
    assert m.value("cdh_core_dir_free_bytes") > 0

    # A real composer run into this HOST_DIR: its zip is uploaded and its log line counted and relayed.
    host = tmp_path / "host"
    core = os.urandom(50_000)
    proc_root = fake_proc(tmp_path / "fakeproc", environ=MARKER + b"\0")
    done = run_composer(host, core=core, proc_root=proc_root, env={"CDH_INCLUDE_PROC_ENVIRON": "true"})
    assert done.rc == 0, done.stderr
    agent.wait_event("upload.done", count=4)
    (relayed,) = agent.wait_event("compose.done")
    assert relayed["component"] == "composer" and relayed["core_size"] == len(core)
    wait_until(lambda: scrape(port).value("cdh_cores_captured_total") == 1, what="the capture counted")
    m = scrape(port)
    assert m.value("cdh_core_bytes_captured_total") == len(core)
    assert m.value("cdh_uploads_succeeded_total", route="main", kind="s3") == 4
    # The composer put environ into the zip (opt-in) and nowhere else: not its log, not the agent's.
    assert MARKER not in (host / "composer.log").read_bytes()
    assert MARKER.decode() not in agent.text()

    # A composer that cannot write its zip (CORE_DIR is a file): a failure by reason.
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    failed = run_composer(host, env={"CDH_CORE_DIR": str(blocker)})
    assert failed.rc == 1
    agent.wait_event("compose.failed")
    wait_until(lambda: scrape(port).value("cdh_composer_failures_total", reason="compose.failed") == 1,
               what="the composer failure counted")
    assert scrape(port).value("cdh_cores_captured_total") == 1


def test_rate_limited_crashes_are_counted_from_the_composers_log(agent_env, start_agent, tmp_path, port):
    # compose.rate_limited: the event the composer's per-container rate limit logs (issue 7).
    agent = start_agent({**agent_env, "CDH_METRICS_PORT": str(port)})
    agent.wait_event("agent.started")
    line = {"ts": "2024-01-01T00:00:00.000Z", "level": "warning", "event": "compose.rate_limited",
            "uuid": "u1", "namespace": "shop", "podname": "web-0", "container": "web", "skipped": 1}
    with open(tmp_path / "host" / "composer.log", "a") as f:
        f.write(json.dumps(line) + "\n" + json.dumps({**line, "uuid": "u2"}) + "\n")
    agent.wait_event("compose.rate_limited", count=2)
    wait_until(lambda: scrape(port).value("cdh_crashes_rate_limited_total") == 2, what="rate limits counted")


def test_failures_retries_and_waiting_zips(agent_env, start_agent, core_dir, fault_proxy, port):
    # botocore retries a 500 itself, a few times with backoff: eight in a row fail the agent's attempts.
    fault_proxy.add(Rule("error", method="PUT", status=500, code="InternalError", times=8))
    fault_proxy.add(Rule("error", method="PUT", path=r"old-core", status=403, code="AccessDenied"))
    agent = start_agent(via_proxy(agent_env, fault_proxy, CDH_METRICS_PORT=str(port)))
    agent.wait_event("agent.started")
    make_zip(core_dir, 100)
    agent.wait_event("upload.done")  # after transient failures
    old = make_zip(core_dir, 100, name="old-core")
    os.utime(old.path, (time.time() - 900, time.time() - 900))
    agent.wait_event("upload.denied", count=2)
    transient = len(agent.events("upload.failed"))
    # A failure's retry is scheduled (and counted) just after its log line: wait for the last one.
    agent.wait_event("upload.retry_scheduled", count=transient + 2)
    m = scrape(port)
    assert transient >= 1
    assert m.value("cdh_uploads_failed_total", reason="transient", route="main", kind="s3") == transient
    assert m.value("cdh_uploads_failed_total", reason="denied", route="main", kind="s3") >= 2
    assert m.value("cdh_upload_retries_total") >= transient + 2
    assert m.value("cdh_uploads_succeeded_total", route="main", kind="s3") == 1
    assert m.value("cdh_pending_zips") == 1
    assert m.value("cdh_oldest_pending_zip_age_seconds") >= 900
    assert m.value("cdh_storage_reachable", route="main") == 0
    assert m.value("cdh_queue_depth", state="retry_wait") + m.value("cdh_queue_depth", state="uploading") \
        + m.value("cdh_queue_depth", state="queued") == 1
    fault_proxy.clear()
    wait_until(lambda: zips_left(core_dir) == [], timeout=30, what="the denied zip uploaded after the fix")
    agent.wait_event("upload.done", count=2)  # counted with its log line, just after the zip is deleted
    m = scrape(port)
    assert m.value("cdh_pending_zips") == 0 and m.value("cdh_oldest_pending_zip_age_seconds") == 0
    assert m.value("cdh_uploads_succeeded_total", route="main", kind="s3") == 2
    assert m.value("cdh_storage_reachable", route="main") == 1


def test_reloads_applied_and_rejected(agent_env, start_agent, tmp_path, port):
    cfg = ConfigMapVolume(tmp_path / "config")
    cfg.write("CDH_LOG_LEVEL=info\n")
    agent = start_agent({**agent_env, "CDH_METRICS_PORT": str(port), "CDH_CONFIG_FILE": cfg.path})
    agent.wait_event("agent.started")
    agent.signal(signal.SIGHUP)
    agent.wait_event("config.reloaded")
    cfg.write("CDH_COMPRESSION=gzip\n")
    agent.wait_event("config.rejected")
    m = scrape(port)
    assert m.value("cdh_config_reloads_total", result="applied") == 1
    assert m.value("cdh_config_reloads_total", result="rejected") == 1
    status, body = probe(port, "/healthz")
    assert status == 200
    assert body == {"alive": True, "checks": {"loop": True, "workers": True, "intake": True}}
