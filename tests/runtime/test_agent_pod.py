"""The agent's DaemonSet pod, run from the rendered manifests on a real containerd, as a kubelet runs it.

A test overlay on a shipped overlay changes only what a user's does: the image (the archive `nox -s
image` builds, imported into containerd, pinned by digest), the ConfigMap (the test's S3 server) and the
cluster state (the Secret with the keys). `kubectl kustomize` renders it; the kubelet stand-in
(standin.py) runs the DaemonSet's pod exactly as rendered, refusing any field it does not implement
(podspec.py). The node's network is a namespace of its own (tests/support/netns.py): the pod gets an
address there, the S3 server and the API server listen on its gateway. HOST_DIR is the overlay's own
(/var/mnt/core-dump-handler, /mnt/core-dump-handler for OpenShift): the test runs only where nobody
else uses it, and removes what it made. Under the kernel lock throughout (core_pattern is the machine's).

One run: the probes turn ready; the uploader cannot write what the kernel executes; a crash in another
pod reaches the bucket with that pod's namespace, name, container and image; the ConfigMap changed the
kubelet's way is reloaded (the next object's key prefix); the pod deleted as kubelet deletes it restores
core_pattern, core_pipe_limit and suid_dumpable; a zip left on the node is uploaded by the next pod.
On failure the containers' own log lines are in the message.
"""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import tarfile
import tempfile
import zipfile
from pathlib import Path

import pytest
import yaml

from tests.runtime import podspec
from tests.runtime.containerd import Containerd
from tests.runtime.images import CRASHERS, PAUSE
from tests.runtime.kubelet import Kubelet
from tests.runtime.standin import Cluster, StandIn
from tests.support import kernel as kernel_support
from tests.support import netns
from tests.support.agentproc import wait_until
from tests.support.apiserver import FakeApiServer
from tests.support.require import require
from tests.support.s3server import ACCESS_KEY, REGION, SECRET_KEY, S3Server, list_keys

REPO = Path(__file__).resolve().parents[2]
IMAGE_REPO = "localhost/cdh"
PLACEHOLDER = "your-registry.invalid/cdh"
MARKER = ".cdh-node-test"  # in a HOST_DIR this test made: a leftover of a killed run may be removed
BUCKET = "node-test"
CDH_ENV = """CDH_S3_BUCKET={bucket}
CDH_S3_REGION={region}
CDH_S3_ENDPOINT={endpoint}
CDH_S3_ADDRESSING=path
CDH_S3_KEY_PREFIX={prefix}
CDH_LOG_LINES=5
CDH_CRI_TIMEOUT=10s
{extra}"""
UPLOADER_VIEW = """
import json, os
out = {}
for name, path in (("core_pattern", "/proc/sys/kernel/core_pattern"), ("cdc", "HOST/cdc"),
                   ("composer_env", "HOST/composer.env"), ("state", "HOST/state/probe")):
    try:
        with open(path, "a"):
            out[name] = "written"
        if name == "state":
            os.unlink(path)
    except OSError as err:
        out[name] = err.strerror
status = dict(line.split(":", 1) for line in open("/proc/self/status") if ":" in line)
out.update(cap_eff=status["CapEff"].strip(), no_new_privs=status["NoNewPrivs"].strip(),
           seccomp=status["Seccomp"].strip())
print(json.dumps(out))
"""


def test_the_stand_in_refuses_what_it_does_not_implement(kubectl_rendered):
    ds = kubectl_rendered("overlays/custom")
    assert podspec.unsupported(ds) == []
    pod = ds["spec"]["template"]["spec"]
    pod["hostPID"] = True
    pod["containers"][0].setdefault("securityContext", {})["capabilities"] = {"add": ["SYS_ADMIN"]}
    pod["volumes"].append({"name": "dev", "hostPath": {"path": "/dev/kmsg", "type": "CharDevice"}})
    assert sorted(p.split(":")[0] for p in podspec.unsupported(ds)) == sorted([
        "spec.template.spec.hostPID", "spec.template.spec.containers[].securityContext.capabilities.add[]",
        "spec.template.spec.volumes[].hostPath.type='CharDevice'"])


