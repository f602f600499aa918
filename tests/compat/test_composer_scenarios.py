"""IBM's composer test scenarios, rewritten for cdh against the crictl stub, each asserting what IBM's
asserts.

IBM's harness: the composer run with its space-separated arguments and no ``-P`` (so no /proc of the
crasher: the pod is found by the crasher's host name), a mock crictl, the core on stdin; then the zip
is unpacked next to itself and the directory's entries counted (the zip included). The pod, image and
log data here are this suite's own. IBM's composer read its settings from the agent's environment
names without ``COMP_`` (its ``.env``); cdh's composer reads them from composer.env, written by the
agent from the chart's ``COMP_*`` names: the scenarios set those.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import pytest

from tests.support.composer import run_composer, unzip_test
from tests.support.cri import FakeNode, hex64

POD = "crashing-app-5c9d7f6b8-q2w4e"
IMAGE = "registry.example.com/demo/crashing-app:latest"
CORE = b"\x7fELF\x02\x01\x01" + os.urandom(50_000) + b"the end of the core"


def ibm_args(out: Path) -> list[str]:
    return ["-c", "1000000000", "-e", "node", "-p", "4", "-s", "10", "-E", "!target!debug!crasher",
            "-d", str(out), "-t", "1588462466", "-h", POD]


@pytest.fixture
def node(tmp_path):
    n = FakeNode()
    n.pod = n.add_pod(POD, labels={"app": "crashing-app", "pod-template-hash": "5c9d7f6b8"})
    n.app = n.add_container(n.pod, "crashing-app", image=IMAGE, logs=["A LOG"])
    n.image = n.scenario["images"][0]
    n.stub = n.install(tmp_path / "bin")
    return n


def compose(tmp_path, node, env: dict | None = None, proc_root: Path | None = None):
    host = tmp_path / "host"
    host.mkdir(exist_ok=True)
    out = tmp_path / "output"
    r = run_composer(host, core=CORE, args=ibm_args(out), proc_root=proc_root,
                     env={"CDH_CRICTL_PATH": str(node.stub.dir), **(env or {})})
    return r


def unpacked(zip_path: Path) -> list[str]:
    """IBM's count: unzip beside the zip, then every entry of the directory (the zip included)."""
    with zipfile.ZipFile(zip_path) as zf:
        zf.extractall(zip_path.parent)
    return sorted(os.listdir(zip_path.parent))


def assert_dump_info_as_ibm(r, dump_file: str = "4-10.core"):
    info = r.dump_info
    assert info["hostname"] == POD and info["exe"] == "node"
    assert info["real_pid"] == "4" and info["signal"] == "10"  # JSON strings, as IBM's
    assert info["dump_file"].endswith(dump_file)
    assert r.read(".core") == CORE


def test_default(tmp_path, node):
    r = compose(tmp_path, node)
    assert r.rc == 0, r.stderr
    assert len(unpacked(r.zip_path)) == 8, unpacked(r.zip_path)
    assert_dump_info_as_ibm(r)
    assert "!target!debug!crasher" in r.dump_info["path"]
    image = r.json("-0-image-info.json")
    assert image["repoDigests"][0] == node.image["repoDigests"][0]
    assert image["size"] == "72195292" and image["repoTags"][0] == IMAGE
    assert r.read("-0.log") == b"A LOG\n"
    unzip_test(r.zip_path)


def test_without_cri(tmp_path, node):
    """IBM's IGNORE_CRIO: the zip is dump-info and the core; IBM still looked the pod up."""
    r = compose(tmp_path, node, env={"COMP_IGNORE_CRIO": "true"})
    assert r.rc == 0, r.stderr
    assert len(unpacked(r.zip_path)) == 3, unpacked(r.zip_path)
    assert_dump_info_as_ibm(r)
    assert "pods" in node.stub.commands()  # the pod lookup still runs: the selector and the name need it
    assert r.dump_info["namespace"] == "default" and r.dump_info["podname"] == POD


def test_namespaced_file_names(tmp_path, node):
    r = compose(tmp_path, node, env={"COMP_FILENAME_TEMPLATE": "{namespace}"})
    assert r.rc == 0, r.stderr
    names = unpacked(r.zip_path)
    assert len(names) == 8
    stems = sorted(Path(n).stem for n in names)
    assert stems == ["default", "default", "default-0", "default-0-image-info", "default-dump-info",
                     "default-pod-info", "default-ps-info", "default-runtime-info"]
    assert_dump_info_as_ibm(r, dump_file="default.core")
    assert r.json("-0-image-info.json")["repoTags"][0] == IMAGE


def test_image_command(tmp_path, node):
    """DigitalOcean and newer RHCOS list images with `crictl images`; `img` prints no JSON there."""
    old = node.add_pod(POD, labels={"app": "crashing-app"}, state="SANDBOX_NOTREADY")
    old["id"] = hex64("an earlier sandbox of the same pod")  # listed too, but not the one that runs
    node.app["imageRef"] = node.image["repoDigests"][0]        # a digest: found by repoDigests, not id
    node.fault("inspecti", mode="exit")                         # so the image listing is what answers
    node.fault("img", mode="garbage")
    node.save()
    r = compose(tmp_path, node, env={"COMP_CRIO_IMAGE_CMD": "images"})
    assert r.rc == 0, r.stderr
    assert len(unpacked(r.zip_path)) == 8
    assert_dump_info_as_ibm(r)
    image = r.json("-0-image-info.json")
    assert image["repoDigests"][0] == node.image["repoDigests"][0]
    assert image["size"] == "72195292" and image["repoTags"][0] == IMAGE
    assert r.read("-0.log") == b"A LOG\n"
    assert "images" in node.stub.commands() and "img" not in node.stub.commands()


def test_gather_proc_files(tmp_path, node):
    """IBM's INCLUDE_PROC_INFO: per container, its main process's five /proc files."""
    node.app["pid"] = 117
    node.save()
    files = {"auxv": b"auxv of 117\n", "cmdline": b"node\0server.js\0", "environ": b"HOME=/root\0",
             "maps": b"00400000-00452000 r-xp 00000000 08:02 1 /usr/bin/node\n", "status": b"Name:\tnode\n"}
    proc = tmp_path / "proc"
    (proc / "117").mkdir(parents=True)
    for name, data in files.items():
        (proc / "117" / name).write_bytes(data)
    r = compose(tmp_path, node, env={"COMP_INCLUDE_PROC_INFO": "true"}, proc_root=proc)
    assert r.rc == 0, r.stderr
    names = unpacked(r.zip_path)
    assert len(names) == 9, names
    (proc_dir,) = [n for n in names if "proc" in n]
    assert proc_dir == f"{r.name}-0-proc"
    got = r.zip_path.parent / proc_dir
    assert sorted(os.listdir(got)) == sorted(files)
    assert {n: (got / n).read_bytes() for n in files} == files
    assert_dump_info_as_ibm(r)


def test_timeout(tmp_path, node):
    """IBM asserts the exit code only; cdh's zip is also whole, with the core, and says why it ends."""
    node.fault("*", mode="slow", seconds=10)
    node.save()
    r = compose(tmp_path, node, env={"COMP_TIMEOUT": "1"})
    assert r.rc == 32
    assert r.read(".core") == CORE and r.dump_info["real_pid"] == "4"
    unzip_test(r.zip_path)
