"""Least privilege in every overlay a user applies: what is privileged, what the network-facing
uploader may write, how keys arrive, the image reference, and who reaches the metrics.

The design (measured: README "Security"): the pod keeps one small privileged container, `host`, that
talks to no network (host setup at start, restore at stop: the preStop hook runs there), and runs the
uploader unprivileged: no privilege escalation, no capabilities, a read-only root filesystem, the
runtime's default seccomp profile, HOST_DIR read-only (it holds cdc, which the kernel runs as root)
with only CORE_DIR, EVENT_DIR and state/ writable. The node test runs exactly this pod on containerd.
"""

from __future__ import annotations

import re

import pytest

from tests.manifests import agentspec as spec
from tests.manifests.kustomize import render

DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")


def _containers(objs) -> list[dict]:
    pod = spec.pod_spec(objs)
    return [*pod.get("initContainers", []), *pod["containers"]]


def _runs(c: dict, word: str) -> bool:
    return word in [*c.get("command", []), *c.get("args", [])]


def _uploaders(objs) -> list[dict]:
    found = [c for c in _containers(objs) if _runs(c, "agent")]
    assert found, "no container runs `cdh agent`"
    return found


def _privileged(c: dict) -> bool:
    sc = c.get("securityContext") or {}
    return bool(sc.get("privileged")) or bool((sc.get("capabilities") or {}).get("add"))


def test_the_uploader_is_not_privileged(objs):
    """It parses what the network sends (S3, the API server) for the pod's whole life: a bug there
    must not be root on the node. uid 0 without capabilities in a privileged container still writes
    kernel.core_pattern, sysfs and host block devices, so the container itself must be unprivileged."""
    pod_sc = spec.pod_spec(objs).get("securityContext") or {}
    for c in _uploaders(objs):
        sc = c.get("securityContext") or {}
        assert not sc.get("privileged"), f"{c['name']}: privileged"
        assert sc.get("allowPrivilegeEscalation") is False, f"{c['name']}: no_new_privs not set"
        assert sc.get("readOnlyRootFilesystem") is True, f"{c['name']}: writable root filesystem"
        caps = sc.get("capabilities") or {}
        assert "ALL" in caps.get("drop", []) and not caps.get("add"), f"{c['name']}: capabilities {caps}"
        seccomp = (sc.get("seccompProfile") or pod_sc.get("seccompProfile") or {}).get("type")
        assert seccomp == "RuntimeDefault", f"{c['name']}: seccomp {seccomp}"


def test_no_privileged_container_listens_or_uploads(objs):
    for c in _containers(objs):
        if _privileged(c):
            assert not c.get("ports") and not _runs(c, "agent"), f"{c['name']} is privileged and networked"
            env = {v["name"] for v in c.get("env", [])}
            assert not {n for n in env if n.startswith("CDH_S3_")}, f"{c['name']} has S3 settings"
            mounts = {m["name"] for m in c.get("volumeMounts", [])}
            secrets = {v["name"] for v in spec.pod_spec(objs)["volumes"] if "secret" in v}
            assert not mounts & secrets, f"{c['name']} mounts the S3 keys"
            assert c.get("securityContext", {}).get("readOnlyRootFilesystem") is True


def test_the_uploader_cannot_write_what_the_kernel_executes(objs):
    """HOST_DIR holds cdc (the kernel runs it as root), its runtime and composer.env (which names the
    crictl the composer runs): writable by the uploader, it would be root on the node at the next
    crash. The uploader still needs CORE_DIR writable (it deletes what it uploaded)."""
    s = spec.settings(objs)
    for c in _uploaders(objs):
        writable = spec.writable(c)
        over_host = [p for p in writable if spec.under(s.host_dir, p)]
        assert not over_host, f"{c['name']} mounts {over_host} writable, which holds {s.host_dir}/cdc"
        assert any(spec.under(s.core_dir, p) for p in writable), (
            f"{c['name']} cannot delete uploaded zips: CORE_DIR {s.core_dir} is not writable")
        allowed = (s.core_dir, s.event_dir, f"{s.host_dir}/state")
        stray = [p for p in writable if spec.under(p, s.host_dir) and p not in allowed]
        assert not stray, f"{c['name']} may write {stray} in HOST_DIR"