def test_every_rule_names_what_honours_it():
    methods = {name for name in dir(StandIn) if not name.startswith("__")}
    for pattern, _accept, handler in podspec.RULES:
        assert handler in methods | {podspec.CONTROLLER, podspec.SCHEDULER}, f"{pattern}: {handler}"


@pytest.fixture
def kubectl_rendered():
    require(shutil.which("kubectl"), "kubectl renders the manifests")

    def render(target: str, root: Path = REPO / "k8s-manifests") -> dict:
        return next(o for o in _render(root / target) if o["kind"] == "DaemonSet")
    return render


def _render(directory: Path) -> list[dict]:
    import subprocess

    out = subprocess.run(["kubectl", "kustomize", str(directory)], check=True, capture_output=True, text=True)
    return [o for o in yaml.safe_load_all(out.stdout) if o]


# ---------------------------------------------------------------- the node


class Node:
    """containerd in the node's network, the S3 and API servers on its gateway, the images imported."""

    def __init__(self, base: str, network: netns.NodeNetwork, containerd: Containerd, s3: S3Server,
                 api: FakeApiServer, digest: str) -> None:
        self.base, self.network, self.containerd, self.s3, self.api = base, network, containerd, s3, api
        self.digest = digest
        self.client = containerd.client()
        self.kubelet = Kubelet(self.client, os.path.join(base, "log"), os.path.join(base, "triggers"),
                               containerd.pod_uids)

    def object_keys(self) -> list[str]:
        return self.network.call(lambda: list_keys(self.s3.client(), BUCKET))

    def object(self, key: str) -> bytes:
        return self.network.call(lambda: self.s3.client().get_object(Bucket=BUCKET, Key=key)["Body"].read())


@pytest.fixture(scope="module")
def node(images, agent_image):
    why = netns.missing()
    require(not why, f"the node's network needs {', '.join(why)} "
                     "(apt-get install containernetworking-plugins; .ci/run does)")
    require(shutil.which("kubectl"), "kubectl renders the manifests")
    base = tempfile.mkdtemp(prefix="cdh-node-", dir="/tmp")
    network = netns.NodeNetwork().create()
    containerd = Containerd(base, PAUSE, network)
    s3 = S3Server(os.path.join(base, "s3.log"), host=network.gateway, netns=network)
    api = FakeApiServer(Path(base) / "api", host=network.gateway, netns=network)
    node = None
    try:
        containerd.start()
        for image in images.values():
            containerd.import_image(image.archive, image.name.rsplit(":", 1)[0])
        containerd.import_image(agent_image, IMAGE_REPO)
        with tarfile.open(agent_image) as t:
            digest = json.loads(t.extractfile("index.json").read())["manifests"][0]["digest"]
        os.makedirs(os.path.join(base, "triggers"))
        s3.start()
        network.call(lambda: s3.client().create_bucket(Bucket=BUCKET))
        with api:
            node = Node(base, network, containerd, s3, api, digest)
            yield node
    finally:
        problems = []
        if node is not None:
            problems += node.kubelet.remove_all()
            node.client.close()
        s3.stop()
        problems += containerd.cleanup()
        network.remove()
        assert not problems, "node teardown: " + "; ".join(problems)


def write_overlay(directory: str, target: str, endpoint: str, digest: str, prefix: str,
                  extra: str = "") -> None:
    """A user's overlay over ``target``: their cdh.env and image, nothing else."""
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, "cdh.env"), "w") as f:
        f.write(CDH_ENV.format(bucket=BUCKET, region=REGION, endpoint=endpoint, prefix=prefix, extra=extra))
    kust = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
        # kustomize takes local resources by relative path only
        "resources": [os.path.relpath(REPO / "k8s-manifests" / target, directory)],
        "configMapGenerator": [{"name": "cdh-config", "behavior": "replace", "files": ["cdh.env"],
                                "options": {"disableNameSuffixHash": True}}],
        "images": [{"name": PLACEHOLDER, "newName": IMAGE_REPO, "digest": digest}],
    }
    with open(os.path.join(directory, "kustomization.yaml"), "w") as f:
        yaml.safe_dump(kust, f)


