"""The agent when things go wrong: a flaky store, wrong settings, signals, a SIGKILL mid-upload.

The store is the real moto_server behind tests/support/faultproxy.py; every
assertion is about what ends up in the bucket and on disk.
"""

from __future__ import annotations

import signal

from tests.support.agentproc import via_proxy, wait_until
from tests.support.faultproxy import Rule
from tests.support.projected import ConfigMapVolume
from tests.support.s3server import list_keys, object_sha256, pending_uploads
from tests.support.zips import make_zip, zips_left

MiB = 1 << 20



def assert_each_once_and_intact(s3, bucket, zips) -> None:
    assert sorted(list_keys(s3, bucket)) == sorted(z.filename for z in zips)
    for z in zips:
        assert object_sha256(s3, bucket, z.filename) == z.sha256, z.filename
    assert pending_uploads(s3, bucket) == []


def test_errors_and_resets_for_a_while_lose_and_duplicate_nothing(agent_env, start_agent, core_dir,
                                                                  fault_proxy, s3, bucket):
    rules = [
        fault_proxy.add(Rule("error", method="PUT", status=503, code="SlowDown", times=12)),
        fault_proxy.add(Rule("error", method="PUT", path=r"partNumber=2", status=500,
                             code="InternalError", times=8)),
        fault_proxy.add(Rule("reset", method="PUT", times=6)),
        fault_proxy.add(Rule("error", method="POST", path=r"uploadId=", status=503, times=5)),
        fault_proxy.add(Rule("error", method="HEAD", status=503, times=6)),
    ]
    zips = [make_zip(core_dir, size) for size in (100, 2000, 12 * MiB, 64_000, 7 * MiB, 1)]
    agent = start_agent(via_proxy(agent_env, fault_proxy, CDH_UPLOAD_CONCURRENCY="3"))
    wait_until(lambda: zips_left(core_dir) == [], timeout=180, what="every zip uploaded")
    assert all(r.hits == r.times for r in rules), [(r.action, r.hits) for r in rules]
    assert agent.events("upload.failed"), "the faults should have failed some uploads"
    assert_each_once_and_intact(s3, bucket, zips)
    agent.signal(signal.SIGTERM)
    assert agent.wait(30) == 0


def test_nothing_is_deleted_until_head_confirms(agent_env, start_agent, core_dir, fault_proxy, s3, bucket):
    heads = fault_proxy.add(Rule("error", method="HEAD", path=r"/.+/.+", status=503))  # objects only
    zips = [make_zip(core_dir, size) for size in (100, 6 * MiB)]
    agent = start_agent(via_proxy(agent_env, fault_proxy))
    wait_until(lambda: len(list_keys(s3, bucket)) == 2, timeout=60, what="objects written")
    wait_until(lambda: heads.hits >= 8, timeout=60, what="several HEADs refused")
    assert zips_left(core_dir) == sorted(z.filename for z in zips)  # written, not confirmed: kept
    fault_proxy.clear()
    wait_until(lambda: zips_left(core_dir) == [], timeout=60, what="zips deleted once confirmed")
    assert_each_once_and_intact(s3, bucket, zips)
    agent.check_alive()


def test_wrong_bucket_keeps_files_then_fixed_configmap_uploads_them(agent_env, start_agent, core_dir,
                                                                   tmp_path, s3, bucket):
    cfg = ConfigMapVolume(tmp_path / "config")
    cfg.write("CDH_S3_BUCKET=cdh-no-such-bucket\n")
    zips = [make_zip(core_dir, 100) for _ in range(3)]
    agent = start_agent({**agent_env, "CDH_CONFIG_FILE": cfg.path})
    denied = agent.wait_event("upload.denied", count=3)
    assert {e["code"] for e in denied} == {"NoSuchBucket"}
    assert all("CDH_S3_BUCKET" in e["hint"] for e in denied)
    agent.wait_event("upload.retry_scheduled", count=3)
    assert len(zips_left(core_dir)) == 3
    agent.check_alive()
    cfg.write(f"CDH_S3_BUCKET={bucket}\n")  # the volume's ..data swap reloads: no signal needed
    (ev,) = agent.wait_event("config.reloaded")
    assert ev["changed"] == ["CDH_S3_BUCKET"] and ev["requeued"] == 3
    wait_until(lambda: zips_left(core_dir) == [], timeout=30, what="uploads after the fix")
    assert_each_once_and_intact(s3, bucket, zips)