def test_the_node_is_still_restored_at_pod_deletion(objs):
    def pre_stop(c: dict) -> list[str]:
        return (((c.get("lifecycle") or {}).get("preStop") or {}).get("exec") or {}).get("command", [])

    hooks = [c for c in _containers(objs) if _privileged(c) and "uninstall" in pre_stop(c)]
    assert hooks and all(not _runs(c, "agent") for c in hooks), "restore needs a privileged preStop hook"


def test_s3_keys_are_files_never_environment(objs):
    """Environment variables are read by anyone with exec (`env`, /proc/1/environ) and change only with
    a restart; a mounted Secret is a file, updated in place by the kubelet."""
    for c in _containers(objs):
        refs = [v["name"] for v in c.get("env", []) if "secretKeyRef" in (v.get("valueFrom") or {})]
        assert not refs, f"{c['name']}: secrets as environment variables: {refs}"
        assert "envFrom" not in c
    pod = spec.pod_spec(objs)
    secrets = {v["name"]: v["secret"] for v in pod.get("volumes", []) if "secret" in v}
    for c in _uploaders(objs):
        env = {v["name"]: v.get("value") for v in c.get("env", [])}
        mounts = {m["mountPath"].rstrip("/"): m for m in c.get("volumeMounts", [])}
        for name in ("CDH_S3_ACCESS_KEY_FILE", "CDH_S3_SECRET_KEY_FILE"):
            path = env.get(name)
            assert path, f"{c['name']}: {name} not set"
            mount = mounts.get(path.rsplit("/", 1)[0])
            assert mount and mount["name"] in secrets and mount.get("readOnly"), f"{name}={path}: no Secret"
            assert secrets[mount["name"]].get("optional") is True, "IRSA and Pod Identity need no Secret"


@pytest.mark.parametrize("example", ["examples/my-cluster", "examples/monitoring"])
def test_the_examples_pin_the_image_by_digest(kubectl_present, example):
    """A tag can be moved to other bytes; what a privileged DaemonSet runs is named by its digest."""
    for c in _containers(render(example)):
        assert DIGEST.search(c["image"]), f"{example}: {c['name']} image {c['image']} is a mutable tag"


def test_only_prometheus_reaches_the_metrics_port(kubectl_present):
    """The monitoring example ships a NetworkPolicy: the agent's pods accept connections only on the
    metrics port and only from Prometheus (the kubelet's probes are not subject to it)."""
    objs = render("examples/monitoring")
    agent_labels = spec.daemonset(objs)["spec"]["template"]["metadata"]["labels"]
    policies = [o for o in objs if o["kind"] == "NetworkPolicy"]
    assert policies, "no NetworkPolicy in the monitoring example"
    ports = {p["name"]: p["containerPort"] for c in _uploaders(objs) for p in c.get("ports", [])}
    for pol in policies:
        sel = pol["spec"].get("podSelector", {}).get("matchLabels", {})
        if not sel or any(agent_labels.get(k) != v for k, v in sel.items()):
            continue
        assert "Ingress" in pol["spec"].get("policyTypes", [])
        rules = pol["spec"].get("ingress", [])
        assert rules, "an Ingress policy with no rule denies Prometheus too"
        for rule in rules:
            assert rule.get("from"), f"{pol['metadata']['name']}: a rule open to every pod"
            for peer in rule["from"]:
                assert peer.get("podSelector", {}).get("matchLabels"), "a peer that is not Prometheus"
            allowed = {p.get("port") for p in rule.get("ports", [])}
            assert allowed and allowed <= {"metrics", *ports.values()}, f"ports {allowed}"
        return
    raise AssertionError(f"no NetworkPolicy selects the agent's pods ({agent_labels})")
