"""dump-info, the zip's other small entries and the event record: IBM's names and types, real JSON."""

from __future__ import annotations

import json

from cdh import ondisk
from cdh.composer import dumpinfo, kernel
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


def test_dump_info_keeps_ibms_strings_and_types_its_own_fields():
    info = dumpinfo.dump_info(uuid="u-1", name="n", kargs=kargs(), node="node-1", meta=meta(),
                              core_size=123, compression="deflate", truncated_reason=None,
                              errors=["a", "a", "b"])
    assert tuple(info) == ondisk.DUMP_INFO_FIELDS  # every field, in the contract's order
    assert info["dump_file"] == "n.core" and info["exe"] == 'we"ird\\exe\n'
    # IBM's nine: strings, as the kernel gave them (a consumer of IBM's zips reads a struct of strings)
    ibm = (info["real_pid"], info["signal"], info["timestamp"], info["path"])
    assert ibm == ("7", "11", "1718000000", "!app!bin")
    assert all(isinstance(info[f], str) for f in ondisk.IBM_FIELDS)
    typed = (info["pid"], info["host_pid"], info["signal_number"], info["timestamp_s"], info["executable"])
    assert typed == (7, 4242, 11, 1718000000, "/app/bin")
    assert info["truncated"] is False and info["truncated_reason"] is None
    assert info["metadata_errors"] == ["a", "b"]
    assert json.loads(dumpinfo.dumps(info)) == info  # real JSON, whatever the process was called


def test_dump_info_unknowns_are_null():
    m = PodMeta(None)
    info = dumpinfo.dump_info(uuid="u", name="n", kargs=kernel.parse([]), node="x", meta=m, core_size=0,
                              compression="none", truncated_reason="deadline", errors=[])
    for field in ("pid", "host_pid", "signal_number", "namespace", "podname", "container_id", "image"):
        assert info[field] is None, field
    for field in ("real_pid", "signal", "timestamp", "path"):  # IBM wrote "" for a missing argument
        assert info[field] == "", field
    assert info["truncated"] is True and info["pod_found_by"] == "none"


def test_metadata_entries_names():
    m = meta()
    m.pod_item, m.runtime_info, m.ps_info = {"id": "p"}, {"status": {}}, {"containers": []}
    m.containers[0].log = b"log"
    m.containers[1].proc = {"auxv": b"a", "cmdline": b"c"}
    names = [n for n, _ in dumpinfo.metadata_entries("N", m, {"status": b"s"})]
    assert names == ["N-pod-info.json", "N-runtime-info.json", "N-ps-info.json", "N-0.log",
                     "N-0-image-info.json", "N-1-proc/auxv", "N-1-proc/cmdline", "N-proc/status"]


def test_event_record_has_ibms_fields_as_ibm_wrote_them():
    record = dumpinfo.event_record({"uuid": "u-1", "node_hostname": "node-1"}, kargs(), meta(), "n.zip")
    ibm = ("image_list", "key", "exe_path", "labels", "limit_size", "exe_name", "pid", "signal",
           "timestamp", "hostname", "namespace", "uuid")
    assert set(ibm) | {"podname", "node", "zip"} <= set(record)
    assert record["labels"] == {"info.coredump.owner": "team-a", "info.coredumpx": "y"}
    # one entry per container, "" where its image is unknown, as IBM's
    assert record["image_list"] == ["docker.io/library/nginx@sha256:" + "d" * 64, ""]
    assert (record["key"], record["node"], record["pid"]) == ("n.zip", "node-1", "7")
    assert (record["signal"], record["timestamp"], record["exe_path"]) == ("11", "1718000000", "!app!bin")
    assert all(isinstance(record[f], str) for f in ibm if f not in ("image_list", "labels"))
    line = dumpinfo.event_line(record)
    assert line.count(b"\n") == 1 and line.endswith(b"\n") and json.loads(line) == record


def test_event_record_namespace_is_unknown_when_unknown():
    record = dumpinfo.event_record({"uuid": "u", "node_hostname": "n"}, kargs(), PodMeta(None), "n.zip")
    assert record["namespace"] == "unknown" and record["image_list"] == [] and record["labels"] == {}


def test_readers_take_typed_fields_or_ibms_strings():
    assert ondisk.dump_int({"signal_number": 11, "signal": "11"}, "signal_number", "signal") == 11
    assert ondisk.dump_int({"signal": "10"}, "signal_number", "signal") == 10      # IBM's zip
    assert ondisk.dump_int({"signal": 6}, "signal_number", "signal") == 6          # cdh's older zips
    assert ondisk.dump_int({"signal": ""}, "signal_number", "signal") is None
    assert ondisk.dump_executable({"path": "!usr!bin!app"}) == "/usr/bin/app"
    assert ondisk.dump_executable({"path": "!x", "executable": "/usr/x"}) == "/usr/x"
