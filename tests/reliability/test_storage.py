"""Storage faults: the store errs, throttles, resets, goes away, freezes, refuses our keys.

Zips come from the real composer; the agent is the real `cdh agent` process; the store is each real
S3 server (moto, SeaweedFS), behind tests/support/faultproxy.py where faults are injected. Every zip
must arrive exactly once and byte-identical (SHA-256 taken before the agent started), no multipart upload may
be left open, and no zip may leave the node before its object is in the bucket (DeletionWatch).
"""

from __future__ import annotations

import os
import signal
import time

from tests.reliability import ledger
from tests.reliability.workload import MiB, composer_zips
from tests.support.agentproc import SMALL_PARTS, base_env, wait_until
from tests.support.faultproxy import FaultProxy, Rule
from tests.support.s3server import pending_uploads, server_class
from tests.support.zips import zips_left

KiB = 1 << 10
OUTAGE_S = 20  # "a minute", shortened: with CDH_RETRY_MAX=2s the agent retries ~10 times meanwhile


def finish(figures, s3, bucket, expected, watch, faults: int) -> None:
    delivery = ledger.check(s3, bucket, expected)
    figures.case()
    figures.faults(faults)
    figures.captured(len(expected))
    figures.delivered(delivery.intact, delivery.lost_bytes + sum(
        e.size for e in expected if any(x.startswith(e.name) for x in watch.early)))
    assert watch.early == [], watch.early
    assert delivery.lost_bytes == 0 and delivery.intact == len(expected), str(delivery)
    assert pending_uploads(s3, bucket) == []


def test_5xx_bursts_slowdown_and_resets_mid_part(tmp_path, s3_server, s3, bucket, fault_proxy,
                                                start_agent, figures):
    env = base_env(tmp_path, s3_server.agent_env(bucket, url=fault_proxy.url), **SMALL_PARTS,
                   CDH_UPLOAD_CONCURRENCY="3")
    zips = composer_zips(tmp_path / "host", [1 * KiB, 300 * KiB, 6 * MiB, 12 * MiB, 17 * MiB, 64 * KiB])
    expected = ledger.hashed(zips)
    rules = [
        fault_proxy.add(Rule("error", method="PUT", status=503, code="SlowDown", times=15)),
        fault_proxy.add(Rule("error", method="PUT", path=r"partNumber=3", status=500, code="InternalError",
                             times=6)),
        fault_proxy.add(Rule("reset", method="PUT", path=r"partNumber=", times=6)),  # mid-part
        fault_proxy.add(Rule("reset", method="PUT", path=r"^/[^?]+$", times=3)),    # mid single PUT
        fault_proxy.add(Rule("error", method="POST", path=r"\?uploads", status=503, code="ServiceUnavailable",
                             times=4)),
        fault_proxy.add(Rule("error", method="POST", path=r"uploadId=", status=500, code="InternalError",
                             times=3)),
        fault_proxy.add(Rule("error", method="HEAD", path=r"/.+/.+", status=503, times=8)),
    ]
    with ledger.DeletionWatch(s3, bucket, zips[0].parent, expected) as watch:
        agent = start_agent(env)
        wait_until(lambda: zips_left(zips[0].parent) == [], timeout=240, what="every zip uploaded")
    assert [r.hits for r in rules] == [r.times for r in rules]
    assert agent.events("upload.failed")
    finish(figures, s3, bucket, expected, watch, faults=sum(r.hits for r in rules))


