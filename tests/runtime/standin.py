"""A kubelet stand-in that runs a DaemonSet's pod from the rendered manifests on containerd, over CRI.

What it does is what podspec.py lists (each rule names the method here that does it); anything else
in the DaemonSet fails the test before a pod starts. As kubelet does:

- the sandbox: its own network namespace (CNI, in the node's network: tests/support/netns.py), the
  hostname, labels and annotations, the QoS class's cgroup parent, privileged when a container is;
- volumes: hostPath (DirectoryOrCreate made 0755, Directory checked), configMap and secret laid out
  by the AtomicWriter (tests/support/projected.py; secrets on a tmpfs), updated by :meth:`sync`, an
  optional one that is missing left empty; the service account token volume; /etc/hosts and
  /dev/termination-log; API-data volumes always read-only;
- the environment in kubelet's order: KUBERNETES_SERVICE_*, envFrom, env (value, fieldRef), with
  $(VAR) expansion in command and args;
- the security context: privileged (sandbox too), or kubelet's masked and read-only /proc paths;
  runAsUser, readOnlyRootFilesystem, allowPrivilegeEscalation (no_new_privs), capabilities, the
  seccomp profile (container's, else the pod's); resources (shares, quota, memory limit);
- probes with kubelet's timing: startup first, then liveness and readiness, each on its period with
  its thresholds; httpGet to the pod's IP (from the node's network), exec through ExecSync;
- deletion: every container at once, its preStop hook (ExecSync, within the grace period), then
  StopContainer with what is left of it (SIGTERM, SIGKILL at the end), then the sandbox.
"""

from __future__ import annotations

import base64
import os
import random
import re
import string
import subprocess
import threading
import time
import urllib.error
import urllib.request
import uuid

from cdh.composer.cri import api as c
from tests.runtime import podspec
from tests.runtime.kubelet import MASKED_PATHS, READONLY_PATHS
from tests.support import kubelet_api as k
from tests.support import netns, projected

POD_NAMESPACES = {"network": "POD", "pid": "CONTAINER", "ipc": "POD"}
SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
SA_VOLUME = "kube-api-access-standin"
MIN_GRACE_S = 2  # kubelet's minimumGracePeriodInSeconds
UNITS = {"": 1, "m": 0.001, "k": 1e3, "M": 1e6, "G": 1e9, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30}
VAR_REF = re.compile(r"\$\$|\$\(([-._a-zA-Z][-._a-zA-Z0-9]*)\)")
ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")


def quantity(text: str) -> float:
    num, unit = re.match(r"^(\d+(?:\.\d+)?)([a-zA-Z]*)$", str(text)).groups()
    return float(num) * UNITS[unit]


def expand(text: str, env: dict[str, str]) -> str:
    """kubelet's $(VAR) expansion: defined names are replaced, $$ is $, anything else stays."""
    return VAR_REF.sub(lambda mo: "$" if mo.group(0) == "$$" else env.get(mo.group(1), mo.group(0)), text)


class Cluster:
    """What the API server would hold for the pod: ConfigMaps and Secrets, the node, the API's address."""

    def __init__(self, objects: list[dict], node_name: str, node_ip: str, api: tuple[str, int] | None,
                 sa_source: str | None) -> None:
        self.objects: dict[tuple[str, str, str], dict] = {}
        for obj in objects:
            self.put(obj)
        self.node_name, self.node_ip, self.api, self.sa_source = node_name, node_ip, api, sa_source

    def get(self, kind: str, namespace: str, name: str) -> dict | None:
        return self.objects.get((kind, namespace, name))

    def put(self, obj: dict) -> None:
        self.objects[(obj["kind"], obj["metadata"].get("namespace", ""), obj["metadata"]["name"])] = obj


