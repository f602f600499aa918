"""Render k8s-manifests/ with `kubectl kustomize`, for the manifest tests and `nox -s manifests`.

kubectl (>= 1.27, which bundles kustomize v5) is the one renderer: what the tests read is exactly
what `kubectl apply -k` would send.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2] / "k8s-manifests"

# The tested matrix of the issue (plus local clusters): one overlay each, no more, no fewer.
PROVIDERS = (
    "aks", "aro", "custom", "digitalocean", "eks", "eks-bottlerocket", "gke-cos", "gke-ubuntu",
    "iks", "kind", "minikube", "openshift", "roks", "rosa",
)
OVERLAYS = tuple(f"overlays/{p}" for p in PROVIDERS)
# Everything else a user applies: the base (for diffs), the example of a user's own overlay, one
# with the optional monitoring component (Prometheus Operator objects, Grafana dashboard), and one
# routing tenants' namespaces to their own buckets (tests/manifests/test_multi_tenant.py).
KUSTOMIZATIONS = ("base", *OVERLAYS, "examples/my-cluster", "examples/monitoring",
                  "examples/multi-tenant")
# Plain manifests applied with `kubectl apply -f`.
PLAIN_FILES = ("base/s3-secret.template.yaml", "examples/crash-pod.yaml")

MISSING_KUBECTL = (
    "kubectl not found on PATH: the manifests are rendered with `kubectl kustomize` "
    "(kubectl 1.27 or newer, which bundles kustomize v5). Install kubectl, e.g. `apt-get install kubectl` "
    "from the Kubernetes apt repository, or put the binary on PATH."
)


# The base's image: a registry that cannot exist (RFC 2606 reserves .invalid), so a user who has not
# set `images:` in their overlay is told at render time, not by ImagePullBackOff on every node.
PLACEHOLDER_IMAGE = "your-registry.invalid/cdh"
# What the examples hold where a user's own values go.
EXAMPLE_REGISTRIES = ("registry.example.com",)
EXAMPLE_DIGEST = "sha256:" + "0" * 64


def placeholders(objs) -> list[str]:
    """Every container image still naming the placeholder or the examples' values, one line each."""
    out = []
    for obj in objs:
        pod = (obj.get("spec", {}).get("template") or {}).get("spec") if obj["kind"] != "Pod" else obj["spec"]
        for c in [*(pod or {}).get("initContainers", []), *(pod or {}).get("containers", [])]:
            image = c.get("image", "")
            where = f"{obj['kind']}/{obj['metadata']['name']} container {c['name']}"
            if image.split("/")[0].endswith(".invalid"):
                out.append(f"{where}: image {image} is the placeholder: build the image, push it and set "
                           f"`images:` (name {PLACEHOLDER_IMAGE}, newName, digest) in your overlay")
            elif image.split("/")[0] in EXAMPLE_REGISTRIES or image.endswith("@" + EXAMPLE_DIGEST):
                out.append(f"{where}: image {image} is the example's: set your registry and the digest "
                           "`nox -s image` printed")
    return out


class RenderError(RuntimeError):
    """kubectl is missing or a kustomization does not build; the text says which and why."""


def kubectl() -> str:
    path = shutil.which("kubectl")
    if path is None:
        raise RenderError(MISSING_KUBECTL)
    return path


@functools.cache
def render(target: str) -> tuple[dict, ...]:
    """The objects `kubectl apply -k k8s-manifests/<target>` would apply (an absolute path: that one)."""
    proc = subprocess.run([kubectl(), "kustomize", str(ROOT / target)],
                          capture_output=True, text=True, timeout=120, check=False)
    if proc.returncode != 0:
        raise RenderError(f"kubectl kustomize {target} failed: {proc.stderr.strip()}")
    return tuple(d for d in yaml.safe_load_all(proc.stdout) if d)


def load_file(target: str) -> tuple[dict, ...]:
    with open(ROOT / target, encoding="utf-8") as f:
        return tuple(d for d in yaml.safe_load_all(f) if d)


def objects(target: str) -> tuple[dict, ...]:
    return load_file(target) if target.endswith(".yaml") else render(target)


def find(objs: tuple[dict, ...], kind: str, name: str | None = None) -> dict:
    found = [o for o in objs if o["kind"] == kind and name in (None, o["metadata"]["name"])]
    if len(found) != 1:
        raise LookupError(f"expected one {kind} {name or ''}, found {len(found)}")
    return found[0]
