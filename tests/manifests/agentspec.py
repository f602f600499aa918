"""What the rendered objects tell cdh: its two containers (``host``, privileged, runs `cdh host`; ``agent``,
the uploader), their environments, the env-file and the settings each starts with."""

from __future__ import annotations

import re

from cdh import config
from cdh.config import BY_ALIAS, BY_NAME, SECRET_FILE_SUFFIX
from tests.manifests.kustomize import find

AGENT = ("DaemonSet", "cdh-agent")
CONFIG_MAP = "cdh-config"
CONTAINERS = ("host", "agent")  # the command each runs is its name: `cdh host`, `cdh agent`
# Stand-ins for values only a cluster knows (downward API, Secret).
FIELD_VALUES = {"spec.nodeName": "node-1"}
SECRET_VALUE = "placeholder-secret"
# `# NAME=value` lines in an env-file: commented examples, held to the same rules as live lines.
_EXAMPLE = re.compile(r"^#\s*([A-Z][A-Z0-9_]*=.*)$")


def daemonset(objs) -> dict:
    return find(objs, *AGENT)


def pod_spec(objs) -> dict:
    return daemonset(objs)["spec"]["template"]["spec"]


def container(objs, name: str = "agent") -> dict:
    (found,) = [c for c in pod_spec(objs)["containers"] if c["name"] == name]
    return found


def env_layer(objs, name: str = "agent") -> dict[str, str]:
    """A container's environment as the kubelet would set it, with stand-ins for cluster values.
    Secret files (``*_FILE``) stand in as the secret itself: the files exist only on a node."""
    out = {}
    for var in container(objs, name).get("env", []):
        source = var.get("valueFrom", {})
        secret = BY_NAME.get(var["name"].removesuffix(SECRET_FILE_SUFFIX))
        if var["name"].endswith(SECRET_FILE_SUFFIX) and secret is not None and secret.secret:
            out[secret.name] = SECRET_VALUE
        elif "value" in var:
            out[var["name"]] = var["value"]
        elif "fieldRef" in source:
            out[var["name"]] = FIELD_VALUES[source["fieldRef"]["fieldPath"]]
        elif "secretKeyRef" in source:
            out[var["name"]] = SECRET_VALUE
        else:
            raise AssertionError(f"{var['name']}: unexpected source {source}")
    return out


def env_text(objs, name: str = "agent") -> str:
    """The env-file a container reads: the ConfigMap key named by CDH_CONFIG_FILE."""
    key = env_layer(objs, name)["CDH_CONFIG_FILE"].rsplit("/", 1)[-1]
    return find(objs, "ConfigMap", CONFIG_MAP)["data"][key]


def file_layer(objs, name: str = "agent") -> dict[str, str]:
    return config.parse_env_text(env_text(objs, name), "cdh-config")


def example_layer(text: str) -> dict[str, str]:
    """The commented-out `# NAME=value` examples of an env-file, parsed as if uncommented."""
    lines = [m.group(1) for m in map(_EXAMPLE.match, text.splitlines()) if m]
    return config.parse_env_text("\n".join(lines), "examples")


def settings(objs, name: str = "agent") -> config.Settings:
    """The settings a container starts with: its environment, overlaid by the mounted env-file."""
    return config.load([env_layer(objs, name), file_layer(objs, name)])


def unknown_name(name: str) -> str | None:
    """Why ``name`` is not a variable cdh reads, or None when it is one."""
    if name in BY_NAME or name in BY_ALIAS:
        return None
    base = name.removesuffix(SECRET_FILE_SUFFIX)
    if base != name and base in BY_NAME:
        return None if BY_NAME[base].secret else f"{name}: only secret settings have a _FILE form"
    return f"{name} is not a cdh setting"


def attr_of(name: str) -> str:
    """The setting a variable name sets (canonical, alias or _FILE form)."""
    if name in BY_ALIAS:
        return BY_ALIAS[name][0].attr
    return BY_NAME[name.removesuffix(SECRET_FILE_SUFFIX) if name not in BY_NAME else name].attr


def host_mounts(objs, name: str = "agent") -> dict[str, str]:
    """hostPath volumes mounted into a container: mountPath -> host path."""
    paths = {v["name"]: v["hostPath"]["path"] for v in pod_spec(objs)["volumes"] if "hostPath" in v}
    return {m["mountPath"]: paths[m["name"]] for m in container(objs, name)["volumeMounts"]
            if m["name"] in paths}


def writable(c: dict) -> list[str]:
    """The mountPaths a container may write."""
    return [m["mountPath"].rstrip("/") for m in c.get("volumeMounts", []) if not m.get("readOnly")]


def under(path: str, top: str) -> bool:
    return path == top or path.startswith(top.rstrip("/") + "/")


def parse_quantity(q: str) -> int:
    """Kubernetes memory quantity -> bytes (the binary and decimal suffixes the manifests use)."""
    units = {"Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "k": 1000, "M": 1000**2, "G": 1000**3}
    m = re.fullmatch(r"(\d+)([A-Za-z]*)", str(q))
    assert m and (m.group(2) in units or not m.group(2)), f"unexpected quantity {q!r}"
    return int(m.group(1)) * units.get(m.group(2), 1)
