"""Crashes in containers of a real containerd, through the real kernel, into the installed composer.

The composer finds the container by the id in the crasher's cgroup and asks containerd over CRI
gRPC (CDH_CRI_ENDPOINT): every zip must name the right namespace, pod, pod UID, container,
restart attempt, image and digest, and carry the container's last log lines, also when two pods
share a name, for a hostNetwork pod, after a restart, and not at all (but keep the core) when the
runtime is down.
"""

from __future__ import annotations

import json
import os
import uuid
import zipfile
from pathlib import Path

import pytest

from cdh.composer.cri.h2 import NOT_FOUND, GrpcError
from tests.runtime.images import CRASHERS
from tests.support.agentproc import run_sweep
from tests.support.cli import run_cdh
from tests.support.zips import next_zip

ELF_MAGIC, ET_CORE = b"\x7fELF", 4
LOG_LINES = 5  # CDH_LOG_LINES in the `installed` fixture


class Dump:
    """One finished zip."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.name = path.name[:-len(".zip")]
        with zipfile.ZipFile(path) as zf:
            assert zf.testzip() is None
            self.entries = {n[len(self.name):]: zf.read(n) for n in zf.namelist()}
        self.info = json.loads(self.entries["-dump-info.json"])

    def json(self, suffix: str):
        return json.loads(self.entries[suffix])


def wait_for_zip(settings, seen: set[str], timeout: float = 60) -> Dump:
    """The next zip in CORE_DIR (none seen before), once no .part file is left."""
    return Dump(next_zip(settings, seen, timeout))


def crash(crasher, settings, seen: set[str]) -> Dump:
    crasher.wait_logged()  # the runtime has written every line before the crash
    crasher.trigger_crash()
    dump = wait_for_zip(settings, seen)
    crasher.wait_exited()
    return dump


def assert_core(dump: Dump) -> None:
    core = dump.entries[".core"]
    assert core[:4] == ELF_MAGIC and int.from_bytes(core[16:18], "little") == ET_CORE
    assert dump.info["core_size"] == len(core) and not dump.info["truncated"]
    assert dump.info["signal"] == "11" and dump.info["signal_number"] == 11 and dump.info["exe"] == "sh"


def file_log_lines(path: str) -> list[str]:
    """The container's log as the runtime wrote it (CRI format, F records only here)."""
    with open(path) as f:
        return [line.rstrip("\n").split(" ", 3)[3] for line in f if line.strip()]


def assert_container_dump(dump: Dump, crasher, image) -> None:
    """Everything in the zip names this container, its pod and its image."""
    pod, info = crasher.pod, dump.info
    assert_core(dump)
    assert info["metadata_errors"] == []
    assert (info["namespace"], info["podname"], info["pod_uid"]) == (pod.namespace, pod.name, pod.uid)
    assert (info["container"], info["container_id"], info["pod_id"]) == (crasher.name, crasher.id, pod.id)
    assert info["restart_count"] == crasher.attempt
    assert info["image"] == image.name and info["image_digest"] == image.manifest_digest
    assert info["pod_found_by"] == "cgroup"
    assert info["metadata_source"].startswith(f"cri unix://{crasher.kubelet.client.path} (containerd ")
    # IBM's entries, shaped like crictl's JSON
    pod_item = dump.json("-pod-info.json")
    assert pod_item["id"] == pod.id and pod_item["metadata"]["uid"] == pod.uid
    assert pod_item["labels"]["io.kubernetes.pod.namespace"] == pod.namespace
    runtime = dump.json("-runtime-info.json")
    assert runtime["status"]["id"] == pod.id and runtime["status"]["state"] == "SANDBOX_READY"
    assert runtime["info"]["config"]["metadata"]["namespace"] == pod.namespace  # containerd's verbose info
    containers = dump.json("-ps-info.json")["containers"]
    mine = [i for i, c in enumerate(containers) if c["id"] == crasher.id]
    assert len(mine) == 1, containers
    i = mine[0]
    assert containers[i]["metadata"] == {"name": crasher.name, "attempt": crasher.attempt}
    image_info = dump.json(f"-{i}-image-info.json")
    assert image_info["id"] == image.config_digest and image.repo_digest in image_info["repoDigests"]
    # the last lines of this very container, as the runtime logged them (stdout and stderr in file
    # order: which of the two the runtime wrote first is its choice)
    log = dump.entries[f"-{i}.log"].decode().splitlines()
    assert log == file_log_lines(crasher.log_path)[-LOG_LINES:]
    assert f"{crasher.prefix} line {crasher.lines}" in log
    assert set(log) <= set(crasher.expected_log_tail(LOG_LINES + 1))


def test_same_pod_name_in_two_namespaces(installed, node):
    shop = node.kubelet.run_pod("web-0", "shop", labels={"app": "web"})
    blog = node.kubelet.run_pod("web-0", "blog", labels={"app": "web"})
    image_shop, image_blog = (node.images[n] for n in CRASHERS)
    in_shop = node.kubelet.crasher(shop, "app", image_shop.name)
    in_blog = node.kubelet.crasher(blog, "app", image_blog.name)
    seen: set[str] = set()

    dump = crash(in_blog, installed, seen)
    assert_container_dump(dump, in_blog, image_blog)

    dump = crash(in_shop, installed, seen)
    assert_container_dump(dump, in_shop, image_shop)


