"""What the IBM Core Dump Handler's Helm chart (v9.0.0) does with its values: its defaults, how its
templates render the agent's environment, which of its provider files a set of values comes from, and
the values cdh has no use for. Facts for ``cdh migrate`` (cdh/tools/migrate.py), written from what
rendering the chart shows; nothing of IBM's is copied.
"""

from __future__ import annotations

# The chart's (v9.0.0) defaults this needs; what a values file leaves out is these.
IBM_DEFAULTS = {
    "composer": {"ignoreCrio": False, "includeProcInfo": False, "crioImageCmd": "img", "logLevel": "Warn",
                 "filenameTemplate": "{uuid}-dump-{timestamp}-{hostname}-{exe_name}-{pid}-{signal}",
                 "logLength": 500, "podSelectorLabel": "", "timeout": 600, "compression": True,
                 "coreEvents": False},
    "daemonset": {"hostDirectory": "/var/mnt/core-dump-handler",
                  "coreDirectory": "/var/mnt/core-dump-handler/cores",
                  "eventDirectory": "/var/mnt/core-dump-handler/events",
                  "crioEndpoint": "unix:///run/containerd/containerd.sock", "suidDumpable": 2,
                  "vendor": "default", "useINotify": True, "deployCrioConfig": False, "includeCrioExe": False,
                  "manageStoreSecret": True, "s3AccessKey": "XXX", "s3Secret": "XXX", "s3BucketName": "XXX",
                  "s3Region": "XXX", "extraEnvVars": "", "envFrom": [], "sidecarContainers": []},
}
PLACEHOLDER = "XXX"  # the chart's stand-in for the S3 values
EXAMPLE_ROLE = "arn:aws:iam::123456789000:role/iam-role-name-here"  # IBM's example IRSA role
ROLE_ARN = "eks.amazonaws.com/role-arn"
# The chart's hostPath PersistentVolumes (a sidecar mounts them by name) → cdh's hostPath volumes.
IBM_VOLUMES = {"host-volume": "host-dir", "core-volume": "core-dir", "event-volume": "event-dir"}
# Values the chart reads that cdh has no use for, and why.
NOT_NEEDED = {
    "replicaCount": "a DaemonSet has one agent per node",
    "image": "cdh's image (the overlay's images: entry); IBM's resource sizes fit IBM's agent, not cdh's "
             "(see the base DaemonSet's)",
    "nameOverride": "cdh's object names are fixed (cdh-agent)", "fullnameOverride": "as nameOverride",
    "hostStorage": "no PersistentVolumes: cdh mounts hostPath directories",
    "coreStorage": "as hostStorage", "eventStorage": "as hostStorage", "storageClass": "as hostStorage",
    "daemonset.name": "cdh's DaemonSet is cdh-agent", "daemonset.label": "cdh's labels are fixed",
    "daemonset.mountContainerRuntimeEndpoint": "the composer runs on the host; the agent needs no socket",
    "daemonset.hostContainerRuntimeEndpoint": "as mountContainerRuntimeEndpoint",
    "daemonset.updateStrategy": "cdh's is RollingUpdate, one node at a time, never two agents on a node",
    "daemonset.composerCrioImageCmd": "IBM's chart never read it (cdh's DigitalOcean overlay uses images)",
    "serviceAccount.create": "cdh's service account is cdh-agent", "serviceAccount.name": "as create",
    "serviceAccount.useToken": "cdh reads the pod's projected token",
    "serviceAccount.tokenSecretName": "as useToken",
    "scc": "the OpenShift overlays carry cdh's SecurityContextConstraints",
    "clusterRole": "cdh's RBAC is its own", "clusterRoleBinding": "as clusterRole",
    "tolerations": "cdh's agent tolerates every taint already (every Linux node gets one)",
    "imagePullSecrets": None, "nodeSelector": None, "affinity": None, "priorityClassName": None,
    "composer": None, "daemonset": None, "serviceAccount": None,
}


def merged(user: dict) -> dict:
    """The chart's defaults, overlaid with ``user``'s values (one level deep, as Helm merges these)."""
    out = {k: v for k, v in user.items()}
    for section, defaults in IBM_DEFAULTS.items():
        given = user.get(section) if isinstance(user.get(section), dict) else {}
        out[section] = {**defaults, **given}
    return out


