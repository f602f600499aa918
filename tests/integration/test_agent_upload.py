"""The agent against a real S3 server process: every trigger, the object's key,
metadata and encryption, byte-identical objects, and what is refused."""

from __future__ import annotations

import fcntl
import os
import signal
import urllib.error
import urllib.request

import pytest

from tests.support.agentproc import run_sweep, wait_until
from tests.support.s3server import free_port, list_keys, object_sha256, pending_uploads, zip_keys
from tests.support.zips import make_broken_zip, make_zip, zips_left

SMALL_PARTS = {"CDH_MULTIPART_THRESHOLD": "5MiB", "CDH_PART_SIZE": "5MiB", "CDH_PART_CONCURRENCY": "3"}



def assert_uploaded_intact(s3, bucket, zips, prefix: str = "") -> dict[str, str]:
    """Each zip once, byte-identical, under ``prefix``; zip name → key."""
    found = zip_keys(s3, bucket)
    assert len(found) == len(list_keys(s3, bucket)) and sorted(found) == sorted(z.filename for z in zips)
    for z in zips:
        assert found[z.filename].startswith(prefix)
        assert object_sha256(s3, bucket, found[z.filename]) == z.sha256, z.filename
    assert pending_uploads(s3, bucket) == []
    return found


def test_inotify_and_startup_sweep_upload_many_zips(agent_env, start_agent, core_dir, s3, bucket):
    before = [make_zip(core_dir, n * 1000) for n in range(1, 4)]  # there before the agent
    agent = start_agent({**agent_env, **SMALL_PARTS, "CDH_UPLOAD_CONCURRENCY": "3"})
    agent.wait_event("agent.started")
    after = [make_zip(core_dir, size) for size in
             (100, 70_000, 6 * 1024 * 1024, 12 * 1024 * 1024 + 3, 1, 300_000, 5 * 1024 * 1024, 42, 9, 1000)]
    agent.wait_event("upload.done", count=13, timeout=120)
    wait_until(lambda: zips_left(core_dir) == [], what="all zips deleted")
    assert_uploaded_intact(s3, bucket, before + after)
    multipart = [e for e in agent.events("upload.done") if e["bytes"] >= 5 * 1024 * 1024]
    assert len(multipart) == 3 and all(e["verified"] == "size+etag+crc32" for e in multipart)
    agent.signal(signal.SIGTERM)
    assert agent.wait(30) == 0


def test_interval_sweeps_find_new_zips(agent_env, start_agent, core_dir, s3, bucket):
    agent = start_agent({**agent_env, "CDH_USE_INOTIFY": "false", "CDH_INTERVAL": "300ms"})
    agent.wait_event("agent.started")
    zips = [make_zip(core_dir, 2000) for _ in range(5)]
    wait_until(lambda: zips_left(core_dir) == [], timeout=30, what="interval uploads")
    assert_uploaded_intact(s3, bucket, zips)
    assert any(e.get("triggers") == ["interval 0.3s"] for e in agent.events("intake.triggers"))


def test_ibm_interval_in_milliseconds_over_a_minute_is_kept(agent_env, start_agent):
    env = {**agent_env, "CDH_USE_INOTIFY": "false", "INTERVAL": "90000"}
    agent = start_agent(env)
    (ev,) = agent.wait_event("intake.triggers")
    assert ev["triggers"] == ["interval 90s"]  # IBM turned anything >= 60000 into once a minute


def test_schedule_with_seconds_field_uploads(agent_env, start_agent, core_dir, s3, bucket):
    agent = start_agent({**agent_env, "CDH_USE_INOTIFY": "false", "SCHEDULE": "* * * * * *"})
    agent.wait_event("agent.started")
    zips = [make_zip(core_dir, 500) for _ in range(4)]
    wait_until(lambda: zips_left(core_dir) == [], timeout=30, what="scheduled uploads")
    assert_uploaded_intact(s3, bucket, zips)


