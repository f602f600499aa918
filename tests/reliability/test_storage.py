"""Storage faults: the store errs, throttles, resets, goes away, freezes, refuses our keys.

Zips come from the real composer; the agent is the real `cdh agent` process; the store is each real
S3 server (moto, SeaweedFS; and, for the same faults against Azure Blob Storage and Cloud Storage,
Azurite and fake-gcs-server), behind tests/support/faultproxy.py where faults are injected. Every zip
must arrive exactly once and byte-identical (SHA-256 taken before the agent started), no multipart upload may
be left open, and no zip may leave the node before its object is in the bucket (DeletionWatch).
"""

from __future__ import annotations

import base64
import os
import random
import signal
import time

import pytest

from tests.reliability import ledger
from tests.reliability.workload import MiB, composer_zips
from tests.support.agentproc import SMALL_PARTS, base_env, wait_until
from tests.support.faultproxy import FaultProxy, Rule
from tests.support.s3server import pending_uploads, server_class
from tests.support.zips import zips_left

KiB = 1 << 10
KILLS = 10  # SIGKILLs of the agent, each at a random request of an upload in flight
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


def test_a_store_that_goes_away_and_comes_back(tmp_path, store, start_agent, figures):
    """The store's port refuses connections (and open ones are reset) mid-upload, then returns: S3,
    Azure Blob Storage and Cloud Storage alike."""
    env = base_env(tmp_path, store.agent_env(proxied=True), **SMALL_PARTS)
    host = tmp_path / "host"
    expected = ledger.hashed(composer_zips(host, [20 * MiB, 2 * KiB, 9 * MiB]))
    # an upload in flight when the store goes: S3's second part; a cloud's first PUTs (blocks, session)
    in_flight = (Rule("stall", method="PUT", path=r"partNumber=2", stall_s=0.5) if store.kind == "s3"
                 else Rule("stall", method="PUT", stall_s=0.5, times=2))
    slow = store.proxy.add(in_flight)
    with ledger.DeletionWatch(store.client, store.bucket, host / "cores", expected) as watch:
        agent = start_agent(env)
        wait_until(lambda: slow.hits >= 1, timeout=60, what="an upload in flight")
        store.proxy.down()
        down_at = time.monotonic()
        more = ledger.hashed(composer_zips(host, [7 * MiB, 500 * KiB]))  # crashes go on meanwhile
        watch.sizes.update({e.name: e.size for e in more})
        expected += more
        wait_until(lambda: len(agent.events("upload.failed")) >= 4, timeout=90, what="failed attempts")
        assert len(zips_left(host / "cores")) >= 3  # nothing went while the store was away
        time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - down_at)))  # the outage itself, not a wait
        store.proxy.up()
        wait_until(lambda: zips_left(host / "cores") == [], timeout=180, what="uploads after the outage")
    finish(figures.of(store.kind), store.client, store.bucket, expected, watch,
           faults=1 + len(agent.events("upload.failed")))


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


# ---------------------------------------------------------------- the same faults, Azure and Cloud Storage

CLOUDS = pytest.mark.parametrize("store", ["azblob", "gs"], indirect=True)


def cloud_faults(kind: str) -> list[Rule]:
    """5xx, throttling and resets on each of the kind's requests, as the service answers them."""
    if kind == "azblob":
        block, commit = r"comp=block&", r"comp=blocklist"  # Put Block, Put Block List
        return [Rule("error", method="PUT", path=block, status=503, code="ServerBusy", times=10),
                Rule("error", method="PUT", path=block, status=500, code="OperationTimedOut", times=3),
                Rule("reset", method="PUT", path=block, times=6),                     # mid-block
                Rule("error", method="PUT", path=commit, status=500, code="InternalError", times=3),
                Rule("reset", method="PUT", path=commit, times=1),
                Rule("error", method="HEAD", status=503, code="ServerBusy", times=4),
                Rule("error", method="GET", path=r"blocklisttype=committed", status=500, code="InternalError",
                     times=3)]
    session = r"upload_id="  # the resumable session's PUTs (the body, and status queries)
    return [Rule("error", method="POST", path=r"uploadType=resumable", status=503, code="backendError",
                 times=4),
            Rule("error", method="PUT", path=session, status=429, code="rateLimitExceeded", times=3),
            Rule("error", method="PUT", path=session, status=503, code="backendError", times=3),
            Rule("reset", method="PUT", path=session, times=4),                       # mid-body
            Rule("error", method="GET", path=r"/o/[^?/]+$", status=503, code="backendError", times=4)]