def test_a_server_that_goes_away_and_comes_back(tmp_path, s3_server, s3, bucket, fault_proxy, start_agent,
                                               figures):
    """The store's port refuses connections (and open ones are reset) mid-upload, then returns."""
    env = base_env(tmp_path, s3_server.agent_env(bucket, url=fault_proxy.url), **SMALL_PARTS)
    host = tmp_path / "host"
    expected = ledger.hashed(composer_zips(host, [20 * MiB, 2 * KiB, 9 * MiB]))
    slow = fault_proxy.add(Rule("stall", method="PUT", path=r"partNumber=2", stall_s=0.5))
    with ledger.DeletionWatch(s3, bucket, host / "cores", expected) as watch:
        agent = start_agent(env)
        wait_until(lambda: slow.hits >= 1, timeout=60, what="an upload in flight")
        fault_proxy.down()
        down_at = time.monotonic()
        more = ledger.hashed(composer_zips(host, [7 * MiB, 500 * KiB]))  # crashes go on meanwhile
        watch.sizes.update({e.name: e.size for e in more})
        expected += more
        wait_until(lambda: len(agent.events("upload.failed")) >= 4, timeout=60, what="failed attempts")
        assert len(zips_left(host / "cores")) >= 3  # nothing went while the store was away
        time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - down_at)))  # the outage itself, not a wait
        fault_proxy.up()
        wait_until(lambda: zips_left(host / "cores") == [], timeout=120, what="uploads after the outage")
    finish(figures, s3, bucket, expected, watch, faults=1 + len(agent.events("upload.failed")))


def test_a_frozen_server_process(tmp_path, s3_kind, start_agent, figures):
    """The store's process stops (SIGSTOP) mid-upload: requests hang, nothing answers; then SIGCONT."""
    server = server_class(s3_kind)(str(tmp_path / f"{s3_kind}.log")).start()
    try:
        s3 = server.client()
        bucket = server.create_bucket()
        with FaultProxy(server.url) as proxy:
            in_flight = proxy.add(Rule("stall", method="PUT", path=r"partNumber=2", stall_s=0.3, times=1))
            env = base_env(tmp_path, server.agent_env(bucket, url=proxy.url), **SMALL_PARTS)
            host = tmp_path / "host"
            zips = composer_zips(host, [11 * MiB, 3 * KiB])
            expected = ledger.hashed(zips)
            with ledger.DeletionWatch(s3, bucket, host / "cores", expected) as watch:
                agent = start_agent(env)
                wait_until(lambda: in_flight.hits, timeout=60, what="a multipart upload in flight")
                os.kill(server.proc.pid, signal.SIGSTOP)
                try:
                    time.sleep(OUTAGE_S / 2)  # the freeze itself
                    assert zips[0].name in zips_left(host / "cores")
                finally:
                    os.kill(server.proc.pid, signal.SIGCONT)
                wait_until(lambda: zips_left(host / "cores") == [], timeout=180,
                           what="uploads after the freeze")
            agent.check_alive()
        finish(figures, s3, bucket, expected, watch, faults=1)
    finally:
        server.stop()


def test_wrong_keys_then_a_sighup_with_the_fixed_secret(tmp_path, s3_server, s3, bucket, fault_proxy,
                                                       start_agent, figures):
    """Keys from files (a Secret volume); S3 refuses the wrong one as AWS does; a SIGHUP after the fix."""
    wrong = "AKIAWRONGWRONGWRONG0"
    fault_proxy.refuse_key(wrong, s3_server)
    right = s3_server.agent_env(bucket, url=fault_proxy.url)
    key_file = tmp_path / "access-key"
    key_file.write_text(wrong + "\n")
    env = {k: v for k, v in base_env(tmp_path, right, **SMALL_PARTS).items() if k != "CDH_S3_ACCESS_KEY"}
    env["CDH_S3_ACCESS_KEY_FILE"] = str(key_file)
    host = tmp_path / "host"
    zips = composer_zips(host, [1 * KiB, 8 * MiB, 40 * KiB])
    expected = ledger.hashed(zips)
    with ledger.DeletionWatch(s3, bucket, host / "cores", expected) as watch:
        agent = start_agent(env)
        refusals = agent.wait_event("upload.denied", count=3)
        assert {e["code"] for e in refusals} == {"InvalidAccessKeyId"}
        assert len(zips_left(host / "cores")) == 3
        key_file.write_text(right["CDH_S3_ACCESS_KEY"] + "\n")
        agent.signal(signal.SIGHUP)
        agent.wait_event("config.reloaded")
        wait_until(lambda: zips_left(host / "cores") == [], timeout=60, what="uploads after SIGHUP")
    assert wrong not in agent.text() and right["CDH_S3_SECRET_KEY"] not in agent.text()
    finish(figures, s3, bucket, expected, watch, faults=len(agent.events("upload.denied")))
