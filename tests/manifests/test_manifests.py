"""What matters in every overlay a user applies, read from `kubectl kustomize` output.

Schema validity is `nox -s manifests`; these tests check meaning: the agent can do its job on the
node, every variable it gets is one cdh knows, the parts that must agree do, and uninstall and
upgrade work with plain `kubectl delete -k` / `kubectl apply -k`.
"""

from __future__ import annotations

import os

import pytest

import cdh
from cdh import config
from cdh.config import BY_NAME
from cdh.store.body import memory_bound_bytes
from tests.manifests import agentspec as spec
from tests.manifests.kustomize import PROVIDERS, ROOT, find, load_file

IMAGE = "ghcr.io/cdh-project/cdh"
SELECTOR = {"app.kubernetes.io/name": "cdh", "app.kubernetes.io/component": "agent"}
OPENSHIFT = ("aro", "openshift", "roks", "rosa")
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "SecurityContextConstraints"}
# Resident memory of the agent's Python stack with its S3 client (measured: ~62 MiB; re-measure with
# `nox -s bench`). Bodies stream from disk: on top, at most cdh.store.body.memory_bound_bytes().
AGENT_BASELINE = 64 << 20
# Between SIGTERM's upload deadline and the kubelet's SIGKILL: the preStop hook and the final uninstall.
STOP_MARGIN_S = 10


def test_every_provider_in_the_matrix_has_an_overlay():
    present = {p.name for p in (ROOT / "overlays").iterdir() if (p / "kustomization.yaml").is_file()}
    assert present == set(PROVIDERS)


def test_the_agent_is_privileged_and_runs_on_every_linux_node(objs):
    pod = spec.pod_spec(objs)
    assert spec.container(objs)["securityContext"]["privileged"] is True
    assert pod["tolerations"] == [{"operator": "Exists"}]
    assert pod["nodeSelector"] == {"kubernetes.io/os": "linux"}
    assert not any(pod.get(k) for k in ("hostPID", "hostNetwork", "hostIPC")), "the agent needs none of these"


def test_host_directories_are_mounted_at_their_host_paths(objs):
    mounts = spec.host_mounts(objs)
    assert all(inside == host for inside, host in mounts.items()), f"mounted elsewhere: {mounts}"
    s = spec.settings(objs)
    for attr in ("host_dir", "core_dir", "event_dir"):
        path = getattr(s, attr)
        assert any(path == m or path.startswith(m.rstrip("/") + "/") for m in mounts), (
            f"{s.env_name(attr)}={path} is not on a hostPath mount: {sorted(mounts)}")
    assert s.host_dir in mounts, "HOST_DIR is its own mount, so the kernel and the agent see the same files"


def test_every_variable_is_a_cdh_setting(objs):
    agent = spec.container(objs)
    assert "envFrom" not in agent, "envFrom would pass unchecked names; list variables in env"
    names = [v["name"] for v in agent["env"]] + list(spec.file_layer(objs))
    names += list(spec.example_layer(spec.env_text(objs)))
    problems = [p for p in map(spec.unknown_name, names) if p]
    assert not problems


def test_the_settings_load_as_the_agent_loads_them(objs):
    s = spec.settings(objs)  # raises ConfigError, naming the variable, on a bad value
    assert s.node_name == spec.FIELD_VALUES["spec.nodeName"]
    assert s.config_file == spec.env_layer(objs)["CDH_CONFIG_FILE"]
    # Commented examples in the env-file must be valid when a user uncomments them.
    examples = spec.example_layer(spec.env_text(objs))
    config.load([spec.env_layer(objs), spec.file_layer(objs), examples])


def test_the_env_file_does_not_override_the_providers_environment(objs):
    # The mounted file wins over the environment: a key in both would silently undo the overlay.
    env = {spec.attr_of(n) for n in spec.env_layer(objs)}
    clash = [n for n in spec.file_layer(objs) if spec.attr_of(n) in env]
    assert not clash, f"set both in the DaemonSet and in cdh.env: {clash}"