def test_wrong_keys_keep_files_then_sighup_with_fixed_secret_uploads_them(agent_env, start_agent, core_dir,
                                                                        tmp_path, fault_proxy, s3, bucket):
    # moto does not check keys, so the proxy answers as S3 does for an unknown key id.
    fault_proxy.add(Rule("error", header=("authorization", "AKIAWRONGWRONGWRONG0"), status=403,
                         code="InvalidAccessKeyId"))
    key_file = tmp_path / "access-key"
    key_file.write_text("AKIAWRONGWRONGWRONG0\n")
    env = via_proxy({k: v for k, v in agent_env.items() if k != "CDH_S3_ACCESS_KEY"}, fault_proxy,
                    CDH_S3_ACCESS_KEY_FILE=str(key_file))
    zips = [make_zip(core_dir, 100) for _ in range(2)]
    agent = start_agent(env)
    denied = agent.wait_event("upload.denied", count=2)
    assert {e["code"] for e in denied} == {"InvalidAccessKeyId"}
    assert len(zips_left(core_dir)) == 2
    key_file.write_text(agent_env["CDH_S3_ACCESS_KEY"] + "\n")
    agent.signal(signal.SIGHUP)
    agent.wait_event("config.reloaded")
    wait_until(lambda: zips_left(core_dir) == [], timeout=30, what="uploads after SIGHUP")
    assert_each_once_and_intact(s3, bucket, zips)


def test_sighup_applies_a_changed_config_and_rewrites_composer_env(agent_env, start_agent, core_dir,
                                                                  tmp_path, s3, bucket):
    cfg = tmp_path / "cdh.env"
    cfg.write_text("CDH_S3_KEY_PREFIX=before/\nCDH_COMPRESSION=deflate\n")
    agent = start_agent({**agent_env, "CDH_CONFIG_FILE": str(cfg)})
    agent.wait_event("agent.started")
    first = make_zip(core_dir, 100)
    wait_until(lambda: zips_left(core_dir) == [], what="first upload")
    cfg.write_text("CDH_S3_KEY_PREFIX=after/{namespace}/\nCDH_COMPRESSION=none\n")
    agent.signal(signal.SIGHUP)  # the file watch may reload first; either way it is applied once
    wait_until(lambda: any(set(e["changed"]) >= {"CDH_S3_KEY_PREFIX", "CDH_COMPRESSION"}
                           for e in agent.events("config.reloaded")), what="reload with the changes")
    composer_env = (tmp_path / "host" / "composer.env").read_text()
    assert 'CDH_COMPRESSION="none"' in composer_env
    second = make_zip(core_dir, 100, namespace="shop")
    wait_until(lambda: zips_left(core_dir) == [], what="second upload")
    expected = ["before/" + first.filename, "after/shop/" + second.filename]
    assert sorted(list_keys(s3, bucket)) == sorted(expected)


def test_an_invalid_new_config_is_refused_and_the_old_one_kept(agent_env, start_agent, core_dir, tmp_path,
                                                              s3, bucket):
    cfg = tmp_path / "cdh.env"
    cfg.write_text("CDH_S3_KEY_PREFIX=kept/\n")
    agent = start_agent({**agent_env, "CDH_CONFIG_FILE": str(cfg)})
    agent.wait_event("agent.started")
    cfg.write_text("CDH_S3_KEY_PREFIX=new/\nCDH_PART_SIZE=1KiB\n")
    agent.signal(signal.SIGHUP)
    rejected = agent.wait_event("config.rejected")[0]
    assert "CDH_PART_SIZE" in rejected["error"] and "previous" in rejected["action"]
    z = make_zip(core_dir, 100)
    wait_until(lambda: zips_left(core_dir) == [], what="upload with the old settings")
    assert list_keys(s3, bucket) == ["kept/" + z.filename]
    assert not agent.events("config.reloaded")