def choose_overlay(v: dict) -> tuple[str, str]:
    """The cdh overlay matching IBM's provider values, and the values that told."""
    ds, composer = v["daemonset"], v["composer"]
    host, endpoint = str(ds.get("hostDirectory")), str(ds.get("crioEndpoint") or "")
    rhel7 = str(ds.get("vendor")).lower() == "rhel7"
    role = ((v.get("serviceAccount") or {}).get("annotations") or {}).get(ROLE_ARN)
    if host == "/home/kubernetes/bin":
        return "gke-cos", "hostDirectory /home/kubernetes/bin: GKE Container-Optimized OS"
    if host.startswith("/mnt/"):
        if rhel7 and str(composer.get("crioImageCmd")).lower() != "images":
            return "roks", "hostDirectory under /mnt with the rhel7 build: ROKS"
        return "openshift", "hostDirectory under /mnt: OpenShift"
    if "dockershim" in endpoint:
        return "eks-bottlerocket", "the dockershim socket: EKS Bottlerocket"
    if "cri-dockerd" in endpoint or v.get("storageClass") == "standard":
        return "minikube", "cri-dockerd / storage class standard: minikube"
    if ds.get("includeCrioExe") or role or (v.get("serviceAccount") or {}).get("useToken"):
        return "eks", "the bundled crictl or an IAM role: EKS"
    if ds.get("deployCrioConfig") or ds.get("composerCrioImageCmd"):
        return "digitalocean", "a crictl.yaml: DigitalOcean"
    if rhel7:
        return "iks", "the rhel7 build alone: IBM Cloud Kubernetes Service"
    return "custom", "no provider's values"


def _text(value) -> str:
    """A value as the chart renders it into the environment."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def rendered_env(values: dict) -> tuple[dict[str, str], list[dict], list[tuple[str, str]]]:
    """The agent's environment as IBM's chart renders it from ``values`` (merged); the extraEnvVars
    entries taken whole (``valueFrom``); what is not carried, with why."""
    not_carried: list[tuple[str, str]] = []
    c, d = values["composer"], values["daemonset"]
    level = c.get("logLevel")
    env = {
        "COMP_FILENAME_TEMPLATE": c.get("filenameTemplate"), "COMP_LOG_LENGTH": c.get("logLength"),
        "COMP_LOG_LEVEL": "Off" if level is False else level,  # YAML 1.1 reads an unquoted Off as false
        "COMP_IGNORE_CRIO": c.get("ignoreCrio"), "COMP_INCLUDE_PROC_INFO": c.get("includeProcInfo"),
        "COMP_CRIO_IMAGE_CMD": c.get("crioImageCmd"),
        "COMP_POD_SELECTOR_LABEL": c.get("podSelectorLabel"),
        "COMP_TIMEOUT": c.get("timeout"), "COMP_COMPRESSION": c.get("compression"),
        "COMP_CORE_EVENTS": c.get("coreEvents"), "COMP_CORE_EVENT_DIR": d.get("eventDirectory"),
        "DEPLOY_CRIO_CONFIG": d.get("deployCrioConfig"), "CRIO_ENDPOINT": d.get("crioEndpoint"),
        "HOST_DIR": d.get("hostDirectory"), "CORE_DIR": d.get("coreDirectory"),
        "SUID_DUMPABLE": d.get("suidDumpable"), "INTERVAL": d.get("interval"),
        "SCHEDULE": d.get("schedule"), "USE_INOTIFY": d.get("useINotify"),
        "VENDOR": d.get("vendor"), "DEPLOY_CRIO_EXE": d.get("includeCrioExe"),
    }
    if d.get("manageStoreSecret"):
        env["S3_BUCKET_NAME"] = d.get("s3BucketName")
        env["S3_REGION"] = d.get("s3Region")
        for name in ("S3_BUCKET_NAME", "S3_REGION"):
            if env[name] == PLACEHOLDER:
                env[name] = ""
                not_carried.append((name, f"the chart's placeholder {PLACEHOLDER}: set it in cdh.env"))
    else:
        not_carried.append(("daemonset.manageStoreSecret", "false: your own s3config Secret is not read "
                            "by cdh: set the bucket in cdh.env and create the cdh-s3 Secret"))
    kept: list[dict] = []
    for item in _extra_env(values, not_carried):
        if "value" in item and "valueFrom" not in item:
            env[item["name"]] = item["value"]
        else:
            kept.append(item)
    return {k: _text(v) for k, v in env.items()}, kept, not_carried


def _extra_env(values: dict, not_carried: list[tuple[str, str]]) -> list[dict]:
    import yaml  # cdh migrate only

    extra = values["daemonset"].get("extraEnvVars") or []
    if isinstance(extra, str):
        if "{{" in extra:
            not_carried.append(("daemonset.extraEnvVars", "holds Helm template expressions, which only "
                                "Helm can render: add those variables by hand"))
            return []
        extra = yaml.safe_load(extra) or []
    return [e for e in extra if isinstance(e, dict) and e.get("name")] if isinstance(extra, list) else []

