"""What matters in every overlay a user applies, read from `kubectl kustomize` output.

Schema validity is `nox -s manifests`; these tests check meaning: each container (`host`, `agent`) can
do its job on the node, every variable it gets is one cdh knows, the parts that must agree do, and
uninstall and upgrade work with plain `kubectl delete -k` / `kubectl apply -k`. What the uploader may
not do (privilege, writes, keys as environment) is test_hardening.py.
"""

from __future__ import annotations

import os

import pytest

import cdh
from cdh import config
from cdh.config import BY_NAME, SPECS
from cdh.store.body import memory_bound_bytes
from tests.manifests import agentspec as spec
from tests.manifests.kustomize import PLACEHOLDER_IMAGE, PROVIDERS, ROOT, find, load_file

SELECTOR = {"app.kubernetes.io/name": "cdh", "app.kubernetes.io/component": "agent"}
OPENSHIFT = ("aro", "openshift", "roks", "rosa")
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "SecurityContextConstraints"}
# Resident memory of the agent's Python stack with its S3 client (measured: ~62 MiB; re-measure with
# `nox -s bench`). Bodies stream from disk: on top, at most cdh.store.body.memory_bound_bytes().
AGENT_BASELINE = 64 << 20
# `cdh host` on the image's runtime (measured): 33 MiB at its peak (copying the runtime into HOST_DIR),
# plus the preStop `cdh uninstall` in the same container (~12 MiB).
HOST_PEAK, UNINSTALL = 34 << 20, 12 << 20
# Between SIGTERM's upload deadline and the kubelet's SIGKILL: the preStop hook and the final uninstall.
STOP_MARGIN_S = 10


def test_every_provider_in_the_matrix_has_an_overlay():
    present = {p.name for p in (ROOT / "overlays").iterdir() if (p / "kustomization.yaml").is_file()}
    assert present == set(PROVIDERS)


def test_two_containers_one_privileged_and_the_pod_runs_on_every_linux_node(objs):
    pod = spec.pod_spec(objs)
    assert sorted(c["name"] for c in pod["containers"]) == sorted(spec.CONTAINERS)
    assert "initContainers" not in pod
    for name in spec.CONTAINERS:
        c = spec.container(objs, name)
        assert c["command"] == ["/opt/cdh/cdh.pyz"] and c["args"] == [name]
    assert spec.container(objs, "host")["securityContext"]["privileged"] is True
    assert spec.container(objs, "agent")["securityContext"]["privileged"] is False
    assert pod["tolerations"] == [{"operator": "Exists"}]
    assert pod["nodeSelector"] == {"kubernetes.io/os": "linux"}
    assert not any(pod.get(k) for k in ("hostPID", "hostNetwork", "hostIPC")), "the agent needs none of these"


@pytest.mark.parametrize("name", spec.CONTAINERS)
def test_host_directories_are_mounted_at_their_host_paths(objs, name):
    mounts = spec.host_mounts(objs, name)
    assert all(inside == host for inside, host in mounts.items()), f"mounted elsewhere: {mounts}"
    s = spec.settings(objs, name)
    writable = spec.writable(spec.container(objs, name))
    for attr in ("host_dir", "core_dir", "event_dir"):
        path = getattr(s, attr)
        assert any(spec.under(path, m) for m in mounts), (
            f"{name}: {s.env_name(attr)}={path} is not on a hostPath mount: {sorted(mounts)}")
        if attr != "host_dir" or name == "host":
            assert any(spec.under(path, m) for m in writable), f"{name} cannot write {path}"
    assert s.host_dir in mounts, "HOST_DIR is its own mount, so the kernel and the agent see the same files"
    assert f"{s.host_dir}/state" in writable, f"{name}: HOST_DIR/state (the agent's state) is not writable"


