"""Each overlay differs from the base exactly where its provider needs it, and nowhere else.

The table below is the whole list of provider differences; an overlay that changes anything else,
or stops changing something listed, fails here. The reasons are in each overlay's comments.
"""

from __future__ import annotations

import pytest

from tests.manifests.kustomize import PROVIDERS, ROOT, render

DS = ("DaemonSet", "cdh-agent")
SA = ("ServiceAccount", "cdh-agent")
CM = ("ConfigMap", "cdh-config")
ADDED = "added"
T = "spec.template.spec"
V = f"{T}.volumes"
HOST_DIRS = {"host-dir": "", "core-dir": "/cores", "event-dir": "/events", "state-dir": "/state"}


def env(name: str, value: str, *containers: str) -> dict[str, str]:
    """A variable the base does not set, in these containers (the composer's go to `host`, which
    writes composer.env; the uploader's to `agent`)."""
    out = {}
    for c in containers:
        var = f"{T}.containers[{c}].env[{name}]"
        out.update({f"{var}.name": name, f"{var}.value": value})
    return out


def host_dir(path: str, cores: str | None = None) -> dict[str, str]:
    """HOST_DIR moved: CDH_HOST_DIR in both containers, and every host directory's volume and mounts."""
    out = {f"{T}.containers[{c}].env[CDH_HOST_DIR].value": path for c in ("host", "agent")}
    for volume, sub in HOST_DIRS.items():
        where = cores if volume == "core-dir" and cores else path + sub
        out[f"{V}[{volume}].hostPath.path"] = where
        for c in ("host", "agent"):
            out[f"{T}.containers[{c}].volumeMounts[{volume}].mountPath"] = where
    return out


def storage_section(provider: str) -> dict[str, str]:
    """The overlay's own cdh.env: the base's, with its storage section for the provider's own store."""
    return {"data.cdh.env": (ROOT / "overlays" / provider / "cdh.env").read_text()}


CONTAINERD = env("CDH_CRI_ENDPOINT", "unix:///run/containerd/containerd.sock", "host")
AZURE_WORKLOAD_IDENTITY = {
    DS: {"spec.template.metadata.labels.azure.workload.identity/use": "true",
         "spec.template.metadata.annotations.azure.workload.identity/skip-containers": "host"},
    SA: {"metadata.annotations.azure.workload.identity/client-id": "00000000-0000-0000-0000-000000000000"}}
GKE_WORKLOAD_IDENTITY = {
    "metadata.annotations.iam.gke.io/gcp-service-account": "cdh-agent@my-project.iam.gserviceaccount.com"}
DEBUG_LOGS = {**env("CDH_LOG_LEVEL", "debug", "host", "agent"),
              **env("CDH_COMPOSER_LOG_LEVEL", "debug", "host")}
IRSA = {"metadata.annotations.eks.amazonaws.com/role-arn": "arn:aws:iam::111122223333:role/cdh-agent"}
OPENSHIFT_AGENT = {"spec.template.metadata.annotations.openshift.io/required-scc": "cdh-agent",
                   **host_dir("/mnt/core-dump-handler"),
                   **env("CDH_CRI_ENDPOINT", "unix:///run/crio/crio.sock", "host"),
                   **env("CDH_CRI_IMAGE_CMD", "images", "host")}
OPENSHIFT_OBJECTS = {("SecurityContextConstraints", "cdh-agent"): ADDED,
                     ("ClusterRole", "cdh-agent-scc"): ADDED, ("RoleBinding", "cdh-agent-scc"): ADDED}

EXPECTED: dict[str, dict] = {
    "aks": {**AZURE_WORKLOAD_IDENTITY, CM: storage_section("aks")},
    "custom": {},
    "iks": {},
    "gke-ubuntu": {SA: GKE_WORKLOAD_IDENTITY, CM: storage_section("gke-ubuntu")},
    "gke-cos": {DS: {**host_dir("/home/kubernetes/bin/cdh", cores="/home/kubernetes/cores"),
                     **env("CDH_CORE_DIR", "/home/kubernetes/cores", "host", "agent")},
                SA: GKE_WORKLOAD_IDENTITY, CM: storage_section("gke-cos")},
    "eks": {DS: CONTAINERD, SA: IRSA},
    "eks-bottlerocket": {DS: CONTAINERD, SA: IRSA},
    "digitalocean": {DS: {**CONTAINERD, **env("CDH_CRI_IMAGE_CMD", "images", "host")}},
    "openshift": {DS: OPENSHIFT_AGENT, **OPENSHIFT_OBJECTS},
    "rosa": {DS: OPENSHIFT_AGENT, **OPENSHIFT_OBJECTS},
    "aro": {DS: {**OPENSHIFT_AGENT, **AZURE_WORKLOAD_IDENTITY[DS]}, SA: AZURE_WORKLOAD_IDENTITY[SA],
            CM: storage_section("aro"), **OPENSHIFT_OBJECTS},
    "roks": {DS: {**OPENSHIFT_AGENT, **env("CDH_CRI_IMAGE_CMD", "img", "host")}, **OPENSHIFT_OBJECTS},
    "kind": {DS: {**env("CDH_IGNORE_CRI", "true", "host"), **DEBUG_LOGS}},
    "minikube": {DS: DEBUG_LOGS},
}


def flatten(node, prefix: str = "") -> dict[str, object]:
    """Leaf paths -> values; list items are keyed by their name where they have one (env, volumes)."""
    if isinstance(node, dict) and node:
        items = node.items()
    elif isinstance(node, list) and node:
        items = ((f"[{v['name']}]" if isinstance(v, dict) and "name" in v else f"[{i}]", v)
                 for i, v in enumerate(node))
    else:
        return {prefix: node}
    out: dict[str, object] = {}
    for key, value in items:
        key = str(key)
        path = prefix + key if key.startswith("[") else f"{prefix}.{key}" if prefix else key
        out.update(flatten(value, path))
    return out


def differences(base, overlay) -> dict:
    """(kind, name) -> ADDED, or {path: the overlay's value (None: removed)} where it differs."""
    ids = {(o["kind"], o["metadata"]["name"]): o for o in base}
    out: dict = {}
    for obj in overlay:
        key = (obj["kind"], obj["metadata"]["name"])
        if key not in ids:
            out[key] = ADDED
            continue
        before, after = flatten(ids.pop(key)), flatten(obj)
        changed = {p: after.get(p) for p in before.keys() | after.keys() if before.get(p) != after.get(p)}
        if changed:
            out[key] = changed
    out.update({key: "removed" for key in ids})
    return out


def test_the_table_covers_every_provider():
    assert set(EXPECTED) == set(PROVIDERS)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_overlay_differs_from_base_only_where_intended(kubectl_present, provider):
    assert differences(render("base"), render(f"overlays/{provider}")) == EXPECTED[provider]