def test_the_env_file_is_a_directory_mount_so_edits_reach_the_agent(objs):
    agent, pod = spec.container(objs), spec.pod_spec(objs)
    (volume,) = [v for v in pod["volumes"] if v.get("configMap", {}).get("name") == spec.CONFIG_MAP]
    (mount,) = [m for m in agent["volumeMounts"] if m["name"] == volume["name"]]
    assert "subPath" not in mount, "the kubelet never updates subPath mounts"
    cfg = spec.settings(objs).config_file
    assert os.path.dirname(cfg) == mount["mountPath"]
    assert os.path.basename(cfg) in find(objs, "ConfigMap", spec.CONFIG_MAP)["data"]


def test_probes_point_at_the_agents_endpoints(objs):
    agent = spec.container(objs)
    port = spec.settings(objs).metrics_port
    ports = {p["name"]: p["containerPort"] for p in agent["ports"]}
    expected = {"startupProbe": "/healthz", "livenessProbe": "/healthz", "readinessProbe": "/readyz"}
    for probe, path in expected.items():
        get = agent[probe]["httpGet"]
        assert get["path"] == path, probe
        assert ports.get(get["port"], get["port"]) == port, f"{probe} is not on CDH_METRICS_PORT={port}"
    annotations = spec.daemonset(objs)["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(port)


def test_stopping_restores_the_node_within_the_grace_period(objs):
    agent, pod = spec.container(objs), spec.pod_spec(objs)
    s = spec.settings(objs)
    assert agent["lifecycle"]["preStop"]["exec"]["command"] == [agent["command"][0], "uninstall"]
    assert s.uninstall_on_stop, "the agent restores the node itself if the preStop hook fails"
    assert pod["terminationGracePeriodSeconds"] >= s.grace_period_s + STOP_MARGIN_S


def test_memory_covers_the_part_buffers(objs):
    s = spec.settings(objs)
    uploading = AGENT_BASELINE + memory_bound_bytes(s.part_concurrency)
    res = spec.container(objs)["resources"]
    assert spec.parse_quantity(res["requests"]["memory"]) >= uploading
    # Room for the agent and one `kubectl exec ... cdh sweep`, each with its own part buffers.
    assert spec.parse_quantity(res["limits"]["memory"]) >= 2 * uploading


def test_upgrades_are_a_plain_apply(objs):
    ds = spec.daemonset(objs)
    assert ds["spec"]["selector"]["matchLabels"] == SELECTOR, "the selector is immutable"
    assert SELECTOR.items() <= ds["spec"]["template"]["metadata"]["labels"].items()
    rolling = ds["spec"]["updateStrategy"]
    assert rolling["type"] == "RollingUpdate"
    # A surge pod's fresh install would be undone by the old pod's preStop uninstall.
    assert rolling["rollingUpdate"]["maxSurge"] == 0
    assert not [o for o in objs if o["kind"] in ("PersistentVolume", "PersistentVolumeClaim")]
    assert not [v for v in spec.pod_spec(objs)["volumes"] if "persistentVolumeClaim" in v]
    # A fixed ConfigMap name (no hash suffix): an edit reloads the agents instead of restarting them.
    assert find(objs, "ConfigMap", spec.CONFIG_MAP)


def test_the_image_is_this_release(objs):
    assert spec.container(objs)["image"] == f"{IMAGE}:{cdh.__version__}"


def test_only_openshift_overlays_carry_openshift_objects(objs, target):
    sccs = [o for o in objs if o["kind"] == "SecurityContextConstraints"]
    assert bool(sccs) == (target.removeprefix("overlays/") in OPENSHIFT)


def test_objects_live_in_the_namespace_and_carry_the_label(objs):
    (ns,) = [o["metadata"]["name"] for o in objs if o["kind"] == "Namespace"]
    for o in objs:
        meta = o["metadata"]
        where = meta.get("namespace")
        assert where == (None if o["kind"] in CLUSTER_SCOPED else ns), f"{o['kind']}/{meta['name']}: {where}"
        assert meta["labels"]["app.kubernetes.io/part-of"] == "cdh", f"{o['kind']}/{meta['name']}"
    assert find(objs, "Namespace")["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "privileged"


def test_the_agent_may_create_events_and_nothing_else(objs):
    pod = spec.pod_spec(objs)
    sa = find(objs, "ServiceAccount", pod["serviceAccountName"])
    namespace = spec.daemonset(objs)["metadata"]["namespace"]
    # The token is the agent pod's own ask: another pod using the account gets none unasked.
    assert sa["automountServiceAccountToken"] is False and pod["automountServiceAccountToken"] is True
    assert spec.settings(objs).k8s_events, "Events are on in the manifests (off by default in code)"
    role = find(objs, "ClusterRole", "cdh-agent-events")
    assert role["rules"] == [{"apiGroups": ["events.k8s.io"], "resources": ["events"], "verbs": ["create"]}]
    binding = find(objs, "ClusterRoleBinding", "cdh-agent-events")
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                                  "name": "cdh-agent-events"}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": sa["metadata"]["name"],
                                    "namespace": namespace}]
    bindings = [o for o in objs if o["kind"] in ("RoleBinding", "ClusterRoleBinding")]
    granted = {o["roleRef"]["name"] for o in bindings}
    assert granted <= {"cdh-agent-events", "cdh-agent-scc"}, f"unexpected grants: {granted}"
    assert not [o for o in objs if o["kind"] == "Role"]
    # A Service named cdh-... would otherwise inject CDH_..._SERVICE_HOST, which cdh rejects as unknown.
    assert pod["enableServiceLinks"] is False