def test_both_containers_see_the_same_host_directories(objs):
    host, agent = spec.settings(objs, "host"), spec.settings(objs, "agent")
    for attr in ("host_dir", "core_dir", "event_dir"):
        assert getattr(host, attr) == getattr(agent, attr), attr
    assert spec.host_mounts(objs, "host") == spec.host_mounts(objs, "agent")


def test_composer_settings_go_to_the_container_that_writes_composer_env(objs):
    """`cdh host` writes composer.env from its own settings: a composer setting on the uploader alone
    would never reach the composer."""
    composer = {s.name for s in SPECS if s.scope == "composer"}
    misplaced = [v["name"] for v in spec.container(objs, "agent").get("env", []) if v["name"] in composer]
    assert not misplaced, f"composer settings on the uploader: {misplaced}"
    assert not spec.settings(objs, "agent").manage_host and spec.settings(objs, "host").uninstall_on_stop


@pytest.mark.parametrize("name", spec.CONTAINERS)
def test_every_variable_is_a_cdh_setting(objs, name):
    c = spec.container(objs, name)
    assert "envFrom" not in c, "envFrom would pass unchecked names; list variables in env"
    names = [v["name"] for v in c["env"]] + list(spec.file_layer(objs, name))
    names += list(spec.example_layer(spec.env_text(objs, name)))
    problems = [p for p in map(spec.unknown_name, names) if p]
    assert not problems


@pytest.mark.parametrize("name", spec.CONTAINERS)
def test_the_settings_load_as_the_container_loads_them(objs, name):
    s = spec.settings(objs, name)  # raises ConfigError, naming the variable, on a bad value
    if name == "agent":
        assert s.node_name == spec.FIELD_VALUES["spec.nodeName"]
    assert s.config_file == spec.env_layer(objs, name)["CDH_CONFIG_FILE"]
    # Commented examples in the env-file must be valid when a user uncomments them.
    examples = spec.example_layer(spec.env_text(objs, name))
    config.load([spec.env_layer(objs, name), spec.file_layer(objs, name), examples])


@pytest.mark.parametrize("name", spec.CONTAINERS)
def test_the_env_file_does_not_override_the_providers_environment(objs, name):
    # The mounted file wins over the environment: a key in both would silently undo the overlay.
    env = {spec.attr_of(n) for n in spec.env_layer(objs, name)}
    clash = [n for n in spec.file_layer(objs, name) if spec.attr_of(n) in env]
    assert not clash, f"set both in the DaemonSet and in cdh.env: {clash}"


@pytest.mark.parametrize("name", spec.CONTAINERS)
def test_the_env_file_is_a_directory_mount_so_edits_reach_the_agent(objs, name):
    c, pod = spec.container(objs, name), spec.pod_spec(objs)
    (volume,) = [v for v in pod["volumes"] if v.get("configMap", {}).get("name") == spec.CONFIG_MAP]
    (mount,) = [m for m in c["volumeMounts"] if m["name"] == volume["name"]]
    assert "subPath" not in mount, "the kubelet never updates subPath mounts"
    cfg = spec.settings(objs, name).config_file
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
    assert annotations["kubectl.kubernetes.io/default-container"] == "agent"  # logs, exec, doctor
    host = spec.container(objs, "host")
    assert not any(k in host for k in ("ports", "startupProbe", "livenessProbe", "readinessProbe"))


def test_stopping_restores_the_node_within_the_grace_period(objs):
    host, agent, pod = spec.container(objs, "host"), spec.container(objs, "agent"), spec.pod_spec(objs)
    assert host["lifecycle"]["preStop"]["exec"]["command"] == [host["command"][0], "uninstall"]
    assert spec.settings(objs, "host").uninstall_on_stop, "cdh host restores the node if the hook fails"
    assert "lifecycle" not in agent, "the uploader cannot restore the node: nothing to hook"
    s = spec.settings(objs)
    assert pod["terminationGracePeriodSeconds"] >= s.grace_period_s + STOP_MARGIN_S


