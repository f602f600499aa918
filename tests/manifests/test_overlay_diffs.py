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
C = "spec.template.spec.containers[agent]"
V = "spec.template.spec.volumes"


def env(name: str, value: str) -> dict[str, str]:
    """A variable the base does not set."""
    return {f"{C}.env[{name}].name": name, f"{C}.env[{name}].value": value}


def host_dir(path: str) -> dict[str, str]:
    """CDH_HOST_DIR (set in the base) moved, with its hostPath and mount."""
    return {f"{C}.env[CDH_HOST_DIR].value": path, f"{V}[host-dir].hostPath.path": path,
            f"{C}.volumeMounts[host-dir].mountPath": path}


def host_volume(name: str, path: str) -> dict[str, str]:
    return {f"{V}[{name}].name": name, f"{V}[{name}].hostPath.path": path,
            f"{V}[{name}].hostPath.type": "DirectoryOrCreate",
            f"{C}.volumeMounts[{name}].name": name, f"{C}.volumeMounts[{name}].mountPath": path}


def storage_section(provider: str) -> dict[str, str]:
    """The overlay's own cdh.env: the base's, with its storage section for the provider's own store."""
    return {"data.cdh.env": (ROOT / "overlays" / provider / "cdh.env").read_text()}


CONTAINERD = env("CDH_CRI_ENDPOINT", "unix:///run/containerd/containerd.sock")
AZURE_WORKLOAD_IDENTITY = {
    DS: {"spec.template.metadata.labels.azure.workload.identity/use": "true"},
    SA: {"metadata.annotations.azure.workload.identity/client-id": "00000000-0000-0000-0000-000000000000"}}
GKE_WORKLOAD_IDENTITY = {
    "metadata.annotations.iam.gke.io/gcp-service-account": "cdh-agent@my-project.iam.gserviceaccount.com"}
DEBUG_LOGS = {**env("CDH_LOG_LEVEL", "debug"), **env("CDH_COMPOSER_LOG_LEVEL", "debug")}
IRSA = {"metadata.annotations.eks.amazonaws.com/role-arn": "arn:aws:iam::111122223333:role/cdh-agent"}
OPENSHIFT_AGENT = {"spec.template.metadata.annotations.openshift.io/required-scc": "cdh-agent",
                   **host_dir("/mnt/core-dump-handler"), **env("CDH_CRI_ENDPOINT", "unix:///run/crio/crio.sock"),
                   **env("CDH_CRI_IMAGE_CMD", "images")}
OPENSHIFT_OBJECTS = {("SecurityContextConstraints", "cdh-agent"): ADDED,
                     ("ClusterRole", "cdh-agent-scc"): ADDED, ("RoleBinding", "cdh-agent-scc"): ADDED}

EXPECTED: dict[str, dict] = {
    "aks": {**AZURE_WORKLOAD_IDENTITY, CM: storage_section("aks")},
    "custom": {},
    "iks": {},
    "gke-ubuntu": {SA: GKE_WORKLOAD_IDENTITY, CM: storage_section("gke-ubuntu")},
    "gke-cos": {DS: {**host_dir("/home/kubernetes/bin/cdh"), **env("CDH_CORE_DIR", "/home/kubernetes/cores"),
                     **host_volume("core-dir", "/home/kubernetes/cores")},
                SA: GKE_WORKLOAD_IDENTITY, CM: storage_section("gke-cos")},
    "eks": {DS: CONTAINERD, SA: IRSA},
    "eks-bottlerocket": {DS: CONTAINERD, SA: IRSA},
    "digitalocean": {DS: {**CONTAINERD, **env("CDH_CRI_IMAGE_CMD", "images")}},
    "openshift": {DS: OPENSHIFT_AGENT, **OPENSHIFT_OBJECTS},
    "rosa": {DS: OPENSHIFT_AGENT, **OPENSHIFT_OBJECTS},
    "aro": {DS: {**OPENSHIFT_AGENT, **AZURE_WORKLOAD_IDENTITY[DS]}, SA: AZURE_WORKLOAD_IDENTITY[SA],
            CM: storage_section("aro"), **OPENSHIFT_OBJECTS},
    "roks": {DS: {**OPENSHIFT_AGENT, **env("CDH_CRI_IMAGE_CMD", "img")}, **OPENSHIFT_OBJECTS},
    "kind": {DS: {**env("CDH_IGNORE_CRI", "true"), **DEBUG_LOGS}},
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
