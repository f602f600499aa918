"""Node faults: the filesystem under CORE_DIR (and under HOST_DIR) fills up, real kernel, real agent.

Limits are off here (CDH_KEEP_FREE=0, CDH_MAX_USE=off) so that the disk really fills; the retention
area tests the limits that keep a node from getting there. The composer must end before its
deadline, the dying process must be released, the result is no zip or a valid zip marked
truncated, and the agent keeps working: once space frees up the next crash goes through.
"""

from __future__ import annotations

import os

import pytest

from tests.reliability import ledger
from tests.reliability.node import fill, mount_tmpfs, umount
from tests.support.agentproc import wait_until

NO_LIMITS = {"CDH_KEEP_FREE": "0", "CDH_MAX_USE": "off", "CDH_RATE_LIMIT": "off"}


@pytest.fixture
def small_core_dir(node):
    mount_tmpfs(node.core_dir, "64m")
    try:
        yield node.core_dir
    finally:
        umount(node.core_dir)


def _last_words(node) -> list[dict]:
    return [line for line in node.log() if line["event"] in ("compose.done", "compose.failed")]


def test_core_dir_fills_during_a_capture(node, small_core_dir, s3_server, s3, bucket, start_agent, figures):
    agent = start_agent(node.agent_env(s3_server.agent_env(bucket), CDH_COMPRESSION="none",
                                       CDH_COMPOSER_TIMEOUT="120s", **NO_LIMITS))
    agent.wait_event("agent.started")
    crasher = node.start_crash("big", "256", "random")  # a 256 MiB core for a 64 MiB filesystem
    wait_until(lambda: node.parts(), timeout=60, what="the capture to start", interval=0.002)
    filled = fill(small_core_dir)  # and something else takes the rest meanwhile
    assert crasher.wait(timeout=120) == -11  # released
    (last,) = wait_until(lambda: _last_words(node), timeout=60, what="the composer's last word")
    expected = []
    if last["event"] == "compose.done":  # a valid zip marked truncated (else: no zip at all)
        assert last["truncated"] and last["truncated"] != "deadline", last  # ended on its own
        expected = ledger.from_composer([last])
    assert node.parts() == []
    for z in node.zips():
        assert ledger.zip_problem(z.read_bytes()) is None
    wait_until(lambda: node.zips() == [], timeout=60, what="the agent to upload what there is")
    os.unlink(small_core_dir / "filler")  # space frees up
    node.crash("big", "8")
    expected += ledger.from_composer(node.wait_done(len(expected) + 1)[-1:])
    wait_until(lambda: node.zips() == [], timeout=60, what="the next crash uploaded")
    agent.check_alive()
    delivery = ledger.check(s3, bucket, expected)
    figures.case()
    figures.faults(1)
    figures.captured(len(expected))
    figures.delivered(delivery.intact, delivery.lost_bytes)
    figures.note(f"full CORE_DIR: the capture ended with {last['event']} "
                 f"({last.get('truncated') or last.get('error')}); filler took {filled >> 20} MiB")
    assert delivery.lost_bytes == 0 and delivery.intact == len(expected), str(delivery)


def test_agent_restarts_on_a_full_host_dir_and_recovers(node, s3_server, s3, bucket, start_agent, figures):
    """HOST_DIR's filesystem is full when the agent (re)starts: it must not crash-loop, and it must
    keep uploading (which frees space)."""
    mount_tmpfs(node.host_dir, "160m")
    try:
        env = node.agent_env(s3_server.agent_env(bucket), CDH_COMPRESSION="none", **NO_LIMITS)
        first = start_agent(env)
        first.wait_event("agent.started")
        first.proc.kill()
        first.wait(10)
        node.crash("big", "16", "random")
        (done,) = node.wait_done(1)
        fill(node.host_dir)
        second = start_agent(env)
        wait_until(lambda: node.zips() == [], timeout=60, what="the zip uploaded by the restarted agent")
        second.check_alive()
        delivery = ledger.check(s3, bucket, ledger.from_composer([done]))
        figures.case()
        figures.faults(1)
        figures.captured(1)
        figures.delivered(delivery.intact, delivery.lost_bytes)
        assert delivery.intact == 1, str(delivery)
    finally:
        umount(node.host_dir)


def test_core_dir_removed_under_the_agent(node, s3_server, s3, bucket, start_agent, figures):
    """Someone removes CORE_DIR (a cleanup script, a remount): the next composer makes it again,
    and the agent, watching with inotify alone, must see the new zips there."""
    import shutil

    agent = start_agent(node.agent_env(s3_server.agent_env(bucket), CDH_USE_INOTIFY="true"))
    agent.wait_event("agent.started")
    shutil.rmtree(node.core_dir)
    node.crash("segv")
    (done,) = node.wait_done(1)
    wait_until(lambda: node.zips() == [], timeout=60, what="the zip in the new CORE_DIR uploaded")
    delivery = ledger.check(s3, bucket, ledger.from_composer([done]))
    figures.case()
    figures.faults(1)
    figures.captured(1)
    figures.delivered(delivery.intact, delivery.lost_bytes)
    assert delivery.intact == 1, str(delivery)
