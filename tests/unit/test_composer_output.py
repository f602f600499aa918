"""What the composer leaves on disk: the zip, unlocked once published, and the event file, whole under
its final name from the moment that name is created (the record's fields: test_composer_dumpinfo.py)."""

from __future__ import annotations

import asyncio
import errno
import json
import os
import stat

import pytest

from cdh.composer import dumpinfo, output
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


def test_zip_file_mode_applies_once_the_zip_is_whole(tmp_path):
    """CDH_ZIP_FILE_MODE (an uploader of another user): 0600 while written, the mode when published;
    CORE_DIR opens to the same readers."""
    from cdh.composer.output import PartFile

    part = PartFile(str(tmp_path / "cores"), "n", "0123abcd-uuid", mode=0o644)
    try:
        assert stat.S_IMODE(os.stat(tmp_path / "cores").st_mode) == 0o755
        assert stat.S_IMODE(os.fstat(part.fd).st_mode) == 0o600
        name = part.publish()
        assert stat.S_IMODE(os.stat(tmp_path / "cores" / name).st_mode) == 0o644
    finally:
        part.close()
    # Back to the default: the zips are 0600 again, and the directory keeps its read bits (cdh never
    # takes a bit away from a directory: CORE_DIR=/ made 0700 would lock every user out of the node).
    part = PartFile(str(tmp_path / "cores"), "m", "4567abcd-uuid")
    try:
        name = part.publish()
        assert stat.S_IMODE(os.stat(tmp_path / "cores" / name).st_mode) == 0o600
    finally:
        part.close()
    assert stat.S_IMODE(os.stat(tmp_path / "cores").st_mode) == 0o755


def inotify_events(directory, action) -> list[tuple[str, str]]:
    """(event name, file name) of everything inotify reports in ``directory`` while ``action`` runs."""
    from asyncinotify import Inotify, Mask

    async def run():
        with Inotify() as inotify:
            inotify.add_watch(directory, Mask.CREATE | Mask.MODIFY | Mask.CLOSE_WRITE | Mask.MOVED_TO)
            action()
            seen = []
            while True:
                try:
                    async with asyncio.timeout(0.5):
                        event = await inotify.get()
                except TimeoutError:
                    return seen
                for flag in (Mask.CREATE, Mask.MODIFY, Mask.CLOSE_WRITE, Mask.MOVED_TO):
                    if event.mask & flag:
                        seen.append((flag.name, str(event.name)))

    return asyncio.run(run())


def test_event_file_is_created_whole_under_its_final_name(tmp_path):
    """IBM's sidecar: `inotifywait -e create`, then read. No temp name, no write after the create."""
    d = tmp_path / "events"
    d.mkdir(mode=0o700)
    seen = inotify_events(d, lambda: write_event(str(d), "u-1", dumpinfo.event_line({"uuid": "u-1"})))
    # the writes went to the unnamed file (inotify names it "#<inode>"); the name appears complete
    named = [e for e in seen if not e[1].startswith("#")]
    assert named == [("CREATE", "u-1-event.json"), ("CLOSE_WRITE", "u-1-event.json")], seen


def test_event_file_mode_opens_the_directory_to_the_same_readers(tmp_path):
    path = write_event(str(tmp_path / "events"), "u-1", b"{}\n", mode=0o644)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644
    assert stat.S_IMODE(os.stat(tmp_path / "events").st_mode) == 0o755
    path = write_event(str(tmp_path / "grp"), "u-2", b"{}\n", mode=0o640)
    assert stat.S_IMODE(os.stat(tmp_path / "grp").st_mode) == 0o750


def test_without_o_tmpfile_the_event_is_renamed_into_place(tmp_path, monkeypatch):
    real_open = os.open

    def no_tmpfile(path, flags, *args, **kw):
        if flags & os.O_TMPFILE == os.O_TMPFILE:
            raise OSError(errno.EOPNOTSUPP, "Operation not supported")
        return real_open(path, flags, *args, **kw)

    monkeypatch.setattr(output.os, "open", no_tmpfile)
    path = write_event(str(tmp_path / "events"), "u-1", b'{"uuid":"u-1"}\n', mode=0o644)
    with open(path) as f:
        assert json.loads(f.read()) == {"uuid": "u-1"}
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644
    assert os.listdir(tmp_path / "events") == ["u-1-event.json"]