def test_sigkill_during_multipart_then_restart_completes_the_object(agent_env, start_agent, core_dir,
                                                                   fault_proxy, s3, bucket):
    stall = fault_proxy.add(Rule("stall", method="PUT", path=r"partNumber=3"))
    z = make_zip(core_dir, 20 * MiB)
    first = start_agent(via_proxy(agent_env, fault_proxy))
    wait_until(lambda: stall.hits >= 1, timeout=60, what="the upload to reach part 3")
    assert len(pending_uploads(s3, bucket)) == 1
    first.proc.kill()
    first.wait(10)
    fault_proxy.clear()
    assert zips_left(core_dir) == [z.filename]
    second = start_agent(via_proxy(agent_env, fault_proxy))
    wait_until(lambda: zips_left(core_dir) == [], timeout=60, what="upload after restart")
    assert second.events("upload.stale_aborted")
    assert_each_once_and_intact(s3, bucket, [z])


def test_sigterm_mid_upload_exits_0_within_grace_and_keeps_the_zip(agent_env, start_agent, core_dir,
                                                                 fault_proxy, s3, bucket):
    stall = fault_proxy.add(Rule("stall", method="PUT", path=r"partNumber=2"))
    z = make_zip(core_dir, 12 * MiB)
    agent = start_agent(via_proxy(agent_env, fault_proxy, CDH_GRACE_PERIOD="1s"))
    wait_until(lambda: stall.hits >= 1, timeout=60, what="the upload to stall")
    agent.signal(signal.SIGTERM)
    assert agent.wait(1 + 15 + 10) == 0  # grace + the bounded abort + start-up slack: a deadline
    (cut,) = agent.events("agent.uploads_cut")
    assert cut["files"] == [z.path]
    assert zips_left(core_dir) == [z.filename]
    assert list_keys(s3, bucket) == [] and pending_uploads(s3, bucket) == []


def test_sigterm_lets_an_in_flight_upload_finish(agent_env, start_agent, core_dir, fault_proxy, s3, bucket):
    stall = fault_proxy.add(Rule("stall", method="PUT", path=r"partNumber=2", times=1))
    z = make_zip(core_dir, 12 * MiB)
    agent = start_agent(via_proxy(agent_env, fault_proxy, CDH_GRACE_PERIOD="60s"))
    wait_until(lambda: stall.hits >= 1, timeout=60, what="the upload to stall")
    agent.signal(signal.SIGTERM)
    agent.wait_event("agent.stopping")
    stall.released.set()
    assert agent.wait(60) == 0
    assert zips_left(core_dir) == [] and not agent.events("agent.uploads_cut")
    assert_each_once_and_intact(s3, bucket, [z])


def test_a_second_sigterm_stops_now(agent_env, start_agent, core_dir, fault_proxy, s3, bucket):
    stall = fault_proxy.add(Rule("stall", method="PUT", path=r"partNumber=2"))
    make_zip(core_dir, 12 * MiB)
    agent = start_agent(via_proxy(agent_env, fault_proxy, CDH_GRACE_PERIOD="1h"))
    wait_until(lambda: stall.hits >= 1, timeout=60, what="the upload to stall")
    agent.signal(signal.SIGTERM)
    agent.wait_event("agent.stopping")
    agent.signal(signal.SIGTERM)
    assert agent.wait(40) == 0
    assert agent.events("agent.uploads_cut") and pending_uploads(s3, bucket) == []