def test_memory_covers_the_part_buffers(objs):
    s = spec.settings(objs)
    uploading = AGENT_BASELINE + memory_bound_bytes(s.part_concurrency)
    res = spec.container(objs)["resources"]
    assert spec.parse_quantity(res["requests"]["memory"]) >= uploading
    # Room for the agent and one `kubectl exec ... cdh sweep`, each with its own part buffers.
    assert spec.parse_quantity(res["limits"]["memory"]) >= 2 * uploading


def test_memory_covers_the_host_container(objs):
    res = spec.container(objs, "host")["resources"]
    assert spec.parse_quantity(res["requests"]["memory"]) >= HOST_PEAK
    assert spec.parse_quantity(res["limits"]["memory"]) >= HOST_PEAK + UNINSTALL


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


def test_the_image_is_this_release_or_pinned_by_digest(objs, target):
    """The provider overlays name the placeholder at this release's tag (no image is published to pull:
    the user builds and pins their own); a user's overlay (the examples) pins it by digest."""
    images = {spec.container(objs, name)["image"] for name in spec.CONTAINERS}
    assert len(images) == 1, f"the two containers run different images: {images}"
    (image,) = images
    if target.startswith("examples/"):
        assert "@sha256:" in image and not image.startswith(PLACEHOLDER_IMAGE)
    else:
        assert image == f"{PLACEHOLDER_IMAGE}:{cdh.__version__}"


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
    """The keys are files of the Secret's volume: each *_FILE names a key of the template's Secret."""
    (secret,) = load_file("base/s3-secret.template.yaml")
    agent, pod = spec.container(objs), spec.pod_spec(objs)
    volumes = {v["name"]: v["secret"] for v in pod["volumes"] if "secret" in v}
    mounts = {m["mountPath"]: m["name"] for m in agent["volumeMounts"] if m["name"] in volumes}
    files = {v["name"]: v["value"] for v in agent["env"]
             if v["name"].endswith("_FILE") and v["name"] not in BY_NAME}
    assert files, "no key files"
    for name, path in files.items():
        assert BY_NAME[name.removesuffix("_FILE")].secret
        directory, key = os.path.split(path)
        assert directory in mounts, f"{name}={path}: not in a Secret volume"
        source = volumes[mounts[directory]]
        assert source["secretName"] == secret["metadata"]["name"] and key in secret["stringData"]
        assert source["optional"] is True, "without the Secret, the credential chain is used"
    assert {os.path.basename(p) for p in files.values()} == set(secret["stringData"])


@pytest.mark.parametrize("target", [f"overlays/{p}" for p in OPENSHIFT])
def test_openshift_grants_exactly_what_the_pod_uses(objs):
    scc = find(objs, "SecurityContextConstraints")
    annotations = spec.daemonset(objs)["spec"]["template"]["metadata"]["annotations"]
    assert annotations["openshift.io/required-scc"] == scc["metadata"]["name"]
    pod = spec.pod_spec(objs)
    used = {next(k for k in v if k != "name") for v in pod["volumes"]}
    assert used <= set(scc["volumes"]), f"volume types the SCC does not allow: {used - set(scc['volumes'])}"
    assert scc["allowPrivilegedContainer"] and scc["allowHostDirVolumePlugin"]
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    assert scc["seccompProfiles"] == ["runtime/default"], "the SCC must admit the pod's seccomp profile"
    assert not (scc["allowHostNetwork"] or scc["allowHostPID"] or scc["allowHostIPC"])
    assert not scc["users"] and not scc["groups"], "granted by RBAC `use`, not by name lists"
    role = find(objs, "ClusterRole", "cdh-agent-scc")
    assert role["rules"] == [{"apiGroups": ["security.openshift.io"],
                              "resources": ["securitycontextconstraints"],
                              "resourceNames": [scc["metadata"]["name"]], "verbs": ["use"]}]
    binding = find(objs, "RoleBinding", "cdh-agent-scc")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": pod["serviceAccountName"],
                                    "namespace": spec.daemonset(objs)["metadata"]["namespace"]}]