class Pod:
    def __init__(self, name: str, namespace: str, uid: str, spec: dict, meta: dict, base: str) -> None:
        self.name, self.namespace, self.uid, self.spec, self.meta = name, namespace, uid, spec, meta
        self.dir = os.path.join(base, "kubelet", "pods", uid)
        self.log_dir = os.path.join(base, "log", f"{namespace}_{name}_{uid}")
        self.sandbox_id = ""
        self.sandbox_config: dict = {}
        self.ip = ""
        self.containers: dict[str, str] = {}   # name → container id
        self.volumes: dict[str, str] = {}      # volume name → directory on the node
        self.probes: list[dict] = []           # every probe result, in order
        self.started: dict[str, bool] = {}
        self.ready: dict[str, bool] = {}
        self.timeline: list[tuple[float, str]] = []
        self.stopping = threading.Event()

    def log_path(self, container: str, attempt: int = 0) -> str:
        return os.path.join(self.log_dir, container, f"{attempt}.log")

    def log(self, container: str) -> str:
        """The container's own output as the runtime logged it (CRI log lines)."""
        try:
            with open(self.log_path(container), errors="replace") as f:
                return f.read()
        except OSError:
            return "(no log)"

    @property
    def all_ready(self) -> bool:
        return all(self.ready.get(cs["name"]) for cs in self.spec["containers"])