def test_one_cause_in_two_pods_is_one_signature_in_the_bucket_and_one_group(installed, node, s3_server):
    """The same fault (busybox sh killing itself) in two namespaces' containers: one signature, in
    dump-info, in the uploaded objects' metadata, and as one line of ``cdh ls --group``."""
    images = [node.images[n] for n in CRASHERS]
    pods = [node.kubelet.run_pod("cause-0", ns) for ns in ("storm-a", "storm-b")]
    crashers = [node.kubelet.crasher(pod, "app", image.name) for pod, image in zip(pods, images, strict=True)]
    seen: set[str] = set()
    dumps = [crash(c, installed, seen) for c in crashers]
    for dump, crasher, image in zip(dumps, crashers, images, strict=True):
        assert_container_dump(dump, crasher, image)
    signature = dumps[0].info["signature"]
    assert signature and signature.startswith("1-") and dumps[1].info["signature"] == signature
    assert dumps[0].info["stack"]["threads"][0]["crashed"] and not dumps[0].info["stack"]["errors"]

    bucket = s3_server.create_bucket()
    env = s3_server.cdh_env(bucket, CDH_HOST_DIR=installed.host_dir, CDH_NODE_NAME="node-r")
    done = run_sweep(env)
    assert done.returncode == 0, done.stderr
    client = s3_server.client()
    for dump in dumps:
        meta = client.head_object(Bucket=bucket, Key=dump.path.name)["Metadata"]
        assert (meta["signature"], meta["top-frame"]) == (signature, dump.info["top_frame"])
        assert meta["image"] == dump.info["image"]
    listed = run_cdh("ls", "--group", "--json", env=s3_server.cdh_env(bucket))
    assert listed.returncode == 0, listed.stderr
    [group] = json.loads(listed.stdout)
    top = dumps[0].info["top_frame"]
    assert (group["signature"], group["count"], group["top_frame"]) == (signature, 2, top)
    assert group["namespaces"] == ["storm-a", "storm-b"] and group["images"] == sorted(i.name for i in images)


def test_host_network_pod(installed, node):
    """hostNetwork: the crasher has the node's hostname (what a lookup by hostname would miss)."""
    pod = node.kubelet.run_pod("agent-x7", "monitoring")
    image = node.images[CRASHERS[0]]
    crasher = node.kubelet.crasher(pod, "collector", image.name)
    dump = crash(crasher, installed, set())
    assert_container_dump(dump, crasher, image)
    assert dump.info["hostname"] == os.uname().nodename != pod.name
    options = dump.json("-runtime-info.json")["status"]["linux"]["namespaces"]["options"]
    assert options["network"] == "NODE"


def test_restarted_container_is_attempt_1(installed, node):
    pod = node.kubelet.run_pod("worker", "jobs")
    image = node.images[CRASHERS[1]]
    seen: set[str] = set()
    first = node.kubelet.crasher(pod, "app", image.name, attempt=0)
    dump = crash(first, installed, seen)
    assert_container_dump(dump, first, image)

    again = node.kubelet.crasher(pod, "app", image.name, attempt=1)  # kubelet's restart: attempt 1
    dump = crash(again, installed, seen)
    assert_container_dump(dump, again, image)
    assert again.log_path.endswith("/app/1.log")
    ps = dump.json("-ps-info.json")["containers"]
    assert sorted(c["metadata"]["attempt"] for c in ps) == [0, 1]  # both, newest first
    assert ps[0]["id"] == again.id


def test_runtime_stopped_before_the_crash_keeps_the_core(installed, node):
    pod = node.kubelet.run_pod("lonely", "default")
    crasher = node.kubelet.crasher(pod, "app", node.images[CRASHERS[0]].name)
    crasher.wait_logged()
    node.containerd.stop()  # the shim and the container live on, as on a real node
    try:
        crasher.trigger_crash()
        dump = wait_for_zip(installed, set())
    finally:
        node.containerd.start()
    assert_core(dump)
    info = dump.info
    assert info["container_id"] == crasher.id  # the cgroup still tells which container crashed
    assert all(info[k] is None for k in ("namespace", "podname", "pod_uid", "container", "image",
                                         "image_digest", "restart_count", "metadata_source"))
    assert info["pod_found_by"] == "none"
    [error] = info["metadata_errors"]
    assert "code = Unavailable" in error and node.containerd.sock in error
    assert error.endswith("crictl was not found (CDH_CRICTL_PATH)")
    assert set(dump.entries) == {".core", "-dump-info.json"} | {e for e in dump.entries if "-proc/" in e}
    crasher.wait_exited()


def test_pods_are_looked_up_by_name_on_the_runtime(node):
    """The hostname fallback asks the runtime for the pods of one name (kubelet's label), not all."""
    name = f"lookup-{uuid.uuid4().hex[:8]}"  # the runtime is shared by this module's tests
    web = [node.kubelet.run_pod(name, ns) for ns in ("shop", "blog")]
    node.kubelet.run_pod(f"{name}-db", "shop")
    client = node.containerd.client(timeout=10)
    try:
        every = client.list_pod_sandboxes()["items"]
        named = client.list_pod_sandboxes({"io.kubernetes.pod.name": name})["items"]
    finally:
        client.close()
    assert {p["metadata"]["name"] for p in every} >= {name, f"{name}-db"}
    assert sorted(p["id"] for p in named) == sorted(p.id for p in web)


def test_cri_client_against_containerd(node):
    """The client's own answers (no kernel needed): shapes and errors as crictl shows them."""
    client = node.containerd.client(timeout=10)
    try:
        version = client.version()
        assert version["runtimeName"] == "containerd" and version["runtimeApiVersion"] == "v1"
        with pytest.raises(GrpcError) as err:
            client.container_status("0" * 64)
        assert err.value.code == NOT_FOUND and "not found" in str(err.value)
        with pytest.raises(GrpcError, match="NotFound"):
            client.image_status("cdh.test/none:0")
        pause = client.image_status(node.containerd.pause_image)
        assert pause["status"]["repoTags"] == [node.containerd.pause_image]
        assert pause["status"]["size"].isdigit()  # uint64 as a string, as crictl prints it
    finally:
        client.close()
