"""The composer log relay (cdh/agent/composerlog.py) against the composer's own log writer
(cdh/composer/log.py), rotation included: every line once, in order, across rotations and restarts."""

from __future__ import annotations

import io
import json
import os

from cdh import ondisk
from cdh.agent.composerlog import ComposerLogRelay
from cdh.agent.log import Log
from cdh.composer.log import ComposerLog


class Captured:
    """The agent's log, kept in memory."""

    def __init__(self, level: str = "debug") -> None:
        self.stream = io.BytesIO()
        self.log = Log(level, stream=self.stream)

    def lines(self) -> list[dict]:
        return [json.loads(x) for x in self.stream.getvalue().splitlines()]

    def relayed(self) -> list[dict]:
        return [x for x in self.lines() if x.get("component") == "composer"]

    def events(self, name: str) -> list[dict]:
        return [x for x in self.lines() if x["event"] == name]


def write(host_dir, n: int, start: int = 0, max_bytes: int = 1 << 20) -> None:
    """n composer runs' lines, each run a new ComposerLog as on a real crash."""
    for i in range(start, start + n):
        log = ComposerLog(str(host_dir), "info", max_bytes)
        log.context = {"uuid": f"u{i}"}
        log.info("compose.done", seq=i, core_size=100 + i)
        log.close()


def seqs(cap: Captured) -> list[int]:
    return [x["seq"] for x in cap.relayed() if "seq" in x]


def test_first_start_skips_old_lines_and_says_so_then_relays_new_ones(host_dir):
    write(host_dir, 3)
    cap = Captured()
    relay = ComposerLogRelay(str(host_dir), cap.log)
    relay.open_at_start()
    (note,) = cap.events("composer_log.following")
    assert note["skipped_bytes"] == os.path.getsize(host_dir / "composer.log") > 0
    assert relay.pump() == 0 and seqs(cap) == []
    write(host_dir, 2, start=3)
    assert relay.pump() == 2
    assert seqs(cap) == [3, 4]
    line = cap.relayed()[0]
    assert list(line)[:4] == ["ts", "level", "event", "component"]
    assert line["event"] == "compose.done" and line["uuid"] == "u3" and line["level"] == "info"


def test_a_log_created_after_the_start_is_read_from_its_beginning(host_dir):
    cap = Captured()
    relay = ComposerLogRelay(str(host_dir), cap.log)
    relay.open_at_start()
    write(host_dir, 2)
    relay.pump()
    assert seqs(cap) == [0, 1]


def test_rotation_loses_and_repeats_nothing(host_dir):
    cap = Captured()
    relay = ComposerLogRelay(str(host_dir), cap.log)
    relay.open_at_start()
    for start in range(0, 300, 7):  # lines arrive in bursts; the log rotates every ~4 KiB
        write(host_dir, 7, start=start, max_bytes=4096)
        relay.pump()
    relay.pump()
    assert (host_dir / "composer.log.1").exists()  # ~30 KiB written: rotated several times
    assert seqs(cap) == list(range(301))


def test_a_restart_resumes_where_it_left_off_and_says_so(host_dir):
    cap = Captured()
    relay = ComposerLogRelay(str(host_dir), cap.log)
    relay.open_at_start()
    write(host_dir, 3)
    relay.pump()
    relay.close()  # saves the position
    write(host_dir, 2, start=3)  # while the agent is down
    cap2 = Captured()
    relay2 = ComposerLogRelay(str(host_dir), cap2.log)
    relay2.open_at_start()
    (note,) = cap2.events("composer_log.resumed")
    assert note["behind_bytes"] > 0
    relay2.pump()
    assert seqs(cap) == [0, 1, 2] and seqs(cap2) == [3, 4]


def test_a_rotation_while_down_is_followed_into_the_rotated_file(host_dir):
    cap = Captured()
    relay = ComposerLogRelay(str(host_dir), cap.log)
    relay.open_at_start()
    write(host_dir, 2, max_bytes=4096)
    relay.pump()
    relay.close()
    write(host_dir, 40, start=2, max_bytes=4096)  # down: one rotation happens
    assert (host_dir / "composer.log.1").exists()
    cap2 = Captured()
    relay2 = ComposerLogRelay(str(host_dir), cap2.log)
    relay2.open_at_start()
    assert cap2.events("composer_log.resumed")[0]["path"].endswith("composer.log.1")
    relay2.pump()
    assert seqs(cap2) == list(range(2, 42))


def test_a_partial_line_waits_for_its_end(host_dir):
    cap = Captured()
    relay = ComposerLogRelay(str(host_dir), cap.log)
    relay.open_at_start()
    path = host_dir / "composer.log"
    line = json.dumps({"ts": "2024-01-01T00:00:00.000Z", "level": "error", "event": "compose.failed",
                       "error": "disk full"}).encode()
    with open(path, "ab") as f:
        f.write(line[:20])
    relay.pump()
    relay.close()  # the saved position is the start of the unfinished line
    with open(path, "ab") as f:
        f.write(line[20:] + b"\n")
    relay2 = ComposerLogRelay(str(host_dir), cap.log)
    relay2.open_at_start()
    relay2.pump()
    (failed,) = cap.relayed()
    assert failed["event"] == "compose.failed" and failed["level"] == "error"
    assert failed["ts"] == "2024-01-01T00:00:00.000Z"  # the composer's time, not the relay's


def test_lines_that_are_not_json_objects_are_relayed_as_text(host_dir):
    cap = Captured()
    relay = ComposerLogRelay(str(host_dir), cap.log)
    relay.open_at_start()
    (host_dir / "composer.log").write_bytes(b"Traceback (most recent call last):\n[1, 2]\n\n")
    relay.pump()
    texts = [x["line"] for x in cap.events("composer.unparsed")]
    assert texts == ["Traceback (most recent call last):", "[1, 2]"]


def test_the_agents_level_filter_and_redaction_apply(host_dir):
    cap = Captured(level="warning")
    cap.log.secrets = ("AKIASECRETVALUE12345",)
    relay = ComposerLogRelay(str(host_dir), cap.log)
    relay.open_at_start()
    log = ComposerLog(str(host_dir), "debug")
    log.info("compose.start", exe="x")
    log.error("compose.failed", error="AKIASECRETVALUE12345 leaked into a message")
    log.close()
    relay.pump()
    (line,) = cap.relayed()
    assert line["event"] == "compose.failed" and "AKIASECRETVALUE12345" not in json.dumps(line)


def test_an_unreadable_position_file_means_from_the_end(host_dir):
    write(host_dir, 2)
    (host_dir / ondisk.STATE).mkdir()
    (host_dir / ondisk.STATE / ondisk.LOG_POSITION).write_text("{not json")
    cap = Captured()
    relay = ComposerLogRelay(str(host_dir), cap.log)
    relay.open_at_start()
    assert cap.events("composer_log.position_unreadable") and cap.events("composer_log.following")
    relay.pump()
    assert seqs(cap) == []


async def test_a_stop_while_a_composer_writes_is_never_lost(host_dir):
    """Cancelling the relay at the moment a line arrives must end it (asyncio.wait_for in Python 3.11
    returns the result instead of raising when both happen at once: the agent then hung on SIGTERM)."""
    import asyncio
    import random

    rng = random.Random(7)
    for i in range(100):
        relay = ComposerLogRelay(str(host_dir), Captured().log)
        task = asyncio.create_task(relay.run())
        await asyncio.sleep(0.002)
        write(host_dir, 1, start=i)
        for _ in range(rng.randrange(4)):
            await asyncio.sleep(0)
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=3)
        assert done, f"the relay did not stop after cancel (round {i})"