def test_no_trigger_keeps_cores_and_says_so_then_sweep_uploads(agent_env, start_agent, core_dir, s3,
                                                              bucket):
    zips = [make_zip(core_dir, 1500) for _ in range(3)]
    agent = start_agent({**agent_env, "CDH_USE_INOTIFY": "false"})
    (warn,) = agent.wait_event("intake.no_trigger")
    assert "kept on the node" in warn["action"]
    zips.append(make_zip(core_dir, 10))
    agent.wait_event("agent.started")
    assert len(zips_left(core_dir)) == 4 and list_keys(s3, bucket) == []
    done = run_sweep(agent_env)
    assert done.returncode == 0, done.stderr + done.stdout
    assert zips_left(core_dir) == []
    assert_uploaded_intact(s3, bucket, zips)


def test_sweep_of_given_files_and_refusal_of_others(agent_env, core_dir, tmp_path, s3, bucket):
    a, b = make_zip(core_dir, 100), make_zip(core_dir, 200)
    outside = make_zip(tmp_path, 100)
    bad = run_sweep(agent_env, a.path, outside.path)
    assert bad.returncode == 1 and "not a finished zip in CDH_CORE_DIR" in bad.stderr
    assert zips_left(core_dir) == sorted([a.filename, b.filename])  # nothing uploaded on a bad call
    ok = run_sweep(agent_env, a.path)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert zips_left(core_dir) == [b.filename]
    assert_uploaded_intact(s3, bucket, [a])


def test_sweep_fails_when_a_zip_cannot_be_uploaded(agent_env, core_dir, s3, bucket):
    good = make_zip(core_dir, 100)
    broken = make_broken_zip(core_dir)
    res = run_sweep(agent_env)
    assert res.returncode == 1
    assert os.path.exists(broken) and not os.path.exists(good.path)
    assert "upload.invalid" in res.stdout


def test_key_prefix_metadata_sse_and_storage_class_reach_the_server(agent_env, start_agent, core_dir, s3,
                                                                   bucket):
    env = {**agent_env, "CDH_S3_KEY_PREFIX": "cores/{node}/{namespace}/{pod}/{date}/",
           "CDH_S3_SSE": "AES256", "CDH_S3_STORAGE_CLASS": "STANDARD_IA", **SMALL_PARTS}
    agent = start_agent(env)
    agent.wait_event("agent.started")
    small = make_zip(core_dir, 100, timestamp=1700000000, namespace="shop", podname="web-1", container=None)
    big = make_zip(core_dir, 11 * 1024 * 1024, timestamp=1700000000, namespace="shop", podname="web-1")
    wait_until(lambda: zips_left(core_dir) == [], timeout=60, what="uploads")
    found = assert_uploaded_intact(s3, bucket, [small, big], prefix="cores/node-a/shop/web-1/2023-11-14/")
    for z in (small, big):
        head = s3.head_object(Bucket=bucket, Key=found[z.filename])
        assert head["ServerSideEncryption"] == "AES256"
        assert head["StorageClass"] == "STANDARD_IA"
        md = head["Metadata"]
        assert md["namespace"] == "shop" and md["pod"] == "web-1" and md["node"] == "node-a"
        assert md["signal"] == "11" and md["exe"] == "segfaulter" and md["timestamp"] == "1700000000"
        assert md["uuid"] == z.info["uuid"]
    assert "container" not in s3.head_object(Bucket=bucket, Key=found[small.filename])["Metadata"]
    assert s3.head_object(Bucket=bucket, Key=found[big.filename])["Metadata"]["container"] == "web"


