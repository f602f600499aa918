"""The retention guard (cdh/retention.py) on a real, small filesystem, with real crashes and the agent.

Over CDH_MAX_USE or under CDH_KEEP_FREE: a new core is cut short at the limit (a valid zip, marked
truncated, the process released); the agent deletes only uploaded leftovers, oldest first, never
a zip that is not uploaded; every decision is a log line; once uploads free space, cores are
whole again.
"""

from __future__ import annotations

import os
import signal

from tests.reliability import ledger
from tests.reliability.node import fill, mount_tmpfs, umount
from tests.support.agentproc import wait_until

MiB = 1 << 20


def _config(tmp_path, bucket: str):
    path = tmp_path / "cdh.env"
    path.write_text(f"CDH_S3_BUCKET={bucket}\n")
    return path


def _broken_then_fixed(agent, cfg, bucket: str) -> None:
    cfg.write_text(f"CDH_S3_BUCKET={bucket}\n")
    agent.signal(signal.SIGHUP)


def test_max_use_cuts_new_cores_and_never_deletes_a_waiting_one(node, tmp_path, s3_server, s3, bucket,
                                                                start_agent, figures):
    mount_tmpfs(node.core_dir, "128m")  # CDH_MAX_USE's default, 25%: 32 MiB of cores
    try:
        cfg = _config(tmp_path, "cdh-no-such-bucket")  # the store is unreachable: nothing leaves
        agent = start_agent(node.agent_env(s3_server.agent_env(bucket), CDH_CONFIG_FILE=str(cfg),
                                           CDH_COMPRESSION="none", CDH_RATE_LIMIT="off",
                                           CDH_MAX_USE="25%", CDH_KEEP_FREE="10%"))  # the defaults
        agent.wait_event("agent.started")
        node.crash("big", "48", "random")
        node.crash("big", "48", "random")
        first, second = node.wait_done(2)
        limited = node.events("core.space_limited")
        assert [x["limit"] for x in limited] == ["CDH_MAX_USE", "CDH_MAX_USE"]
        assert first["truncated"].startswith("CDH_MAX_USE") and 24 * MiB < first["core_size"] < 32 * MiB
        assert second["truncated"].startswith("CDH_MAX_USE") and second["core_size"] < MiB
        for z in node.zips():
            assert ledger.zip_problem(z.read_bytes()) is None  # valid, and dump-info says truncated
        expected = ledger.hashed(node.zips())
        agent.signal(signal.SIGHUP)  # a reload runs the janitor now
        (over,) = agent.wait_event("retention.over_limit")
        assert over["limit"] == "CDH_MAX_USE" and over["zips_kept"] == 2
        assert len(node.zips()) == 2 and not agent.events("retention.deleted")
        with ledger.DeletionWatch(s3, bucket, node.core_dir, expected) as watch:
            _broken_then_fixed(agent, cfg, bucket)
            wait_until(lambda: node.zips() == [], timeout=60, what="uploads once the store is back")
        agent.wait_event("retention.ok", timeout=30)
        node.crash("big", "16", "random")  # room again: a whole core
        third = node.wait_done(3)[-1]
        assert third["truncated"] is None and third["core_size"] > 16 * MiB
        wait_until(lambda: node.zips() == [], timeout=60, what="the whole core uploaded")
        expected += ledger.from_composer([third])
        delivery = ledger.check(s3, bucket, expected)
        figures.case()
        figures.faults(3)
        figures.captured(3)
        figures.delivered(delivery.intact, delivery.lost_bytes)
        figures.note(f"CDH_MAX_USE: cores cut at {first['core_size'] >> 20} MiB and "
                     f"{second['core_size'] >> 10} KiB while 2 zips waited; none deleted; whole again "
                     "once uploaded")
        assert watch.early == [] and delivery.intact == 3, str(delivery)
    finally:
        umount(node.core_dir)


def test_keep_free_deletes_uploaded_leftovers_oldest_first_then_cuts_cores(node, tmp_path, s3_server, s3,
                                                                          bucket, start_agent, figures):
    data = node.host_dir / "data"  # CORE_DIR and EVENT_DIR on one 64 MiB filesystem
    mount_tmpfs(data, "64m")
    try:
        cfg = _config(tmp_path, bucket)
        env = node.agent_env(s3_server.agent_env(bucket), CDH_CONFIG_FILE=str(cfg), CDH_RATE_LIMIT="off",
                             CDH_CORE_DIR=str(data / "cores"), CDH_EVENT_DIR=str(data / "events"),
                             CDH_CORE_EVENTS="true", CDH_KEEP_FREE="16MiB", CDH_MAX_USE="off")
        cores, events = data / "cores", data / "events"
        agent = start_agent(env)
        agent.wait_event("agent.started")
        for _ in range(3):
            node.crash("segv")
        uploaded = node.wait_done(3)
        wait_until(lambda: not list(cores.glob("*.zip")), timeout=60, what="three uploads")
        leftovers = sorted(events.iterdir(), key=lambda p: p.stat().st_mtime)
        assert len(leftovers) == 3  # the events of uploaded cores: what the guard may delete
        cfg.write_text("CDH_S3_BUCKET=cdh-no-such-bucket\n")  # the store goes away
        agent.signal(signal.SIGHUP)
        agent.wait_event("config.reloaded")
        node.crash("segv")
        waiting = node.wait_done(4)[-1]
        (waiting_event,) = set(events.iterdir()) - set(leftovers)
        filler = data / "not-ours"
        fill(data, "not-ours")
        os.truncate(filler, filler.stat().st_size - 8 * MiB)  # 8 MiB free: under the 16 MiB floor
        agent.signal(signal.SIGHUP)  # the janitor's pass
        wait_until(lambda: len(agent.events("retention.deleted")) == 3, timeout=30, what="the leftovers")
        deleted = [d["file"] for d in agent.events("retention.deleted")]
        assert deleted == [str(p) for p in leftovers], "oldest first, and only those"
        (over,) = agent.wait_event("retention.over_limit")
        assert over["limit"] == "CDH_KEEP_FREE" and over["zips_kept"] == 1
        assert waiting_event.exists() and (cores / waiting["zip"]).exists() and filler.exists()
        node.crash("big", "32", "random")  # no room at all: the zip says so and holds no core
        cut = node.wait_done(5)[-1]
        assert cut["truncated"].startswith("CDH_KEEP_FREE") and cut["core_size"] == 0
        expected = ledger.hashed(sorted(cores.glob("*.zip")))
        with ledger.DeletionWatch(s3, bucket, cores, expected) as watch:
            filler.unlink()
            _broken_then_fixed(agent, cfg, bucket)
            wait_until(lambda: not list(cores.glob("*.zip")), timeout=60, what="uploads once back")
        agent.wait_event("retention.ok", timeout=30)
        delivery = ledger.check(s3, bucket, expected + ledger.from_composer(uploaded))
        figures.case()
        figures.faults(2)
        figures.captured(5)
        figures.delivered(delivery.intact, delivery.lost_bytes)
        figures.note("CDH_KEEP_FREE: 3 uploaded leftovers deleted oldest first, 1 waiting zip and its "
                     "event kept, the next core cut to 0 bytes and marked; every decision logged")
        assert watch.early == [] and delivery.intact == 5, str(delivery)
    finally:
        umount(data)