class StandIn:
    def __init__(self, connect, base: str, cluster: Cluster, pod_uids: set[str],
                 network: netns.NodeNetwork) -> None:
        """``connect()``: a new CRI client. One per thread, as a CRI connection serves one call at a time
        (probes, hooks and stops run at once, as they do in kubelet)."""
        self.connect, self.base, self.cluster, self.pod_uids = connect, base, cluster, pod_uids
        self.network = network
        self._local = threading.local()
        self._clients: list = []

    @property
    def client(self):
        if getattr(self._local, "client", None) is None:
            self._local.client = self.connect()
            self._clients.append(self._local.client)
        return self._local.client

    def close(self) -> None:
        for client in self._clients:
            client.close()

    def call(self, method: str, req, body: dict, resp, timeout: float = 60) -> dict:
        return self.client.call(f"/runtime.v1.RuntimeService/{method}", req, body, resp, timeout)

    # ------------------------------------------------------------------ create

    def run_daemonset_pod(self, ds: dict) -> Pod:
        problems = podspec.unsupported(ds)
        assert not problems, "the stand-in cannot run this DaemonSet as rendered:\n  " + "\n  ".join(problems)
        template = ds["spec"]["template"]
        labels = template["metadata"].get("labels", {})
        assert ds["spec"]["selector"]["matchLabels"].items() <= labels.items(), "selector does not match"
        suffix = "".join(random.choices(string.ascii_lowercase + string.digits, k=5))
        pod = Pod(f"{ds['metadata']['name']}-{suffix}", ds["metadata"]["namespace"], str(uuid.uuid4()),
                  template["spec"], template["metadata"], self.base)
        self.pod_uids.add(pod.uid)
        os.makedirs(pod.dir)
        self._volumes(pod)
        self._sandbox(pod)
        for spec in pod.spec["containers"]:
            self._container(pod, spec)
        for spec in pod.spec["containers"]:
            threading.Thread(target=self._prober, args=(pod, spec), daemon=True,
                             name=f"prober-{pod.name}-{spec['name']}").start()
        return pod

    def _volumes(self, pod: Pod) -> None:
        for vol in pod.spec.get("volumes", []):
            if "hostPath" in vol:
                pod.volumes[vol["name"]] = self._host_path(vol["hostPath"])
            else:
                kind = "ConfigMap" if "configMap" in vol else "Secret"
                source = vol["configMap"] if kind == "ConfigMap" else vol["secret"]
                target = os.path.join(pod.dir, "volumes", f"kubernetes.io~{kind.lower()}", vol["name"])
                os.makedirs(target)
                if kind == "Secret":  # secrets never touch the node's disk
                    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,mode=0755", "tmpfs", target],
                                   check=True)
                self._project(pod, target, kind, source)
                pod.volumes[vol["name"]] = target
        if pod.spec.get("automountServiceAccountToken"):
            target = os.path.join(pod.dir, "volumes", "kubernetes.io~projected", SA_VOLUME)
            self._service_account(pod, target)
            pod.volumes[SA_VOLUME] = target

    @staticmethod
    def _host_path(src: dict) -> str:
        path, kind = src["path"], src.get("type", "")
        if kind == "DirectoryOrCreate" and not os.path.exists(path):
            os.makedirs(path, mode=0o755)  # kubelet: MkdirAll(path, 0755)
        if kind in ("Directory", "DirectoryOrCreate"):
            assert os.path.isdir(path), f"hostPath {path}: not a directory"
        return path

    def _project(self, pod: Pod, target: str, kind: str, source: dict) -> bool:
        name = source.get("name") or source.get("secretName")
        return projected.write(target, projected.payload_from(self.cluster.get(kind, pod.namespace, name),
                                                              source, kind))

    def _service_account(self, pod: Pod, target: str) -> None:
        payload = {"namespace": (pod.namespace.encode(), 0o644)}
        if self.cluster.sa_source:
            for name in ("token", "ca.crt"):
                with open(os.path.join(self.cluster.sa_source, name), "rb") as f:
                    payload[name] = (f.read(), 0o644)
        projected.write(target, payload)

    def sync(self, pod: Pod) -> bool:
        """kubelet's periodic volume sync after a ConfigMap or Secret changed; True when a volume changed."""
        changed = False
        for vol in pod.spec.get("volumes", []):
            for key, kind in (("configMap", "ConfigMap"), ("secret", "Secret")):
                if key in vol:
                    changed |= self._project(pod, pod.volumes[vol["name"]], kind, vol[key])
        return changed

    def _qos_parent(self, pod: Pod) -> str:
        res = [cs.get("resources", {}) for cs in pod.spec["containers"]]
        if not any(r.get("requests") or r.get("limits") for r in res):
            return f"/kubepods/besteffort/pod{pod.uid}"
        guaranteed = all(r.get("limits", {}).get(x)
                         and r.get("requests", {}).get(x, r["limits"][x]) == r["limits"][x]
                         for r in res for x in ("cpu", "memory"))
        return f"/kubepods/pod{pod.uid}" if guaranteed else f"/kubepods/burstable/pod{pod.uid}"

    def _sandbox(self, pod: Pod) -> None:
        os.makedirs(pod.log_dir, mode=0o755)
        privileged = any(cs.get("securityContext", {}).get("privileged") for cs in pod.spec["containers"])
        pod.sandbox_config = {
            "metadata": {"name": pod.name, "uid": pod.uid, "namespace": pod.namespace, "attempt": 0},
            "hostname": pod.name, "logDirectory": pod.log_dir,
            # ClusterFirst without a cluster DNS: search paths only (the test uses addresses, not names)
            "dnsConfig": {"searches": [f"{pod.namespace}.svc.cluster.local", "svc.cluster.local",
                                       "cluster.local"], "options": ["ndots:5"]},
            "labels": {**pod.meta.get("labels", {}), "io.kubernetes.pod.name": pod.name,
                       "io.kubernetes.pod.namespace": pod.namespace, "io.kubernetes.pod.uid": pod.uid},
            "annotations": {**pod.meta.get("annotations", {}), "kubernetes.io/config.source": "api"},
            "linux": {"cgroupParent": self._qos_parent(pod),
                      "securityContext": {"namespaceOptions": POD_NAMESPACES, "privileged": privileged}},
        }
        out = self.call("RunPodSandbox", k.RunPodSandboxRequest, {"config": pod.sandbox_config},
                        k.RunPodSandboxResponse)
        pod.sandbox_id = out["podSandboxId"]
        status = self.call("PodSandboxStatus", c.PodSandboxStatusRequest, {"podSandboxId": pod.sandbox_id},
                           c.PodSandboxStatusResponse)["status"]
        pod.ip = status["network"]["ip"]
        with open(os.path.join(pod.dir, "etc-hosts"), "w") as f:  # kubelet's managed /etc/hosts
            f.write("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
                    f"{pod.ip}\t{pod.name}\n")

    # ------------------------------------------------------------------ environment

    def env(self, pod: Pod, spec: dict) -> list[dict]:
        out: dict[str, str] = {}
        if self.cluster.api:  # the master service's variables, whatever enableServiceLinks says
            host, port = self.cluster.api
            out.update({"KUBERNETES_SERVICE_HOST": host, "KUBERNETES_SERVICE_PORT": str(port),
                        "KUBERNETES_SERVICE_PORT_HTTPS": str(port), "KUBERNETES_PORT": f"tcp://{host}:{port}",
                        f"KUBERNETES_PORT_{port}_TCP": f"tcp://{host}:{port}"})
        for source in spec.get("envFrom", []):
            kind, ref = ("ConfigMap", source["configMapRef"]) if "configMapRef" in source else \
                ("Secret", source["secretRef"])
            obj = self.cluster.get(kind, pod.namespace, ref["name"])
            assert obj is not None or ref.get("optional"), f"{kind} {ref['name']}: CreateContainerConfigError"
            data = projected.payload_from(obj, {"optional": True}, kind) if obj else {}
            out.update({source.get("prefix", "") + key: value.decode() for key, (value, _) in data.items()
                        if ENV_NAME.match(source.get("prefix", "") + key)})
        for var in spec.get("env", []):
            if "value" in var:
                out[var["name"]] = expand(var["value"], out)
            else:
                out[var["name"]] = self._field(pod, var["valueFrom"]["fieldRef"]["fieldPath"])
        return [{"key": key, "value": value} for key, value in out.items()]

    def _field(self, pod: Pod, path: str) -> str:
        fields = {"metadata.name": pod.name, "metadata.namespace": pod.namespace, "metadata.uid": pod.uid,
                  "spec.nodeName": self.cluster.node_name,
                  "spec.serviceAccountName": pod.spec.get("serviceAccountName", ""),
                  "status.hostIP": self.cluster.node_ip, "status.podIP": pod.ip}
        if path in fields:
            return fields[path]
        kind, key = re.match(r"^metadata\.(labels|annotations)\['([^']+)'\]$", path).groups()
        return pod.meta.get(kind, {}).get(key, "")

    # ------------------------------------------------------------------ the container

    def _mounts(self, pod: Pod, spec: dict) -> list[dict]:
        api_data = {v["name"] for v in pod.spec.get("volumes", []) if "configMap" in v or "secret" in v}
        mounts = [{"containerPath": vm["mountPath"], "hostPath": pod.volumes[vm["name"]],
                   "readonly": vm.get("readOnly", False) or vm["name"] in api_data}
                  for vm in spec.get("volumeMounts", [])]
        if SA_VOLUME in pod.volumes:
            mounts.append({"containerPath": SA_DIR, "hostPath": pod.volumes[SA_VOLUME], "readonly": True})
        term = os.path.join(pod.dir, "containers", spec["name"], uuid.uuid4().hex[:8])
        os.makedirs(os.path.dirname(term), exist_ok=True)
        open(term, "w").close()
        return [*mounts, {"containerPath": "/etc/hosts", "hostPath": os.path.join(pod.dir, "etc-hosts")},
                {"containerPath": "/dev/termination-log", "hostPath": term}]

    @staticmethod
    def _security(pod: Pod, spec: dict) -> dict:
        sc = spec.get("securityContext", {})
        seccomp = sc.get("seccompProfile") or pod.spec.get("securityContext", {}).get("seccompProfile") or {}
        out = {"privileged": bool(sc.get("privileged")), "namespaceOptions": POD_NAMESPACES,
               "readonlyRootfs": bool(sc.get("readOnlyRootFilesystem")),
               # kubelet: no_new_privs unless privileged or allowPrivilegeEscalation is left true
               "noNewPrivs": sc.get("allowPrivilegeEscalation") is False,
               "capabilities": {"dropCapabilities": sc.get("capabilities", {}).get("drop", [])}}
        if seccomp.get("type") == "RuntimeDefault":
            out["seccomp"] = {"profileType": "RuntimeDefault"}
        if "runAsUser" in sc:
            out["runAsUser"] = {"value": sc["runAsUser"]}
        if not sc.get("privileged"):
            out.update({"maskedPaths": MASKED_PATHS, "readonlyPaths": READONLY_PATHS})
        return out

    @staticmethod
    def _resources(spec: dict) -> dict:
        res = spec.get("resources", {})
        req, lim = res.get("requests", {}), res.get("limits", {})
        out = {}
        cpu_req = req.get("cpu", lim.get("cpu"))
        if cpu_req:
            out["cpuShares"] = max(2, int(quantity(cpu_req) * 1024))
        if "cpu" in lim:
            out.update({"cpuPeriod": 100000, "cpuQuota": int(quantity(lim["cpu"]) * 100000)})
        if "memory" in lim:
            out["memoryLimitInBytes"] = int(quantity(lim["memory"]))
        return out

    def _container(self, pod: Pod, spec: dict, attempt: int = 0) -> str:
        os.makedirs(os.path.join(pod.log_dir, spec["name"]), mode=0o755, exist_ok=True)
        envs = self.env(pod, spec)
        env_map = {e["key"]: e["value"] for e in envs}
        config = {
            "metadata": {"name": spec["name"], "attempt": attempt}, "image": {"image": spec["image"]},
            "command": [expand(a, env_map) for a in spec.get("command", [])],
            "args": [expand(a, env_map) for a in spec.get("args", [])],
            "envs": envs, "mounts": self._mounts(pod, spec),
            "labels": {"io.kubernetes.container.name": spec["name"], "io.kubernetes.pod.name": pod.name,
                       "io.kubernetes.pod.namespace": pod.namespace, "io.kubernetes.pod.uid": pod.uid},
            "annotations": {"io.kubernetes.container.restartCount": str(attempt),
                            "io.kubernetes.container.terminationMessagePath": "/dev/termination-log"},
            "logPath": f"{spec['name']}/{attempt}.log",
            "linux": {"resources": self._resources(spec), "securityContext": self._security(pod, spec)},
        }
        request = {"podSandboxId": pod.sandbox_id, "config": config, "sandboxConfig": pod.sandbox_config}
        out = self.call("CreateContainer", k.CreateContainerRequest, request, k.CreateContainerResponse)
        self.call("StartContainer", k.StartContainerRequest, {"containerId": out["containerId"]},
                  k.StartContainerResponse)
        pod.containers[spec["name"]] = out["containerId"]
        pod.timeline.append((time.monotonic(), f"started {spec['name']}"))
        return out["containerId"]

    def exec(self, pod: Pod, container: str, cmd: list[str], timeout: int = 30) -> tuple[int, str, str]:
        """(exit code, stdout, stderr) of ``cmd`` run in the container (kubectl exec, ExecSync)."""
        request = {"containerId": pod.containers[container], "cmd": cmd, "timeout": timeout}
        done = self.call("ExecSync", k.ExecSyncRequest, request, k.ExecSyncResponse, timeout + 10)
        decode = lambda b: base64.b64decode(b or b"").decode(errors="replace")
        return done.get("exitCode", 0), decode(done.get("stdout")), decode(done.get("stderr"))

    def state(self, pod: Pod, container: str) -> dict:
        return self.client.container_status(pod.containers[container])["status"]

    # ------------------------------------------------------------------ probes

    def _probe_once(self, pod: Pod, spec: dict, probe: dict) -> tuple[bool, str]:
        timeout = probe.get("timeoutSeconds", 1)
        if "exec" in probe:
            code, _, _ = self.exec(pod, spec["name"], probe["exec"]["command"], timeout)
            return code == 0, f"exit {code}"
        get = probe["httpGet"]
        port = get["port"]
        if isinstance(port, str):
            port = next(p["containerPort"] for p in spec.get("ports", []) if p.get("name") == port)
        req = urllib.request.Request(f"http://{pod.ip}:{port}{get.get('path', '/')}",
                                     headers={"User-Agent": "kube-probe/1.32", "Accept": "*/*"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return 200 <= r.status < 400, f"{r.status}"
        except urllib.error.HTTPError as err:
            return 200 <= err.code < 400, f"{err.code}"
        except OSError as err:
            return False, repr(err)

    def _prober(self, pod: Pod, spec: dict) -> None:
        """Startup first (liveness and readiness wait for it), each probe on its own period, with its
        thresholds. Runs in the node's network, where the pod's IP is."""
        netns.enter(self.network.path)
        name = spec["name"]
        kinds = [p for p in podspec.PROBES if p in spec]
        state = {p: {"next": time.monotonic() + spec[p].get("initialDelaySeconds", 0), "ok": 0, "fail": 0}
                 for p in kinds}
        pod.started[name] = "startupProbe" not in spec
        pod.ready[name] = "readinessProbe" not in spec
        while not pod.stopping.is_set():
            now = time.monotonic()
            for kind in kinds:
                probe, st = spec[kind], state[kind]
                if now < st["next"] or (kind == "startupProbe") == pod.started[name]:
                    continue
                st["next"] = now + probe.get("periodSeconds", 10)
                ok, detail = self._probe_once(pod, spec, probe)
                pod.probes.append({"t": now, "container": name, "probe": kind, "ok": ok, "detail": detail})
                st["ok"], st["fail"] = (st["ok"] + 1, 0) if ok else (0, st["fail"] + 1)
                if ok and st["ok"] >= probe.get("successThreshold", 1):
                    if kind == "startupProbe":
                        pod.started[name] = True
                        for other in kinds:  # the others start their periods now
                            state[other]["next"] = time.monotonic()
                    elif kind == "readinessProbe":
                        pod.ready[name] = True
                elif not ok and st["fail"] >= probe.get("failureThreshold", 3):
                    if kind == "readinessProbe":
                        pod.ready[name] = False
                    else:
                        pod.timeline.append((time.monotonic(), f"{kind} failed: kubelet restarts {name}"))
            pod.stopping.wait(0.1)

    # ------------------------------------------------------------------ delete

    def delete(self, pod: Pod, grace_s: int | None = None) -> None:
        """As kubelet kills a pod: every container at once, each its preStop hook (within the grace
        period) then StopContainer with what is left of it (SIGTERM, SIGKILL at the end); then the sandbox."""
        pod.stopping.set()
        grace = pod.spec.get("terminationGracePeriodSeconds", 30) if grace_s is None else grace_s
        threads = [threading.Thread(target=self._kill, args=(pod, spec, grace))
                   for spec in pod.spec["containers"]]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.call("StopPodSandbox", k.StopPodSandboxRequest, {"podSandboxId": pod.sandbox_id},
                  k.StopPodSandboxResponse)
        self.call("RemovePodSandbox", k.RemovePodSandboxRequest, {"podSandboxId": pod.sandbox_id},
                  k.RemovePodSandboxResponse)

    def _kill(self, pod: Pod, spec: dict, grace: int) -> None:
        name, start = spec["name"], time.monotonic()
        hook = spec.get("lifecycle", {}).get("preStop", {}).get("exec")
        if hook:
            pod.timeline.append((start, f"preStop {name}"))
            code, out, err = self.exec(pod, name, hook["command"], grace)
            pod.timeline.append((time.monotonic(), f"preStop {name} exit {code}: {(out + err)[-500:]}"))
        remaining = max(MIN_GRACE_S, int(grace - (time.monotonic() - start)))
        pod.timeline.append((time.monotonic(), f"StopContainer {name} timeout={remaining}"))
        self.call("StopContainer", k.StopContainerRequest, {"containerId": pod.containers[name],
                                                            "timeout": remaining},
                  k.StopContainerResponse, remaining + 30)
        st = self.state(pod, name)
        pod.timeline.append((time.monotonic(), f"stopped {name}: {st['state']} exit {st.get('exitCode', 0)}"))