def test_the_s3_secret_template_matches_what_the_agent_reads(objs):
    (secret,) = load_file("base/s3-secret.template.yaml")
    refs = {v["name"]: v["valueFrom"]["secretKeyRef"] for v in spec.container(objs)["env"]
            if "secretKeyRef" in v.get("valueFrom", {})}
    assert {r["name"] for r in refs.values()} == {secret["metadata"]["name"]}
    assert {r["key"] for r in refs.values()} == set(secret["stringData"])
    assert all(r["optional"] for r in refs.values()), "without the Secret, the credential chain is used"
    assert all(BY_NAME[n].secret for n in refs)


@pytest.mark.parametrize("target", [f"overlays/{p}" for p in OPENSHIFT])
def test_openshift_grants_exactly_what_the_pod_uses(objs):
    scc = find(objs, "SecurityContextConstraints")
    annotations = spec.daemonset(objs)["spec"]["template"]["metadata"]["annotations"]
    assert annotations["openshift.io/required-scc"] == scc["metadata"]["name"]
    pod = spec.pod_spec(objs)
    used = {next(k for k in v if k != "name") for v in pod["volumes"]}
    assert used <= set(scc["volumes"]), f"volume types the SCC does not allow: {used - set(scc['volumes'])}"
    assert scc["allowPrivilegedContainer"] and scc["allowHostDirVolumePlugin"]
    assert not (scc["allowHostNetwork"] or scc["allowHostPID"] or scc["allowHostIPC"])
    assert not scc["users"] and not scc["groups"], "granted by RBAC `use`, not by name lists"
    role = find(objs, "ClusterRole", "cdh-agent-scc")
    assert role["rules"] == [{"apiGroups": ["security.openshift.io"],
                              "resources": ["securitycontextconstraints"],
                              "resourceNames": [scc["metadata"]["name"]], "verbs": ["use"]}]
    binding = find(objs, "RoleBinding", "cdh-agent-scc")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": pod["serviceAccountName"],
                                    "namespace": spec.daemonset(objs)["metadata"]["namespace"]}]
