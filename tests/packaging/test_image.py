"""The agent image built with no registry and no engine (`nox -s image`, packaging/build_image.py).

One tar that is both an OCI layout and a docker-archive, reproducible, three layers (runtime, wheels,
cdh), labelled; read by skopeo and podman (and by containerd's `ctr images import` in the node test); its
files are root's and not writable; the Containerfile's `--rootfs` trees are the same members.
"""

from __future__ import annotations

import filecmp
import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
import tomllib
from pathlib import Path

import pytest

from tests.support.agentproc import wait_until
from tests.support.packaging import REPO, build_image, constant, image_digest, script
from tests.support.require import require

ENTRY = "opt/cdh/cdh.pyz"
RUNTIME = "opt/cdh/runtime"


def _project() -> dict:
    with open(os.path.join(REPO, "pyproject.toml"), "rb") as f:
        return tomllib.load(f)["project"]


def _budget_mib() -> int:
    return constant("build_image.py", "SIZE_BUDGET_MIB")


class Archive:
    """The image archive, read the way an engine reads it."""

    def __init__(self, path: str) -> None:
        self.path = path
        with tarfile.open(path) as tar:
            self.entries = tar.getmembers()
            self.files = {m.name: tar.extractfile(m).read() for m in self.entries if m.isfile()}
        self.index = json.loads(self.files["index.json"])
        self.manifest_digest = self.index["manifests"][0]["digest"]
        self.manifest = json.loads(self.blob(self.manifest_digest))
        self.config = json.loads(self.blob(self.manifest["config"]["digest"]))
        self.docker = json.loads(self.files["manifest.json"])

    def blob(self, digest: str) -> bytes:
        return self.files[f"blobs/sha256/{digest.split(':', 1)[1]}"]

    def layers(self) -> list[list[tarfile.TarInfo]]:
        return [self.layer_members(d["digest"]) for d in self.manifest["layers"]]

    def layer_members(self, digest: str) -> list[tarfile.TarInfo]:
        with tarfile.open(fileobj=io.BytesIO(self.blob(digest))) as tar:
            return tar.getmembers()

    def layer_files(self, digest: str) -> dict[str, tuple]:
        """name → (kind, mode, size, sha256 or link target): what a filesystem would show."""
        out = {}
        with tarfile.open(fileobj=io.BytesIO(self.blob(digest))) as tar:
            for m in tar.getmembers():
                if m.isfile():
                    what = hashlib.sha256(tar.extractfile(m).read()).hexdigest()
                    out[m.name] = ("file", m.mode, m.size, what)
                elif m.issym():
                    out[m.name] = ("symlink", 0o777, 0, m.linkname)
                else:
                    out[m.name] = ("dir", m.mode, 0, None)
        return out


@pytest.fixture(scope="module")
def image(agent_image) -> Archive:
    return Archive(agent_image)


def test_the_same_runtime_gives_the_same_digest_and_bytes(image_runtime, agent_image, image, tmp_path):
    again = str(tmp_path / "again.tar")
    printed = build_image(str(image_runtime), again)
    assert printed["digest"] == image.manifest_digest == image_digest(again)
    assert printed["image"] == f"localhost/cdh:{_project()['version']}"
    assert filecmp.cmp(agent_image, again, shallow=False)


def test_it_is_an_oci_layout_and_a_docker_archive_naming_the_same_blobs(image):
    names = [m.name for m in image.entries]
    assert {"oci-layout", "index.json", "manifest.json"} <= set(names)
    for name, data in image.files.items():  # every blob is what its name says
        if name.startswith("blobs/sha256/"):
            assert hashlib.sha256(data).hexdigest() == name.rsplit("/", 1)[1], name
    version = _project()["version"]
    assert image.index["manifests"][0]["annotations"] == {
        "io.containerd.image.name": f"localhost/cdh:{version}", "org.opencontainers.image.ref.name": version}
    (docker,) = image.docker
    assert docker["RepoTags"] == [f"localhost/cdh:{version}"]
    assert docker["Config"] == f"blobs/sha256/{image.manifest['config']['digest'][7:]}"
    assert docker["Layers"] == [f"blobs/sha256/{d['digest'][7:]}" for d in image.manifest["layers"]]
    # diff_ids are the uncompressed layers' digests
    for desc, diff_id in zip(image.manifest["layers"], image.config["rootfs"]["diff_ids"], strict=True):
        import gzip

        assert "sha256:" + hashlib.sha256(gzip.decompress(image.blob(desc["digest"]))).hexdigest() == diff_id