class Claimed:
    """Paths on this machine the test needs at a fixed place (HOST_DIR, a CRI socket): taken only when
    nobody has them (or a killed run of this test left them), removed at the end."""

    def __init__(self) -> None:
        self.made: list[str] = []

    def directory(self, path: str) -> None:
        if os.path.isdir(path) and os.path.exists(os.path.join(path, MARKER)):
            shutil.rmtree(path)  # our own leftover
        require(not os.path.lexists(path), f"{path} exists here: the node test needs it for itself")
        top = path
        while not os.path.exists(os.path.dirname(top)):
            top = os.path.dirname(top)
        os.makedirs(path, mode=0o755)
        open(os.path.join(path, MARKER), "w").close()
        self.made.append(top)

    def link(self, path: str, target: str) -> None:
        require(not os.path.lexists(os.path.dirname(path)), f"{os.path.dirname(path)} exists here")
        os.makedirs(os.path.dirname(path))
        os.symlink(target, path)
        self.made.append(os.path.dirname(path))

    def release(self) -> None:
        for path in reversed(self.made):
            shutil.rmtree(path, ignore_errors=True)


def logs_of(pods) -> str:
    out = []
    for pod in pods:
        for cs in pod.spec["containers"]:
            out.append(f"--- {pod.name} container {cs['name']} ---\n{pod.log(cs['name'])[-8000:]}")
        timeline = "\n".join(f"{t:.1f} {what}" for t, what in pod.timeline)
        out.append(f"--- {pod.name} timeline ---\n{timeline}")
    return "\n".join(out)


def wait(what: str, cond, timeout: float = 180):
    return wait_until(cond, timeout, what, interval=0.2)


def dump_info(node: Node, key: str) -> dict:
    with zipfile.ZipFile(io.BytesIO(node.object(key))) as z:
        return json.loads(z.read(next(n for n in z.namelist() if n.endswith("-dump-info.json"))))


# ---------------------------------------------------------------- the pod's life


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize("target", ["overlays/custom", "overlays/openshift"])
def test_the_daemonset_pod_on_containerd(kernel, node, target, tmp_path):
    """`custom` runs the whole life; `openshift` what a runtime can see of its differences: HOST_DIR
    /mnt/core-dump-handler and the CRI-O socket path (here a link to containerd's socket: CRI-O itself
    is not packaged for Debian), the SCC annotation reaching the sandbox. SCC admission, SELinux and
    RHCOS's read-only /usr cannot run here."""
    claimed = Claimed()
    pods, standin = [], None
    try:
        ds = next(o for o in _render(REPO / "k8s-manifests" / target) if o["kind"] == "DaemonSet")
        (host_dir,) = [v["hostPath"]["path"] for v in ds["spec"]["template"]["spec"]["volumes"]
                       if v["name"] == "host-dir"]
        claimed.directory(host_dir)
        extra = f"CDH_CRI_ENDPOINT={node.containerd.endpoint}\n"
        if target == "overlays/openshift":
            claimed.link("/run/crio/crio.sock", node.containerd.sock)
            extra = ""
        overlay = str(tmp_path / "overlay")
        write_overlay(overlay, target, node.s3.url, node.digest, "first/", extra)
        objs = _render(Path(overlay))
        ds = next(o for o in objs if o["kind"] == "DaemonSet")
        secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "cdh-s3", "namespace": "cdh"},
                  "data": {"access-key": base64.b64encode(ACCESS_KEY.encode()).decode(),
                           "secret-key": base64.b64encode(SECRET_KEY.encode()).decode()}}
        cluster = Cluster([*objs, secret], node_name="node-1", node_ip=node.network.gateway,
                          api=(node.network.gateway, node.api.port), sa_source=str(node.api.sa_dir))
        standin = StandIn(node.containerd.client, node.base, cluster, node.containerd.pod_uids, node.network)
        life(node, standin, cluster, objs, ds, pods, host_dir, full=target == "overlays/custom")
    except BaseException as err:
        raise AssertionError(f"{err}\n{logs_of(pods)}") from err
    finally:
        for pod in pods:
            if not pod.stopping.is_set():
                try:
                    standin.delete(pod, 2)
                except Exception:
                    pass
        if standin is not None:
            standin.close()
        claimed.release()