@CLOUDS
def test_5xx_throttling_and_resets_on_azure_and_gcs(tmp_path, store, start_agent, figures):
    env = base_env(tmp_path, store.agent_env(proxied=True), **SMALL_PARTS, CDH_UPLOAD_CONCURRENCY="3")
    zips = composer_zips(tmp_path / "host", [1 * KiB, 300 * KiB, 6 * MiB, 12 * MiB, 17 * MiB, 64 * KiB])
    expected = ledger.hashed(zips)
    rules = [store.proxy.add(r) for r in cloud_faults(store.kind)]
    with ledger.DeletionWatch(store.client, store.bucket, zips[0].parent, expected) as watch:
        agent = start_agent(env)
        wait_until(lambda: zips_left(zips[0].parent) == [], timeout=300, what="every zip uploaded")
    assert [r.hits for r in rules] == [r.times for r in rules]
    assert agent.events("upload.failed")
    finish(figures.of(store.kind), store.client, store.bucket, expected, watch,
           faults=sum(r.hits for r in rules))


@CLOUDS
def test_azure_and_gcs_frozen_mid_upload(tmp_path, store, start_agent, figures):
    """The emulator's process stops (SIGSTOP) mid-upload: requests hang, nothing answers; then SIGCONT."""
    in_flight = store.proxy.add(Rule("stall", method="PUT", stall_s=0.3, times=1))
    env = base_env(tmp_path, store.agent_env(proxied=True), **SMALL_PARTS)
    host = tmp_path / "host"
    zips = composer_zips(host, [11 * MiB, 3 * KiB])
    expected = ledger.hashed(zips)
    with ledger.DeletionWatch(store.client, store.bucket, host / "cores", expected) as watch:
        agent = start_agent(env)
        wait_until(lambda: in_flight.hits, timeout=60, what="an upload in flight")
        os.kill(store.server.proc.pid, signal.SIGSTOP)
        try:
            time.sleep(OUTAGE_S / 2)  # the freeze itself
            assert zips[0].name in zips_left(host / "cores")
        finally:
            os.kill(store.server.proc.pid, signal.SIGCONT)
        wait_until(lambda: zips_left(host / "cores") == [], timeout=240, what="uploads after the freeze")
    agent.check_alive()
    finish(figures.of(store.kind), store.client, store.bucket, expected, watch, faults=1)


def refused_then_fixed(tmp_path, store, start_agent, env, code: str, hint: str, fix):
    """Three zips refused (upload.denied with ``code``, a hint naming ``hint``), none leaving the node,
    until ``fix()`` puts the right credential in place and a SIGHUP reloads it: then every zip goes.
    (agent, expected, watch, refusals)."""
    host = tmp_path / "host"
    expected = ledger.hashed(composer_zips(host, [1 * KiB, 8 * MiB, 40 * KiB]))
    with ledger.DeletionWatch(store.client, store.bucket, host / "cores", expected) as watch:
        agent = start_agent(env)
        refusals = agent.wait_event("upload.denied", count=3)
        assert {e["code"] for e in refusals} == {code}
        assert all(hint in e["hint"] for e in refusals)
        assert len(zips_left(host / "cores")) == 3
        fix()
        agent.signal(signal.SIGHUP)
        agent.wait_event("config.reloaded")
        wait_until(lambda: zips_left(host / "cores") == [], timeout=60, what="uploads after SIGHUP")
    return agent, expected, watch, len(refusals)


@pytest.mark.parametrize("store", ["azblob"], indirect=True)
def test_a_wrong_azure_key_then_a_sighup_with_the_fixed_secret(tmp_path, store, start_agent, figures):
    """The account key from a file (a Secret volume); Azurite checks the Shared Key signature itself and
    refuses the wrong one (403, as Azure does); a SIGHUP after the Secret is fixed."""
    from tests.support.emulators import AZURITE_ACCOUNT, AZURITE_KEY

    key_file = tmp_path / "account-key"
    key_file.write_text(base64.b64encode(b"not the account's key, 32 bytes!").decode() + "\n")
    env = base_env(tmp_path, {}, **SMALL_PARTS, CDH_DESTINATION=f"azblob://{store.bucket}",
                   CDH_AZURE_ACCOUNT=AZURITE_ACCOUNT, CDH_AZURE_ENDPOINT=store.server.blob_endpoint(),
                   CDH_AZURE_ACCOUNT_KEY_FILE=str(key_file))
    agent, expected, watch, refusals = refused_then_fixed(
        tmp_path, store, start_agent, env, "AuthorizationFailure", "CDH_AZURE_ACCOUNT",
        lambda: key_file.write_text(AZURITE_KEY + "\n"))
    assert AZURITE_KEY not in agent.text()
    finish(figures.of(store.kind), store.client, store.bucket, expected, watch, faults=refusals)


