"""Acting as kubelet towards a CRI runtime: pod sandboxes and containers made the way kubelet makes them.

Pod UID, namespace and the ``io.kubernetes.*`` labels and annotations, a cgroup parent under
``/kubepods/besteffort/pod<uid>`` (cgroupfs driver), the pod's log directory
``<log_root>/<namespace>_<name>_<uid>/`` with ``<container>/<attempt>.log`` inside, and the restart
attempt in the container metadata. Pods share the node's network (no CNI is needed), as
hostNetwork pods do.

The crashing container (:meth:`Kubelet.crasher`) prints numbered lines to stdout and one to stderr,
then waits for a trigger file that the test creates in a host directory mounted at ``/trigger``:
``crash`` makes a child shell kill itself with SIGSEGV (the core goes to the kernel's
core_pattern), anything else (or no trigger within a bound) ends it without a crash, so a
failed test never leaves a crash to happen outside the kernel fixture.
"""

from __future__ import annotations

import os
import time
import uuid

from cdh.composer.cri.grpc import CriClient
from tests.support import kubelet_api as k

NODE_NAMESPACES = {"network": "NODE", "pid": "CONTAINER", "ipc": "POD"}
# What kubelet sends for an unprivileged container (procMount Default: its DefaultProcMount paths).
# containerd applies only the masked and read-only paths it is sent: without these, an unprivileged
# container here could write the host's /proc/sys/kernel/core_pattern.
MASKED_PATHS = ["/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware",
                "/sys/devices/virtual/powercap"]
READONLY_PATHS = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
# The child shell's SIGSEGV is the crash; the outer shell then exits with the child's status. The
# subshell's stderr is /dev/null so that its "Segmentation fault" report does not race the composer
# into the log.
CRASHER_SCRIPT = """
i=1; while [ $i -le {lines} ]; do echo "{prefix} line $i"; i=$((i+1)); done
echo "{prefix} to stderr" >&2
n=0; while [ ! -e /trigger/go ] && [ $n -lt {wait_steps} ]; do sleep 0.05; n=$((n+1)); done
if [ "$(cat /trigger/go 2>/dev/null)" != crash ]; then exit 3; fi
(sh -c 'kill -SEGV $$'; exit $?) 2>/dev/null
exit $?
"""


class Pod:
    def __init__(self, pod_id: str, config: dict, log_dir: str) -> None:
        self.id = pod_id
        self.config = config
        self.log_dir = log_dir
        md = config["metadata"]
        self.name, self.namespace, self.uid = md["name"], md["namespace"], md["uid"]


