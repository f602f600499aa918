"""What the composer leaves on disk: the zip, unlocked once published, and the event file, written
atomically (the record's fields: test_composer_dumpinfo.py)."""

from __future__ import annotations

import json
import os
import stat

import pytest

from cdh.composer import dumpinfo
from cdh.composer.output import write_event


def test_event_file_is_written_atomically_and_privately(tmp_path):
    record = {"uuid": "u-1", "zip": "n.zip", "exe_name": "we\"ird\\exe\n"}
    path = write_event(str(tmp_path / "events"), "u-1", dumpinfo.dumps(record))
    with open(path) as f:
        assert json.loads(f.read()) == record
    assert os.path.basename(path) == "u-1-event.json"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(tmp_path / "events").st_mode) == 0o700
    assert os.listdir(tmp_path / "events") == ["u-1-event.json"]  # no temp file left


def test_event_never_follows_a_planted_symlink(tmp_path):
    d = tmp_path / "events"
    d.mkdir()
    victim = tmp_path / "victim"
    victim.write_text("keep me")
    (d / "u-1-event.json").symlink_to(victim)
    write_event(str(d), "u-1", dumpinfo.dumps({"uuid": "u-1"}))
    assert victim.read_text() == "keep me"
    assert not (d / "u-1-event.json").is_symlink()  # the link itself was replaced
    assert json.loads((d / "u-1-event.json").read_text())["uuid"] == "u-1"


def test_a_published_zip_is_not_locked_while_the_composer_finishes(tmp_path):
    """The agent may take the zip as soon as it has its name, before the composer exits."""
    import fcntl

    from cdh.composer.output import PartFile

    part = PartFile(str(tmp_path), "n", "0123abcd-uuid")
    os.write(part.fd, b"PK whole zip")
    probe = os.open(tmp_path / part.part_name, os.O_RDONLY)
    try:
        with pytest.raises(BlockingIOError):  # while written: locked (the agent says busy)
            fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
        name = part.publish()
        fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)  # published: free, the composer still open
        assert name == "n.zip" and (tmp_path / "n.zip").read_bytes() == b"PK whole zip"
    finally:
        os.close(probe)
        part.close()
