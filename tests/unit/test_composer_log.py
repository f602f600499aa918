"""The composer's log: JSON lines, private, filtered by level, rotated at its cap."""

from __future__ import annotations

import json
import stat

from cdh.composer.log import ComposerLog


def test_log_is_json_lines_private_and_filtered_by_level(tmp_path):
    log = ComposerLog(str(tmp_path), level="info", max_bytes=1 << 20)
    log.context = {"uuid": "u"}
    log.debug("not.shown")
    log.info("compose.start", pid=1)
    log.error("x.failed", error="boom")
    log.close()
    lines = [json.loads(line) for line in (tmp_path / "composer.log").read_text().splitlines()]
    assert [(x["level"], x["event"], x["uuid"]) for x in lines] == [("info", "compose.start", "u"),
                                                                     ("error", "x.failed", "u")]
    assert stat.S_IMODE((tmp_path / "composer.log").stat().st_mode) == 0o600


def test_log_rotates_at_its_cap_keeping_one_old_file(tmp_path):
    cap = 4096
    for run in range(40):  # many composers, one after another
        log = ComposerLog(str(tmp_path), max_bytes=cap)
        log.info("compose.done", run=run, pad="x" * 200)
        log.close()
    current, old = tmp_path / "composer.log", tmp_path / "composer.log.1"
    assert current.stat().st_size <= cap and old.stat().st_size <= cap
    assert sorted(p.name for p in tmp_path.iterdir()) == ["composer.log", "composer.log.1"]
    last = json.loads(current.read_text().splitlines()[-1])
    assert last["run"] == 39
    for line in old.read_text().splitlines() + current.read_text().splitlines():
        json.loads(line)  # rotation never splits a line


def test_log_without_host_dir_goes_to_stderr(tmp_path, capfd):
    log = ComposerLog(str(tmp_path / "missing"))
    log.info("compose.start")
    assert '"event":"compose.start"' in capfd.readouterr().err
    assert not (tmp_path / "missing").exists()