class Kubelet:
    def __init__(self, client: CriClient, log_root: str, trigger_root: str, pod_uids: set[str]) -> None:
        self.client = client
        self.log_root = log_root
        self.trigger_root = trigger_root
        self.pod_uids = pod_uids  # every pod's uid, before it exists: its cgroups are removed at teardown
        self.pods: list[Pod] = []

    def call(self, method: str, request, body: dict, response, timeout: float = 60) -> dict:
        return self.client.call(f"/runtime.v1.RuntimeService/{method}", request, body, response, timeout)

    def run_pod(self, name: str, namespace: str, labels: dict | None = None) -> Pod:
        uid = str(uuid.uuid4())
        self.pod_uids.add(uid)
        log_dir = os.path.join(self.log_root, f"{namespace}_{name}_{uid}")
        os.makedirs(log_dir, mode=0o755, exist_ok=True)
        config = {
            "metadata": {"name": name, "uid": uid, "namespace": namespace, "attempt": 0},
            "logDirectory": log_dir,
            "dnsConfig": {},
            "labels": {"io.kubernetes.pod.name": name, "io.kubernetes.pod.namespace": namespace,
                       "io.kubernetes.pod.uid": uid, **(labels or {})},
            "annotations": {"kubernetes.io/config.source": "api", "kubernetes.io/config.seen": "now"},
            "linux": {"cgroupParent": f"/kubepods/besteffort/pod{uid}",
                      "securityContext": {"namespaceOptions": NODE_NAMESPACES}},
        }
        out = self.call("RunPodSandbox", k.RunPodSandboxRequest, {"config": config}, k.RunPodSandboxResponse)
        pod = Pod(out["podSandboxId"], config, log_dir)
        self.pods.append(pod)
        return pod

    def start_container(self, pod: Pod, name: str, image: str, command: list[str], attempt: int = 0,
                        mounts: list[dict] | None = None) -> str:
        os.makedirs(os.path.join(pod.log_dir, name), mode=0o755, exist_ok=True)
        config = {
            "metadata": {"name": name, "attempt": attempt},
            "image": {"image": image},
            "command": command,
            "labels": {"io.kubernetes.container.name": name, "io.kubernetes.pod.name": pod.name,
                       "io.kubernetes.pod.namespace": pod.namespace, "io.kubernetes.pod.uid": pod.uid},
            "annotations": {"io.kubernetes.container.restartCount": str(attempt),
                            "io.kubernetes.container.terminationMessagePath": "/dev/termination-log"},
            "logPath": f"{name}/{attempt}.log",
            "mounts": mounts or [],
            "linux": {"securityContext": {"namespaceOptions": NODE_NAMESPACES, "maskedPaths": MASKED_PATHS,
                                          "readonlyPaths": READONLY_PATHS}},
        }
        out = self.call("CreateContainer", k.CreateContainerRequest,
                        {"podSandboxId": pod.id, "config": config, "sandboxConfig": pod.config},
                        k.CreateContainerResponse)
        self.call("StartContainer", k.StartContainerRequest, {"containerId": out["containerId"]},
                  k.StartContainerResponse)
        return out["containerId"]

    def crasher(self, pod: Pod, name: str, image: str, attempt: int = 0, lines: int = 20) -> Crasher:
        trigger = os.path.join(self.trigger_root, f"{pod.uid}-{name}-{attempt}")
        os.makedirs(trigger, mode=0o755)
        prefix = f"{pod.namespace}/{pod.name}/{name}#{attempt}"
        script = CRASHER_SCRIPT.format(lines=lines, prefix=prefix, wait_steps=1200)
        mount = {"containerPath": "/trigger", "hostPath": trigger, "readonly": True}
        cid = self.start_container(pod, name, image, ["/bin/sh", "-c", script], attempt=attempt,
                                   mounts=[mount])
        return Crasher(self, pod, name, cid, attempt, trigger, prefix, lines)

    def container_state(self, cid: str) -> str:
        return self.client.container_status(cid)["status"]["state"]

    def remove_all(self) -> list[str]:
        """Stop and remove every pod made here; the errors, if any (teardown goes on regardless)."""
        errors = []
        for pod in reversed(self.pods):
            for method, req, resp in (("StopPodSandbox", k.StopPodSandboxRequest, k.StopPodSandboxResponse),
                                      ("RemovePodSandbox", k.RemovePodSandboxRequest,
                                       k.RemovePodSandboxResponse)):
                try:
                    self.call(method, req, {"podSandboxId": pod.id}, resp)
                except Exception as err:
                    errors.append(f"{method} {pod.namespace}/{pod.name}: {err}")
        self.pods.clear()
        return errors


class Crasher:
    """A started crashing container, waiting for its trigger."""

    def __init__(self, kubelet: Kubelet, pod: Pod, name: str, cid: str, attempt: int, trigger: str,
                 prefix: str, lines: int) -> None:
        self.kubelet, self.pod, self.name, self.id = kubelet, pod, name, cid
        self.attempt, self.trigger, self.prefix, self.lines = attempt, trigger, prefix, lines
        self.log_path = os.path.join(pod.log_dir, name, f"{attempt}.log")

    def expected_log_tail(self, n: int) -> list[str]:
        """The last ``n`` lines crictl would print once everything is written."""
        out = [f"{self.prefix} line {i}" for i in range(1, self.lines + 1)] + [f"{self.prefix} to stderr"]
        return out[-n:]

    def wait_logged(self, timeout: float = 30) -> None:
        """Until the runtime has written the container's last line to its log file."""
        last = f"{self.prefix} to stderr".encode()
        deadline = time.monotonic() + timeout
        while True:
            try:
                with open(self.log_path, "rb") as f:
                    if last in f.read():
                        return
            except FileNotFoundError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.log_path}: the container's lines never arrived")
            time.sleep(0.02)

    def trigger_crash(self) -> None:
        self._trigger("crash")

    def release(self) -> None:
        """End without a crash."""
        self._trigger("exit")

    def _trigger(self, what: str) -> None:
        tmp = os.path.join(self.trigger, ".go")
        with open(tmp, "w") as f:
            f.write(what + "\n")
        os.rename(tmp, os.path.join(self.trigger, "go"))

    def wait_exited(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while self.kubelet.container_state(self.id) != "CONTAINER_EXITED":
            if time.monotonic() > deadline:
                raise AssertionError(f"container {self.name} ({self.id[:12]}) did not exit")
            time.sleep(0.05)
