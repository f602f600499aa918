"""Which fields of a rendered DaemonSet the kubelet stand-in (standin.py) implements: a whitelist walk.

Every leaf of the DaemonSet (its metadata, its own spec, the pod template) is named by a path with list
items as ``[]`` (``spec.template.spec.containers[].env[].valueFrom.fieldRef.fieldPath``). A leaf is
accepted only when a rule below matches its path *and* accepts its value; :func:`unsupported` lists
every other one, and the node test fails on them before it starts a pod. A field the manifests gain
(``hostPID``, ``capabilities.add``, a ``CharDevice`` hostPath, an exec probe with a new field) must
first be implemented in the stand-in and listed here, so the manifests cannot drift from what is tested.

Each rule names the :class:`~tests.runtime.standin.StandIn` method that honours it (or ``controller``
and ``scheduler`` for what the DaemonSet controller and the scheduler do, which the test plays by hand:
one pod on one node, deleted before the next starts). tests/runtime/test_agent_pod.py checks that every
named method exists. ``*`` in a pattern stands for one free-form map key (labels, annotations,
nodeSelector keys, resource names), which may itself hold dots.
"""

from __future__ import annotations

import re

ANY = None
T = "spec.template.spec."
C = T + "containers[]."
PROBES = ("startupProbe", "livenessProbe", "readinessProbe")
PROBE_TIMING = ("initialDelaySeconds", "periodSeconds", "timeoutSeconds", "failureThreshold",
                "successThreshold")
HOST_PATH_TYPES = {"", "DirectoryOrCreate", "Directory"}
FIELD_PATHS = {"metadata.name", "metadata.namespace", "metadata.uid", "spec.nodeName",
               "spec.serviceAccountName", "status.hostIP", "status.podIP"}
QUANTITY = re.compile(r"^\d+(\.\d+)?(m|Ki|Mi|Gi|k|M|G)?$")
CONTROLLER, SCHEDULER = "controller", "scheduler"


def _is(*values):
    return lambda v: v in values


def _int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def _str(v) -> bool:
    return isinstance(v, str)


def _bool(v) -> bool:
    return isinstance(v, bool)


def _field_path(v) -> bool:
    return v in FIELD_PATHS or bool(re.match(r"^metadata\.(labels|annotations)\['[^']+'\]$", str(v)))


def _quantity(v) -> bool:
    return bool(QUANTITY.match(str(v)))