def test_the_archive_itself_is_reproducible_in_form(image):
    assert [m.name for m in image.entries][2:] == sorted(m.name for m in image.entries)[2:]
    assert all(m.mtime == 0 and m.uid == 0 and m.gid == 0 for m in image.entries)


def test_labels_say_where_it_comes_from_and_the_entrypoint_is_cdh(image):
    labels = image.config["config"]["Labels"]
    project = _project()
    assert labels["org.opencontainers.image.source"] == project["urls"]["Source"]
    assert labels["org.opencontainers.image.version"] == project["version"]
    head = subprocess.run(["git", "-C", REPO, "rev-parse", "HEAD"], capture_output=True, text=True)
    head = head.stdout.strip()
    assert labels["org.opencontainers.image.revision"].split("-dirty")[0] in (head, "unknown")
    assert image.manifest["annotations"] == labels
    cfg = image.config["config"]
    assert (cfg["Entrypoint"], cfg["Cmd"], cfg["User"]) == (["/opt/cdh/cdh.pyz"], ["agent"], "0:0")
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(os.uname().machine, os.uname().machine)
    assert image.config["architecture"] == arch


def test_three_layers_runtime_wheels_cdh_within_the_budget(image):
    runtime, wheels, cdh = (image.layer_files(d["digest"]) for d in image.manifest["layers"])
    assert {f"{RUNTIME}/bin/python3", f"{RUNTIME}/lib/ld.so", "etc/passwd"} <= set(runtime)
    assert not any("/site-packages/" in n for n in runtime)
    assert f"{RUNTIME}/site-packages/botocore/__init__.py" in wheels
    assert not any(n.startswith(f"{RUNTIME}/site-packages/cdh") for n in wheels)
    assert {ENTRY, f"{RUNTIME}/runtime.json", f"{RUNTIME}/cdh.pyz",
            f"{RUNTIME}/site-packages/cdh/cli.py", f"{RUNTIME}/site-packages/_cdh_runtime.py"} <= set(cdh)
    entry = image.blob(image.manifest["layers"][2]["digest"])
    with tarfile.open(fileobj=io.BytesIO(entry)) as tar:
        first = tar.extractfile(ENTRY).readline()
    assert first == f"#!/{RUNTIME}/lib/ld.so /{RUNTIME}/bin/python3\n".encode()
    plain = sum(sum(m.size for m in layer) for layer in image.layers())
    assert plain <= _budget_mib() * 2**20, f"{plain / 2**20:.1f} MiB, over the budget"


def test_nothing_in_it_is_writable_by_others_or_setuid(image):
    for layer in image.layers():
        for m in layer:
            assert (m.uid, m.gid, m.mtime) == (0, 0, 0), m.name
            if m.issym():
                continue
            assert not m.mode & 0o6000, f"{m.name}: setuid/setgid"
            if m.name == "tmp":
                assert m.mode == 0o1777
            else:
                assert not m.mode & 0o022, f"{m.name}: {oct(m.mode)}"
                assert m.mode in (0o755, 0o644), f"{m.name}: {oct(m.mode)}"


def test_the_containerfile_trees_are_the_same_members(image_runtime, image, tmp_path):
    """`build_image.py --rootfs` (the Containerfile's build stage) writes each layer's members as a
    tree: the same paths, kinds, modes, bytes and link targets as the archive's layers."""
    top = tmp_path / "layers"
    script("build_image.py", "--runtime", str(image_runtime), "--rootfs", str(top))
    for name, desc in zip(("runtime", "wheels", "cdh"), image.manifest["layers"], strict=True):
        tree = {}
        for root, dirs, files in os.walk(top / name):
            for entry in [*dirs, *files]:
                path = os.path.join(root, entry)
                rel = os.path.relpath(path, top / name)
                st = os.lstat(path)
                if os.path.islink(path):
                    tree[rel] = ("symlink", 0o777, 0, os.readlink(path))
                elif os.path.isdir(path):
                    tree[rel] = ("dir", st.st_mode & 0o7777, 0, None)
                else:
                    with open(path, "rb") as f:
                        digest = hashlib.sha256(f.read()).hexdigest()
                    tree[rel] = ("file", st.st_mode & 0o7777, st.st_size, digest)
                assert os.lstat(path).st_mtime == 0 or os.path.islink(path), rel
        assert tree == image.layer_files(desc["digest"]), name


def _skopeo_unavailable() -> str | None:
    return None if shutil.which("skopeo") else "no skopeo (apt-get install skopeo; .ci/run does)"


