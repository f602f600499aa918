"""The agent's side of the retention guard (cdh/retention.py): abandoned parts recovered or removed,
uploaded leftovers deleted oldest first, never a zip."""

from __future__ import annotations

import fcntl
import io
import json
import os
import time
import zipfile

import pytest

from cdh import retention
from cdh.agent.janitor import Janitor
from cdh.config import load
from tests.support.loglines import Lines

GiB = 1 << 30


# ---------------------------------------------------------------- the janitor: parts


@pytest.fixture
def janitor(tmp_path):
    host = tmp_path / "host"
    (host / "cores").mkdir(parents=True)
    (host / "events").mkdir()
    settings = load([{"CDH_HOST_DIR": str(host), "CDH_S3_BUCKET": "b"}])
    return Janitor(settings, Lines())


def _aged(path, seconds: float = 3600) -> None:
    t = time.time() - seconds
    os.utime(path, (t, t))


def _whole_zip(name: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr(f"{name}.core", b"core")
        zf.writestr(f"{name}-dump-info.json", json.dumps({"uuid": "u"}))
    return buf.getvalue()


def test_abandoned_part_is_deleted_and_reported(janitor):
    cores = janitor.settings.core_dir
    part = os.path.join(cores, ".a-dump.zip.part")
    with open(part, "wb") as f:
        f.write(b"PK\x03\x04 half a core")
    _aged(part)
    janitor.run()
    assert not os.path.exists(part)
    (gone,) = janitor.log.events("retention.part_abandoned")
    assert gone["file"] == part and gone["bytes"] == 16 and gone["age_s"] >= 3600


def test_a_whole_zip_left_as_part_is_recovered(janitor):
    cores = janitor.settings.core_dir
    part = os.path.join(cores, ".b-dump.zip.part")
    with open(part, "wb") as f:
        f.write(_whole_zip("b-dump"))
    _aged(part)
    janitor.run()
    assert os.listdir(cores) == ["b-dump.zip"]
    assert janitor.log.events("retention.part_recovered")[0]["zip"] == "b-dump.zip"


def test_live_young_and_foreign_parts_are_left_alone(janitor, tmp_path):
    cores = janitor.settings.core_dir
    live = os.path.join(cores, ".live.zip.part")
    young = os.path.join(cores, ".young.zip.part")
    for p in (live, young):
        with open(p, "wb") as f:
            f.write(b"data")
    _aged(live)  # old, but a composer holds its lock
    os.symlink(str(tmp_path / "victim"), os.path.join(cores, ".link.zip.part"))
    (tmp_path / "victim").write_text("keep me")
    _aged(tmp_path / "victim")
    holder = os.open(live, os.O_RDONLY)
    fcntl.flock(holder, fcntl.LOCK_EX)
    try:
        janitor.run()
    finally:
        os.close(holder)
    assert sorted(os.listdir(cores)) == [".link.zip.part", ".live.zip.part", ".young.zip.part"]
    assert (tmp_path / "victim").read_text() == "keep me"
    assert [e["file"] for e in janitor.log.events("retention.part_live")] == [live]
    assert 0 < janitor._young <= retention.PART_GRACE_S  # looked at again once old enough
    assert not janitor.log.events("retention.part_abandoned")


# ---------------------------------------------------------------- the janitor: limits


def _event(janitor, uuid: str, zip_name: str, age: float) -> str:
    path = os.path.join(janitor.settings.event_dir, f"{uuid}-event.json")
    with open(path, "w") as f:
        json.dump({"uuid": uuid, "zip": zip_name}, f)
    _aged(path, age)
    return path


def test_over_the_floor_uploaded_leftovers_go_oldest_first_never_a_zip(janitor, monkeypatch):
    s = janitor.settings
    waiting = os.path.join(s.core_dir, "waiting.zip")
    with open(waiting, "wb") as f:
        f.write(b"z" * 10000)
    old = _event(janitor, "old", "uploaded-1.zip", 7200)
    newer = _event(janitor, "newer", "uploaded-2.zip", 3600)
    pending = _event(janitor, "pending", "waiting.zip", 9000)   # its zip is still here: kept
    free = {"bytes": 10 * GiB + retention.MIN_ROOM - 1}  # a byte short of room for a core

    def fs_space(fd):
        return 100 * GiB, free["bytes"]

    monkeypatch.setattr(retention, "fs_space", fs_space)
    janitor.run()
    deleted = janitor.log.events("retention.deleted")
    assert [d["file"] for d in deleted] == [old]  # one file freed enough (a block)
    assert os.path.exists(newer) and os.path.exists(pending) and os.path.exists(waiting)
    assert "CDH_KEEP_FREE" in deleted[0]["reason"]
    free["bytes"] = 1 * GiB  # far below: everything deletable goes, and what stays is said
    janitor.run()
    assert [d["file"] for d in janitor.log.events("retention.deleted")] == [old, newer]
    assert os.path.exists(pending) and os.path.exists(waiting)
    (over,) = janitor.log.events("retention.over_limit")
    assert over["limit"] == "CDH_KEEP_FREE" and over["zips_kept"] == 1
    janitor.run()
    assert len(janitor.log.events("retention.over_limit")) == 1  # not repeated every pass
    free["bytes"] = 50 * GiB
    janitor.run()
    assert janitor.log.events("retention.ok")


def test_over_max_use_nothing_is_deleted_and_it_is_said(janitor, monkeypatch):
    s = janitor.settings
    for i in range(3):
        with open(os.path.join(s.core_dir, f"z{i}.zip"), "wb") as f:
            f.write(os.urandom(40000))
    _event(janitor, "e", "gone.zip", 100)
    # 25% of 4 MB: 1 MB, less than a MiB left under it; the floor (10%) is far
    monkeypatch.setattr(retention, "fs_space", lambda fd: (4_000_000, 3_500_000))
    janitor.run()
    (over,) = janitor.log.events("retention.over_limit")
    assert over["limit"] == "CDH_MAX_USE" and over["zips_kept"] == 3
    assert not janitor.log.events("retention.deleted")  # events live outside CORE_DIR: no help
    assert len(os.listdir(s.core_dir)) == 3