# (path pattern, accepted values, the StandIn method that honours it)
RULES: list[tuple[str, object, str]] = [
    # ------------------------------------------------------------ the object and its controller
    ("apiVersion", _is("apps/v1"), CONTROLLER),
    ("kind", _is("DaemonSet"), CONTROLLER),
    ("metadata.name", _str, "run_daemonset_pod"),                # the pod's name prefix
    ("metadata.namespace", _str, "run_daemonset_pod"),           # the pod's namespace
    ("metadata.labels.*", _str, CONTROLLER),                     # the DaemonSet's own, not the pod's
    ("metadata.annotations.*", _str, CONTROLLER),
    ("spec.selector.matchLabels.*", _str, "run_daemonset_pod"),  # asserted to match the template
    # One pod per node at a time: the test deletes the old pod before it starts the next (maxSurge 0).
    ("spec.updateStrategy.type", _is("RollingUpdate"), CONTROLLER),
    ("spec.updateStrategy.rollingUpdate.maxUnavailable", _is(1), CONTROLLER),
    ("spec.updateStrategy.rollingUpdate.maxSurge", _is(0), CONTROLLER),
    ("spec.minReadySeconds", _int, CONTROLLER),
    # ------------------------------------------------------------ the pod
    ("spec.template.metadata.labels.*", _str, "_sandbox"),      # sandbox labels, downward API
    ("spec.template.metadata.annotations.*", _str, "_sandbox"),
    (T + "serviceAccountName", _str, "_field"),
    (T + "automountServiceAccountToken", _bool, "_service_account"),  # token, ca.crt, namespace; env
    (T + "enableServiceLinks", _is(False), "env"),               # only KUBERNETES_SERVICE_* are injected
    (T + "nodeSelector.*", _str, SCHEDULER),                     # the one node is linux
    (T + "tolerations[].operator", _is("Exists"), SCHEDULER),
    (T + "terminationGracePeriodSeconds", _int, "delete"),       # preStop, then StopContainer(rest)
    (T + "securityContext.seccompProfile.type", _is("RuntimeDefault"), "_security"),
    (T + "volumes[].name", _str, "_volumes"),
    (T + "volumes[].hostPath.path", _str, "_host_path"),
    (T + "volumes[].hostPath.type", lambda v: v in HOST_PATH_TYPES, "_host_path"),
    (T + "volumes[].configMap.name", _str, "_project"),          # AtomicWriter layout, kept in sync
    (T + "volumes[].configMap.optional", _bool, "_project"),
    (T + "volumes[].configMap.defaultMode", _int, "_project"),
    (T + "volumes[].secret.secretName", _str, "_project"),       # the same, on a tmpfs
    (T + "volumes[].secret.optional", _bool, "_project"),
    (T + "volumes[].secret.defaultMode", _int, "_project"),
    # ------------------------------------------------------------ each container
    (C + "name", _str, "_container"),
    (C + "image", _str, "_container"),                           # imported before: never pulled
    (C + "imagePullPolicy", _is("IfNotPresent", "Never"), "_container"),
    (C + "command[]", _str, "_container"),                       # $(VAR) expanded
    (C + "args[]", _str, "_container"),
    (C + "env[].name", _str, "env"),
    (C + "env[].value", _str, "env"),
    (C + "env[].valueFrom.fieldRef.fieldPath", _field_path, "_field"),
    (C + "env[].valueFrom.fieldRef.apiVersion", _is("v1"), "_field"),
    (C + "envFrom[].prefix", _str, "env"),
    (C + "envFrom[].configMapRef.name", _str, "env"),
    (C + "envFrom[].configMapRef.optional", _bool, "env"),
    (C + "envFrom[].secretRef.name", _str, "env"),
    (C + "envFrom[].secretRef.optional", _bool, "env"),
    (C + "ports[].name", _str, "_probe_once"),                   # named ports of httpGet probes
    (C + "ports[].containerPort", _int, "_probe_once"),
    (C + "ports[].protocol", _is("TCP"), "_probe_once"),
    (C + "resources.requests.*", _quantity, "_resources"),       # cpu shares; QoS class: cgroup parent
    (C + "resources.limits.*", _quantity, "_resources"),         # cpu quota, memory limit
    (C + "securityContext.privileged", _bool, "_security"),      # unprivileged: kubelet's masked paths
    (C + "securityContext.runAsUser", _int, "_security"),
    (C + "securityContext.readOnlyRootFilesystem", _bool, "_security"),
    (C + "securityContext.allowPrivilegeEscalation", _bool, "_security"),  # no_new_privs
    (C + "securityContext.capabilities.drop[]", _str, "_security"),
    (C + "volumeMounts[].name", _str, "_mounts"),
    (C + "volumeMounts[].mountPath", _str, "_mounts"),
    (C + "volumeMounts[].readOnly", _bool, "_mounts"),           # configMap/secret: always read-only
    (C + "lifecycle.preStop.exec.command[]", _str, "delete"),    # ExecSync within the grace period
    *[(C + f"{p}.{f}", _int, "_prober") for p in PROBES for f in PROBE_TIMING],
    *[(C + f"{p}.httpGet.{f}", ANY, "_probe_once") for p in PROBES for f in ("path", "port")],
    *[(C + f"{p}.httpGet.scheme", _is("HTTP"), "_probe_once") for p in PROBES],
    *[(C + f"{p}.exec.command[]", _str, "_probe_once") for p in PROBES],
]


def leaves(obj, path: str = ""):
    """(path, value) for every scalar in obj; list items as [] and empty containers as leaves."""
    if isinstance(obj, dict) and obj:
        for key, value in obj.items():
            yield from leaves(value, f"{path}.{key}" if path else key)
    elif isinstance(obj, list) and obj:
        for value in obj:
            yield from leaves(value, path + "[]")
    else:
        yield path, obj


def rule_for(path: str) -> tuple[object, str] | None:
    for pattern, accept, handler in RULES:
        if _match(pattern, path):
            return accept, handler
    return None


def _match(pattern: str, path: str) -> bool:
    if "*" not in pattern:
        return pattern == path
    head, _, tail = pattern.partition("*")
    return path.startswith(head) and path.endswith(tail) and len(path) > len(head) + len(tail)


def unsupported(daemonset: dict) -> list[str]:
    """Every field the stand-in does not implement, or implements for other values: empty when it can."""
    out = []
    for path, value in leaves(daemonset):
        rule = rule_for(path)
        if rule is None:
            out.append(f"{path}: not implemented by the kubelet stand-in")
        elif rule[0] is not ANY and not rule[0](value):
            out.append(f"{path}={value!r}: value not implemented by the kubelet stand-in")
    return out