def life(node: Node, standin: StandIn, cluster: Cluster, objs, ds, pods, host_dir: str, full: bool) -> None:
    saved = {n: kernel_support.read(n) for n in kernel_support.SYSCTLS}
    pod = standin.run_daemonset_pod(ds)
    pods.append(pod)
    assert pod.sandbox_config["annotations"].get("openshift.io/required-scc") in (None, "cdh-agent")
    wait("every container ready", lambda: pod.all_ready)
    agent_probes = [(p["probe"], p["ok"]) for p in pod.probes if p["container"] == "agent"]
    first_ok = agent_probes.index(("startupProbe", True))
    assert all(p == "startupProbe" for p, _ in agent_probes[:first_ok + 1]), agent_probes
    assert kernel_support.read("kernel/core_pattern").startswith(f"|{host_dir}/cdc ")

    # The uploader's view: nothing the kernel executes or reads is writable, no capability at all.
    python = ["/opt/cdh/runtime/lib/ld.so", "/opt/cdh/runtime/bin/python3"]
    code, out, err = standin.exec(pod, "agent", [*python, "-c", UPLOADER_VIEW.replace("HOST", host_dir)])
    view = json.loads(out) if code == 0 else err
    assert view == {"core_pattern": "Read-only file system", "cdc": "Read-only file system",
                    "composer_env": "Read-only file system", "state": "written", "cap_eff": "0" * 16,
                    "no_new_privs": "1", "seccomp": "2"}, view

    # A crash in another pod on this node.
    crashy = node.kubelet.run_pod("crashy", "shop")
    crasher = node.kubelet.crasher(crashy, "app", CRASHERS[0])
    crasher.wait_logged()
    crasher.trigger_crash()
    key = wait("the first object", lambda: [k for k in node.object_keys() if k.startswith("first/")])[0]
    info = dump_info(node, key)
    assert (info["namespace"], info["podname"], info["container"], info["image"]) == (
        "shop", "crashy", "app", CRASHERS[0]), info
    if not full:
        delete_restores(standin, pod, saved)
        return

    # The ConfigMap changed the kubelet's way (a new ..data): both containers reload it.
    cm = next(o for o in objs if o["kind"] == "ConfigMap")
    cluster.put({**cm, "data": {"cdh.env": cm["data"]["cdh.env"].replace("first/", "second/")}})
    assert standin.sync(pod)
    wait("the uploader reloaded", lambda: '"event":"config.reloaded"' in pod.log("agent"))
    crasher = node.kubelet.crasher(crashy, "app2", CRASHERS[0])
    crasher.wait_logged()
    crasher.trigger_crash()
    wait("an object under the new prefix", lambda: [k for k in node.object_keys() if k.startswith("second/")])

    # The store goes away: the next zip stays on the node, through the pod's deletion.
    node.s3.stop()
    crasher = node.kubelet.crasher(crashy, "app3", CRASHERS[0])
    crasher.wait_logged()
    crasher.trigger_crash()
    cores = os.path.join(host_dir, "cores")
    left = wait("a zip left on the node", lambda: [n for n in os.listdir(cores) if n.endswith(".zip")], 60)
    delete_restores(standin, pod, saved)
    assert os.listdir(cores) == left

    # The next agent pod uploads it.
    node.s3.start(port=node.s3.port)  # where the ConfigMap says it is; moto keeps nothing
    node.network.call(lambda: node.s3.client().create_bucket(Bucket=BUCKET))
    pod2 = standin.run_daemonset_pod(ds)
    pods.append(pod2)
    wait("the next pod ready", lambda: pod2.all_ready)
    wait("the zip left behind uploaded", lambda: [k for k in node.object_keys() if k.endswith(left[0])], 120)
    delete_restores(standin, pod2, saved)


def delete_restores(standin: StandIn, pod, saved: dict) -> None:
    standin.delete(pod)
    stopped = [what for _, what in pod.timeline if what.startswith(("preStop host exit", "stopped"))]
    assert any(w.startswith("preStop host exit 0") for w in stopped), stopped
    assert all("exit 0" in w for w in stopped if w.startswith("stopped")), stopped  # SIGTERM, not SIGKILL
    assert {n: kernel_support.read(n) for n in kernel_support.SYSCTLS} == saved