def test_skopeo_reads_both_forms_and_an_oci_copy_keeps_the_digest(agent_image, image, tmp_path):
    why = _skopeo_unavailable()
    require(why is None, why)
    for transport in ("oci-archive", "docker-archive"):
        done = subprocess.run(["skopeo", "inspect", f"{transport}:{agent_image}"], capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["Labels"] == image.config["config"]["Labels"]
    # What a push does to the manifest: `skopeo copy oci-archive:` to another transport, unchanged.
    subprocess.run(["skopeo", "copy", "--quiet", f"oci-archive:{agent_image}", f"oci:{tmp_path / 'copy'}:x"],
                   check=True, capture_output=True, timeout=300)
    with open(tmp_path / "copy" / "index.json") as f:
        assert json.load(f)["manifests"][0]["digest"] == image.manifest_digest


def test_a_push_to_a_registry_keeps_the_digest(agent_image, image, tmp_path):
    """The README's path: `skopeo copy oci-archive:dist/cdh-image.tar docker://REGISTRY/cdh:TAG`, then the
    overlay pins the digest `nox -s image` printed. The layers go as built, so the registry serves the
    manifest with that digest (a docker-archive: source would be recompressed: another digest). A
    private registry (Debian's docker-registry) on a free loopback port."""
    why = _skopeo_unavailable() or (None if shutil.which("docker-registry") else
                                     "no docker-registry (apt-get install docker-registry; .ci/run does)")
    require(why is None, why)
    from tests.support.s3server import free_port

    port = free_port()
    (tmp_path / "registry.yml").write_text(
        f"version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {tmp_path / 'data'}\n"
        f"http:\n  addr: 127.0.0.1:{port}\nlog:\n  level: error\n")
    with open(tmp_path / "registry.log", "wb") as log:
        registry = subprocess.Popen(["docker-registry", "serve", str(tmp_path / "registry.yml")], stdout=log,
                                    stderr=subprocess.STDOUT)
    ref = f"docker://127.0.0.1:{port}/platform/cdh:{_project()['version']}"
    try:
        wait_until(lambda: _listening(port), 30, "the registry listening")
        subprocess.run(["skopeo", "copy", "--quiet", "--dest-tls-verify=false", f"oci-archive:{agent_image}",
                        ref], check=True, capture_output=True, timeout=300)
        pushed = subprocess.run(["skopeo", "inspect", "--tls-verify=false", ref], capture_output=True,
                                text=True, check=True, timeout=120)
        assert json.loads(pushed.stdout)["Digest"] == image.manifest_digest
    finally:
        registry.terminate()
        registry.wait(30)


def _listening(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _podman_unavailable() -> str | None:
    if os.geteuid() != 0:
        return "not root"
    if not shutil.which("podman") or not shutil.which("runc"):
        return "no podman or runc (apt-get install podman runc; .ci/run does)"
    return None


def test_podman_loads_it_and_it_runs_read_only(agent_image):
    """`podman load -i dist/cdh-image.tar`, then the entrypoint under a read-only root filesystem:
    `cdh --version` runs, and a write into the image fails. Private storage: never the machine's."""
    why = _podman_unavailable()
    require(why is None, why)
    store = Path(tempfile.mkdtemp(prefix="cdhp-", dir="/tmp"))  # podman: a runroot under 50 characters
    base = ["podman", "--root", str(store / "root"), "--runroot", str(store / "run"), "--storage-driver",
            "vfs", "--cgroup-manager", "cgroupfs", "--events-backend", "file", "--tmpdir", str(store / "tmp")]
    # runc here refuses the host's hard nproc limit as the container's; any explicit limits do.
    run = ["run", "--rm", "--runtime", shutil.which("runc"), "--network", "none", "--read-only",
           "--ulimit", "nofile=4096:4096", "--ulimit", "nproc=512:512"]
    version = _project()["version"]
    name = f"localhost/cdh:{version}"

    def podman(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([*base, *args], capture_output=True, text=True, timeout=300)

    try:
        loaded = podman("load", "-i", agent_image)
        assert loaded.returncode == 0 and name in loaded.stdout, loaded.stderr
        shown = podman(*run, name, "--version")
        assert (shown.returncode, shown.stdout.strip()) == (0, f"cdh {version}"), shown.stderr
        write = podman(*run, "--entrypoint", f"/{RUNTIME}/lib/ld.so", name, f"/{RUNTIME}/bin/python3",
                       "-c", "open('/opt/cdh/planted', 'w')")
        assert write.returncode == 1 and "Read-only file system" in write.stderr, write.stderr
    finally:
        podman("rmi", "--all", "--force")
        subprocess.run(["umount", "-R", str(store)], capture_output=True)
        shutil.rmtree(store, ignore_errors=True)
