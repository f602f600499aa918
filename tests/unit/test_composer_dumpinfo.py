"""dump-info, the zip's other small entries and the event record: IBM's names, real JSON."""

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


def test_event_record_has_ibms_fields_as_ibm_wrote_them():
    record = dumpinfo.event_record({"uuid": "u-1", "node_hostname": "node-1"}, kargs(), meta(), "n.zip")
    ibm = ("image_list", "key", "exe_path", "labels", "limit_size", "exe_name", "pid", "signal",
           "timestamp", "hostname", "namespace", "uuid")
    assert set(ibm) | {"podname", "node", "zip"} <= set(record)
    assert record["labels"] == {"info.coredump.owner": "team-a", "info.coredumpx": "y"}
    assert record["image_list"] == ["docker.io/library/nginx@sha256:" + "d" * 64]
    assert (record["key"], record["node"], record["pid"]) == ("n.zip", "node-1", "7")
    assert json.loads(dumpinfo.dumps(record)) == record
