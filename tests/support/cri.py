"""Build a fake node for the crictl stub (tests/support/crictl_stub.py) and install it.

    node = FakeNode()
    pod = node.add_pod("web-0", namespace="shop", labels={"app": "web"})
    app = node.add_container(pod, "app", image="docker.io/library/nginx:1.27", logs=["hello"])
    stub = node.install(tmp_path / "bin")     # writes bin/crictl and bin/scenario.json
    node.fault("inspect", mode="hang")         # then node.save() to apply
    stub.calls()                               # every argv the composer used

Items are shaped like real ``crictl ... -o json`` output (crictl >= 1.31): ids are
64-hex, int64s are strings, enums are names.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import uuid as uuidlib
from pathlib import Path

STUB_SOURCE = Path(__file__).with_name("crictl_stub.py")


def hex64(seed: str) -> str:
    return hashlib.sha256(seed.encode()).hexdigest()


def cgroup_v2_systemd(pod: dict, cid: str, qos: str = "burstable") -> str:
    """/proc/<pid>/cgroup text of a containerd container under the systemd driver, cgroup v2."""
    uid = pod["metadata"]["uid"].replace("-", "_")
    return (f"0::/kubepods.slice/kubepods-{qos}.slice/kubepods-{qos}-pod{uid}.slice/"
            f"cri-containerd-{cid}.scope\n")


class FakeNode:
    def __init__(self) -> None:
        self.scenario: dict = {"pods": [], "containers": [], "images": [], "logs": {}, "faults": {},
                               "warn": False}
        self._clock = 1718000000_000000000
        self.dir: Path | None = None

    def _created(self) -> str:
        self._clock += 1_000_000_000
        return str(self._clock)

    def add_pod(self, name: str, namespace: str = "default", labels: dict | None = None,
                state: str = "SANDBOX_READY") -> dict:
        uid = str(uuidlib.uuid5(uuidlib.NAMESPACE_DNS, f"{namespace}/{name}"))
        pod = {
            "id": hex64(f"pod/{namespace}/{name}"),
            "metadata": {"name": name, "uid": uid, "namespace": namespace, "attempt": 0},
            "state": state,
            "createdAt": self._created(),
            "labels": {**(labels or {}), "io.kubernetes.pod.name": name,
                       "io.kubernetes.pod.namespace": namespace, "io.kubernetes.pod.uid": uid},
            "annotations": {"kubernetes.io/config.source": "api"},
            "runtimeHandler": "",
        }
        self.scenario["pods"].append(pod)
        return pod

    def add_image(self, tag: str) -> dict:
        for image in self.scenario["images"]:
            if tag in image["repoTags"]:
                return image
        repo = tag.rsplit(":", 1)[0]
        image = {"id": "sha256:" + hex64(f"config/{tag}"), "repoTags": [tag],
                 "repoDigests": [f"{repo}@sha256:{hex64(f'manifest/{tag}')}"], "size": "72195292",
                 "uid": {"value": "0"}, "username": "", "pinned": False}
        self.scenario["images"].append(image)
        return image

    def add_container(self, pod: dict, name: str, image: str = "docker.io/library/nginx:1.27",
                      logs: list | None = None, state: str = "CONTAINER_RUNNING") -> dict:
        img = self.add_image(image)
        ns, pname = pod["metadata"]["namespace"], pod["metadata"]["name"]
        container = {
            "id": hex64(f"ctr/{ns}/{pname}/{name}"),
            "podSandboxId": pod["id"],
            "metadata": {"name": name, "attempt": 0},
            "image": {"image": img["id"], "annotations": {}},
            "imageRef": img["id"],
            "state": state,
            "createdAt": self._created(),
            "labels": {"io.kubernetes.container.name": name, "io.kubernetes.pod.name": pname,
                       "io.kubernetes.pod.namespace": ns,
                       "io.kubernetes.pod.uid": pod["metadata"]["uid"]},
            "annotations": {"io.kubernetes.container.restartCount": "0"},
        }
        self.scenario["containers"].append(container)
        # [stream, text]: plain strings are stdout lines
        self.scenario["logs"][container["id"]] = [
            line if isinstance(line, list) else ["stdout", line] for line in (logs or [])]
        return container

    def fault(self, command: str, **fault) -> None:
        """Make ``command`` (or "*" for every command) misbehave; see the stub's docstring."""
        self.scenario["faults"][command] = fault

    def install(self, directory: Path) -> Stub:
        """Write ``directory/crictl`` (the stub, run by this interpreter) and the scenario."""
        directory.mkdir(parents=True, exist_ok=True)
        exe = directory / "crictl"
        exe.write_text(f"#!{sys.executable} -IS\n" + STUB_SOURCE.read_text())
        exe.chmod(0o755)
        self.dir = directory
        self.save()
        return Stub(directory)

    def save(self) -> None:
        assert self.dir is not None, "install() first"
        tmp = self.dir / "scenario.json.tmp"
        tmp.write_text(json.dumps(self.scenario))
        os.replace(tmp, self.dir / "scenario.json")


class Stub:
    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.exe = directory / "crictl"

    def calls(self) -> list[dict]:
        path = self.dir / "calls.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines()]

    def commands(self) -> list[str]:
        return [c["cmd"] for c in self.calls()]

    def remove(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)
