"""Process faults: the agent SIGKILLed mid-upload, again and again; the composer SIGKILLed
mid-capture (real kernel); the agent restarted while a composer writes (real kernel).

Nothing named *.zip is ever partial; a zip leaves the node only once its object is whole in the
bucket; a .part whose composer died is cleaned up and reported by the agent, and a .part whose
composer lives (its flock held) is left alone however old it gets.
"""

from __future__ import annotations

import os
import random
import signal
import time

from tests.reliability import ledger
from tests.reliability.workload import MiB, composer_zips
from tests.support.agentproc import SMALL_PARTS, base_env, wait_until
from tests.support.faultproxy import Rule
from tests.support.s3server import pending_uploads
from tests.support.zips import zips_left

KILLS = 10  # SIGKILLs of the agent, each at a random request of an upload in flight


def test_agent_sigkilled_at_random_points_of_uploads(tmp_path, s3_server, s3, bucket, fault_proxy,
                                                     start_agent, figures):
    seed = int(os.environ.get("CDH_TEST_SEED", time.time_ns() % 1_000_000))
    rng = random.Random(seed)
    figures.note(f"agent SIGKILL loop: {KILLS} kills, seed {seed} (CDH_TEST_SEED to replay)")
    env = base_env(tmp_path, s3_server.agent_env(bucket, url=fault_proxy.url), **SMALL_PARTS)
    host = tmp_path / "host"
    sizes = [rng.randrange(1, 26 * MiB) for _ in range(6)] + [100, 3 * MiB]
    expected = ledger.hashed(composer_zips(host, sizes))
    # Every request takes a little while, so that a kill lands inside an upload, not between two.
    fault_proxy.add(Rule("stall", stall_s=0.03))
    kills = 0
    with ledger.DeletionWatch(s3, bucket, host / "cores", expected) as watch:
        for _ in range(KILLS):
            if not zips_left(host / "cores"):
                break
            seen = fault_proxy.count()
            agent = start_agent(env)
            at = seen + rng.randrange(2, 14)  # HEAD bucket, list, create, parts, complete, HEAD ...
            wait_until(lambda at=at: fault_proxy.count() >= at or not zips_left(host / "cores"),
                       timeout=60, what="requests of an upload")
            agent.proc.kill()
            agent.wait(10)
            kills += 1
            for name in zips_left(host / "cores"):  # what is on disk is whole: never half a zip
                assert ledger.zip_problem((host / "cores" / name).read_bytes()) is None, name
        assert kills >= KILLS // 2, "the uploads ended before the agent could be killed often enough"
        last = start_agent(env)
        wait_until(lambda: zips_left(host / "cores") == [], timeout=120, what="every zip uploaded")
        last.check_alive()
    delivery = ledger.check(s3, bucket, expected)
    figures.case(kills)
    figures.faults(kills)
    figures.captured(len(expected))
    figures.delivered(delivery.intact, delivery.lost_bytes)
    assert watch.early == []
    assert delivery.lost_bytes == 0, str(delivery)
    assert pending_uploads(s3, bucket) == []  # every stale multipart upload was aborted
    assert list(host.glob("cores/.*")) == []


def _big_crash_in_flight(node, mib: int = 384):
    """Start a crash whose core takes a while to stream; (crasher, composer pid) once its .part exists."""
    crasher = node.start_crash("big", str(mib), "random")
    wait_until(lambda: node.parts() and node.parts()[0].stat().st_size > 1 << 20, timeout=60,
               what="the composer's .part, a MiB into the core", interval=0.002)
    (composer,) = wait_until(lambda: node.composers(crasher.pid), timeout=10, what="the composer")
    return crasher, composer


def test_composer_sigkilled_mid_capture(node, s3_server, s3, bucket, start_agent, figures):
    """The dying process is released, no *.zip appears, the agent deletes and reports the .part,
    and the next crash is captured and uploaded as usual."""
    agent = start_agent(node.agent_env(s3_server.agent_env(bucket), CDH_COMPRESSION="none",
                                       CDH_RATE_LIMIT="off"))
    agent.wait_event("agent.started")
    crasher, composer = _big_crash_in_flight(node)
    os.kill(composer, signal.SIGKILL)
    assert crasher.wait(timeout=60) == -signal.SIGSEGV  # released: the kernel stops dumping
    (part,) = node.parts()
    assert node.zips() == []
    (gone,) = agent.wait_event("retention.part_abandoned", timeout=60)
    assert gone["file"] == str(part) and gone["bytes"] > 0
    assert node.parts() == [] and node.zips() == []
    node.crash("segv")  # the node still captures
    (done,) = node.wait_done(1)
    wait_until(lambda: node.zips() == [], timeout=60, what="the next core uploaded")
    delivery = ledger.check(s3, bucket, ledger.from_composer([done]))
    figures.case()
    figures.faults(1)
    figures.captured(1)  # the killed capture is lost with its composer; that is the fault, not a loss
    figures.delivered(delivery.intact, delivery.lost_bytes)
    assert delivery.intact == 1, str(delivery)


def test_agent_restarted_while_a_composer_writes(node, s3_server, s3, bucket, start_agent, figures):
    """A composer is held mid-capture (SIGSTOP) while the agent is stopped, killed and restarted, and
    its .part grows older than the grace: still locked, so it is left alone; then the zip arrives."""
    env = node.agent_env(s3_server.agent_env(bucket), CDH_RATE_LIMIT="off")
    first = start_agent(env)
    first.wait_event("agent.started")
    crasher, composer = _big_crash_in_flight(node)
    os.kill(composer, signal.SIGSTOP)
    try:
        first.signal(signal.SIGTERM)
        assert first.wait(60) == 0
        second = start_agent(env)
        second.wait_event("agent.started")
        second.proc.kill()  # and once more, the hard way
        second.wait(10)
        (part,) = node.parts()
        an_hour_ago = time.time() - 3600
        os.utime(part, (an_hour_ago, an_hour_ago))  # far past the grace: only the lock says "alive"
        third = start_agent(env)
        live = third.wait_event("retention.part_live")
        assert live[0]["file"] == str(part) and live[0]["age_s"] >= 3600
        assert node.parts() == [part]
    finally:
        os.kill(composer, signal.SIGCONT)
    assert crasher.wait(timeout=120) == -signal.SIGSEGV
    (done,) = node.wait_done(1)
    wait_until(lambda: node.zips() == [], timeout=120, what="the zip uploaded")
    assert not third.events("retention.part_abandoned")
    delivery = ledger.check(s3, bucket, ledger.from_composer([done]))
    figures.case()
    figures.faults(3)  # SIGTERM and SIGKILL of the agent, and the stalled composer
    figures.captured(1)
    figures.delivered(delivery.intact, delivery.lost_bytes)
    assert delivery.intact == 1 and delivery.lost_bytes == 0, str(delivery)
