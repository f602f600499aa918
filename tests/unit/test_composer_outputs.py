"""dump-info fields, event files and the composer log."""

from __future__ import annotations

import json
import os
import stat

import pytest

from cdh import ondisk
from cdh.composer import dumpinfo, kernel
from cdh.composer.log import ComposerLog
from cdh.composer.output import write_event
from cdh.composer.podmeta import ContainerFacts, PodMeta


def kargs(**over):
    args = {"c": "0", "e": 'we"ird\\exe\n', "p": "7", "P": "4242", "s": "11", "t": "1718000000",
            "h": "web-0", "E": "!app!bin"}
    args.update(over)
    return kernel.parse([f"-{k}={v}" for k, v in args.items()])


def meta():
    m = PodMeta("c" * 64)
    m.pod_id, m.pod_found_by, m.namespace, m.podname = "p" * 64, "cgroup", "shop", "web-0"
    m.pod_uid, m.container, m.image, m.image_digest = "uid-1", "app", "nginx:1.27", "sha256:" + "d" * 64
    m.labels = {"app": "web", "info.coredump.owner": "team-a", "info.coredumpx": "y"}
    c = ContainerFacts("c" * 64)
    c.image_info = {"repoDigests": ["docker.io/library/nginx@sha256:" + "d" * 64]}
    m.containers = [c, ContainerFacts("e" * 64)]
    return m


def test_dump_info_has_every_field_typed():
    info = dumpinfo.dump_info(uuid="u-1", name="n", kargs=kargs(), node="node-1", meta=meta(),
                              core_size=123, compression="deflate", truncated_reason=None,
                              errors=["a", "a", "b"])
    assert tuple(info) == ondisk.DUMP_INFO_FIELDS  # every field, in the contract's order
    assert info["dump_file"] == "n.core" and info["exe"] == 'we"ird\\exe\n'
    typed = (info["real_pid"], info["host_pid"], info["signal"], info["timestamp"])
    assert typed == (7, 4242, 11, 1718000000)
    assert info["path"] == "/app/bin" and info["truncated"] is False and info["truncated_reason"] is None
    assert info["metadata_errors"] == ["a", "b"]
    assert json.loads(dumpinfo.dumps(info)) == info  # real JSON, whatever the process was called


def test_dump_info_unknowns_are_null():
    m = PodMeta(None)
    info = dumpinfo.dump_info(uuid="u", name="n", kargs=kernel.parse([]), node="x", meta=m, core_size=0,
                              compression="none", truncated_reason="deadline", errors=[])
    for field in ("real_pid", "host_pid", "signal", "namespace", "podname", "container_id", "image"):
        assert info[field] is None, field
    assert info["truncated"] is True and info["pod_found_by"] == "none"


def test_metadata_entries_names():
    m = meta()
    m.pod_item, m.runtime_info, m.ps_info = {"id": "p"}, {"status": {}}, {"containers": []}
    m.containers[0].log = b"log"
    names = [n for n, _ in dumpinfo.metadata_entries("N", m, {"status": b"s"})]
    assert names == ["N-pod-info.json", "N-runtime-info.json", "N-ps-info.json", "N-0.log",
                     "N-0-image-info.json", "N-proc/status"]


def test_event_file_fields_and_atomic_write(tmp_path):
    record = dumpinfo.event_record({"uuid": "u-1", "node_hostname": "node-1"}, kargs(), meta(), "n.zip")
    ibm = ("image_list", "key", "exe_path", "labels", "limit_size", "exe_name", "pid", "signal",
           "timestamp", "hostname", "namespace", "uuid")
    assert set(ibm) | {"podname", "node", "zip"} <= set(record)
    assert record["labels"] == {"info.coredump.owner": "team-a", "info.coredumpx": "y"}
    assert record["image_list"] == ["docker.io/library/nginx@sha256:" + "d" * 64]
    assert (record["key"], record["node"], record["pid"]) == ("n.zip", "node-1", "7")
    path = write_event(str(tmp_path / "events"), "u-1", dumpinfo.dumps(record))
    with open(path) as f:
        assert json.loads(f.read()) == record
    assert os.path.basename(path) == "u-1-event.json"
    assert stat.S_IMODE(os.stat(tmp_path / "events").st_mode) == 0o700
    assert os.listdir(tmp_path / "events") == ["u-1-event.json"]  # no temp file left


def test_event_never_follows_a_planted_symlink(tmp_path):
    d = tmp_path / "events"
    d.mkdir()
    victim = tmp_path / "victim"
    victim.write_text("keep me")
    (d / "u-1-event.json").symlink_to(victim)
    record = dumpinfo.event_record({"uuid": "u-1", "node_hostname": "n"}, kargs(), meta(), "n.zip")
    write_event(str(d), "u-1", dumpinfo.dumps(record))
    assert victim.read_text() == "keep me"
    assert not (d / "u-1-event.json").is_symlink()  # the link itself was replaced
    assert json.loads((d / "u-1-event.json").read_text())["uuid"] == "u-1"


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