@CLOUDS
def test_agent_sigkilled_mid_upload_to_azure_and_gcs(tmp_path, store, start_agent, figures):
    """As tests/reliability/test_process.py does to S3 uploads: the agent SIGKILLed at random requests
    of uploads in flight, then started again. A dead attempt leaves uncommitted blocks (Azure: the next
    commit of that blob discards them) or an unfinished session (Cloud Storage: never an object)."""
    seed = int(os.environ.get("CDH_TEST_SEED", time.time_ns() % 1_000_000))
    rng = random.Random(seed)
    record = figures.of(store.kind)
    record.note(f"agent SIGKILL loop: {KILLS} kills, seed {seed} (CDH_TEST_SEED to replay)")
    env = base_env(tmp_path, store.agent_env(proxied=True), **SMALL_PARTS)
    host = tmp_path / "host"
    sizes = [rng.randrange(1, 26 * MiB) for _ in range(5)] + [100, 3 * MiB]
    expected = ledger.hashed(composer_zips(host, sizes))
    store.proxy.add(Rule("stall", stall_s=0.03))  # a kill lands inside an upload, not between two
    kills = 0
    with ledger.DeletionWatch(store.client, store.bucket, host / "cores", expected) as watch:
        for _ in range(KILLS):
            if not zips_left(host / "cores"):
                break
            seen = store.proxy.count()
            agent = start_agent(env)
            # Cloud Storage sends a whole zip in one request (about 3 per upload, Azure one per block):
            # kill sooner there, or the uploads can end before half the kills
            at = seen + rng.randrange(2, 12 if store.kind == "azblob" else 5)
            wait_until(lambda at=at: store.proxy.count() >= at or not zips_left(host / "cores"),
                       timeout=60, what="requests of an upload")
            agent.proc.kill()
            agent.wait(10)
            kills += 1
        assert kills >= KILLS // 2, "the uploads ended before the agent could be killed often enough"
        last = start_agent(env)
        wait_until(lambda: zips_left(host / "cores") == [], timeout=180, what="every zip uploaded")
        last.check_alive()
    finish(record, store.client, store.bucket, expected, watch, faults=kills)


@pytest.mark.parametrize("store", ["gs"], indirect=True)
def test_a_refused_gcs_service_account_then_a_sighup_with_the_fixed_key(tmp_path, store, start_agent,
                                                                       figures):
    """A service account key from a file (a Secret volume) whose account has no access: Cloud Storage
    answers 403 (here the proxy, as fake-gcs-server checks no token); the key is replaced by one of an
    account that has access, then SIGHUP."""
    from tests.support.tokenstubs import TokenStubs

    with TokenStubs() as stubs:
        key_file = tmp_path / "sa.json"
        stubs.add_service_account(key_file, "wrong@test-project.iam.gserviceaccount.com", "ya29.no-access")
        refused = store.proxy.add(Rule("error", header=("authorization", r"ya29\.no-access"), status=403,
                                       code="forbidden"))
        env = base_env(tmp_path, {}, **SMALL_PARTS, CDH_DESTINATION=f"gs://{store.bucket}",
                       CDH_GCS_ENDPOINT=store.proxy.url, CDH_GCS_CREDENTIALS_FILE=str(key_file),
                       GCE_METADATA_HOST="127.0.0.1:9", GCE_METADATA_IP="127.0.0.1:9")
        agent, expected, watch, _ = refused_then_fixed(
            tmp_path, store, start_agent, env, "forbidden", "roles/storage.objectUser",
            lambda: stubs.add_service_account(key_file, "cdh@test-project.iam.gserviceaccount.com",
                                              "ya29.access"))
        assert "ya29.access" not in agent.text() and "PRIVATE KEY" not in agent.text()
    finish(figures.of(store.kind), store.client, store.bucket, expected, watch, faults=refused.hits)