def test_sse_kms_with_key_id(agent_env, start_agent, core_dir, s3, bucket, s3_server):
    key_id = s3_server.kms_key_id  # a real store knows its own keys only
    agent = start_agent({**agent_env, "CDH_S3_SSE": "aws:kms", "CDH_S3_SSE_KMS_KEY_ID": key_id,
                         **SMALL_PARTS})
    agent.wait_event("agent.started")
    zips = [make_zip(core_dir, 100), make_zip(core_dir, 11 * 1024 * 1024)]
    wait_until(lambda: zips_left(core_dir) == [], what="upload")
    found = assert_uploaded_intact(s3, bucket, zips)
    for z in zips:
        head = s3.head_object(Bucket=bucket, Key=found[z.filename])
        assert head["ServerSideEncryption"] == "aws:kms"
        assert head["SSEKMSKeyId"]  # moto echoes the alias; SeaweedFS names the key by its id


def test_unreadable_zips_are_reported_and_left_in_place(agent_env, start_agent, core_dir, s3, bucket):
    garbage = make_broken_zip(core_dir, "garbage")
    no_info = make_broken_zip(core_dir, "noinfo", without_info=True)
    part = core_dir / ".in-progress.zip.part"
    part.write_bytes(b"partial")
    os.symlink(garbage, core_dir / "link.zip")
    good = make_zip(core_dir, 100)
    with open(part, "rb") as writing:
        # A composer writing its .part holds its lock: the agent leaves it alone, however long this takes
        # (an unlocked one is abandoned after retention.PART_GRACE_S, which a loaded machine can reach).
        fcntl.flock(writing, fcntl.LOCK_EX)
        agent = start_agent({**agent_env, "CDH_INTERVAL": "200ms", "CDH_LOG_LEVEL": "debug"})
        agent.wait_event("upload.done")
        invalid = agent.wait_event("upload.invalid", count=2)
        assert {os.path.basename(e["file"]) for e in invalid} == {"garbage.zip", "noinfo.zip"}
        wait_until(lambda: len([e for e in agent.events("intake.sweep") if e["reason"] == "interval"]) >= 3,
                   what="three interval sweeps")
        assert os.path.exists(garbage) and os.path.exists(no_info)
        assert part.exists() and os.path.islink(core_dir / "link.zip")
    assert list(zip_keys(s3, bucket)) == [good.filename]
    assert len(agent.events("upload.invalid")) == 2  # reported once each, not on every sweep


def test_health_and_readiness_endpoints(agent_env, start_agent):
    port = free_port()
    agent = start_agent({**agent_env, "CDH_METRICS_PORT": str(port)})
    agent.wait_event("agent.started")
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as r:
        assert r.status == 200
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as r:
        assert r.status == 200 and b'"ready":true' in r.read()


def test_not_ready_when_the_bucket_is_wrong(agent_env, start_agent):
    port = free_port()
    agent = start_agent({**agent_env, "CDH_METRICS_PORT": str(port), "CDH_S3_BUCKET": "no-such-bucket-x"})
    agent.wait_event("agent.started")
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5)
    assert err.value.code == 503 and b'"storage":false' in err.value.read()


def test_missing_bucket_is_one_clear_line_and_exit_3(agent_env, start_agent):
    env = {k: v for k, v in agent_env.items() if k != "CDH_S3_BUCKET"}
    agent = start_agent(env)
    assert agent.wait(30) == 3
    err = agent.proc.stderr.read().decode()
    assert err.count("\n") == 1 and "CDH_S3_BUCKET" in err


def test_uninstall_on_stop_restores_the_host(agent_env, start_agent, tmp_path):
    agent = start_agent({**agent_env, "CDH_UNINSTALL_ON_STOP": "true"})
    agent.wait_event("agent.started")
    pattern = tmp_path / "proc-sys" / "kernel" / "core_pattern"
    assert pattern.read_text().startswith(f"|{tmp_path}/host/cdc ")
    agent.signal(signal.SIGTERM)
    assert agent.wait(30) == 0
    assert pattern.read_text() == "core"
    assert not (tmp_path / "host" / "cdc").exists()
    assert agent.events("host.restore")
