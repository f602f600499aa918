"""``cdh migrate VALUES.yaml -o DIR``: an IBM Core Dump Handler installation, as a cdh kustomize overlay.

VALUES is what ``helm get values core-dump-handler`` prints (with or without its ``USER-SUPPLIED
VALUES:`` line; ``-a`` for all of them) or one of IBM's ``values.<provider>.yaml`` files. The chart's
defaults fill what it leaves out, then:

1. **the provider**: IBM's provider files differ in a few telling values (GKE COS's host directory,
   OpenShift's /mnt and image command, Bottlerocket's dockershim, EKS's bundled crictl and IAM role,
   minikube's cri-dockerd, DigitalOcean's crictl config, IBM Cloud's rhel7 build); the matching
   cdh overlay is the base (``--provider`` chooses another);
2. **the settings**: the environment IBM's chart renders from those values is read by cdh's own
   settings loader, with IBM's meaning (cdh/config/ibm.py), and every value that differs from cdh's
   default goes into ``cdh.env`` under its cdh name (IBM's cron schedule keeps its IBM name, whose
   meaning cdh keeps);
3. **the pod**: directories (hostPath volumes where they are not cdh's), node selection, affinity,
   priority class, pull secrets, pod annotations, extra environment, envFrom and sidecars become a
   DaemonSet patch; the service account's annotations (the IRSA role) a ServiceAccount patch; S3
   keys in the values a ``cdh-s3`` Secret generated from ``s3-secret.env`` (0600: keep it out of git);
4. **what does not carry over** is listed, each with why, on stdout and in ``DIR/README.md``,
   which also says in which order to switch (``helm uninstall`` first).

``kubectl kustomize DIR`` renders it; ``kubectl apply -k DIR`` installs it. pyyaml is imported here
only (a dependency of the tools, never of the composer or the agent).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from cdh import EXIT_CONFIG, EXIT_OK, EXIT_USAGE, config, routes
from cdh.config.envfile import quote
from cdh.tools import ibmchart
from cdh.tools.ibmchart import EXAMPLE_ROLE, IBM_DEFAULTS, IBM_VOLUMES, NOT_NEEDED, PLACEHOLDER, ROLE_ARN

DEFAULT_HOST_DIR = "/var/mnt/core-dump-handler"
# Each cdh overlay's HOST_DIR and CORE_DIR (tests/manifests/test_migrate.py checks them).
OVERLAY_DIRS = {"gke-cos": ("/home/kubernetes/bin/cdh", "/home/kubernetes/cores"),
                **{p: ("/mnt/core-dump-handler", "/mnt/core-dump-handler/cores")
                   for p in ("openshift", "roks", "rosa", "aro")}}
PROVIDERS = ("aks", "aro", "custom", "digitalocean", "eks", "eks-bottlerocket", "gke-cos", "gke-ubuntu",
             "iks", "kind", "minikube", "openshift", "roks", "rosa")
# The base's hostPath volumes: each is mounted at its own host path in both containers (host, agent).
DIR_VOLUMES = {"host-dir": "", "core-dir": "cores", "event-dir": "events", "state-dir": "state"}
CONTAINERS = ("host", "agent")
# What IBM's chart renders by default where cdh, without it, does the same: not worth a line in cdh.env.
SAME_AS_CDH = {"CRIO_ENDPOINT": "unix:///run/containerd/containerd.sock"}
DIR_SETTINGS = ("host_dir", "core_dir", "event_dir")


def run(values_path: str, out_dir: str, manifests: str | None, provider: str | None) -> int:
    import yaml  # only here: the composer and the agent never read YAML

    try:
        text = Path(values_path).read_text(encoding="utf-8")
        user = yaml.safe_load("\n".join(ln for ln in text.splitlines()
                                        if ln.strip() != "USER-SUPPLIED VALUES:")) or {}
    except (OSError, UnicodeDecodeError) as err:
        print(f"cdh migrate: {values_path}: {err}", file=sys.stderr)
        return EXIT_USAGE
    except yaml.YAMLError as err:
        print(f"cdh migrate: {routes.yaml_problem(err, values_path)}", file=sys.stderr)
        return EXIT_USAGE
    if not isinstance(user, dict):
        print(f"cdh migrate: {values_path}: not a Helm values mapping", file=sys.stderr)
        return EXIT_USAGE
    base = _manifests(manifests)
    if base is None:
        print("cdh migrate: no k8s-manifests here: pass --manifests (a checkout's k8s-manifests, or a "
              "kustomize remote such as <git-url>//k8s-manifests?ref=<tag>)", file=sys.stderr)
        return EXIT_USAGE
    plan = Plan(ibmchart.merged(user))
    plan.provider, why = (provider, "--provider") if provider else ibmchart.choose_overlay(plan.values)
    try:
        plan.build()
    except config.ConfigError as err:
        print(f"cdh migrate: {err}", file=sys.stderr)
        return EXIT_CONFIG
    written = plan.write(Path(out_dir), base)
    print(f"overlay: {plan.provider} ({why})")
    for name in written:
        print(f"wrote {os.path.join(out_dir, name)}")
    for key, reason in plan.not_carried:
        print(f"not carried over: {key}: {reason}")
    print(f"next: helm uninstall core-dump-handler, wait for its pods to go, then kubectl apply -k {out_dir} "
          f"({os.path.join(out_dir, 'README.md')})")
    return EXIT_OK


def _manifests(given: str | None) -> str | None:
    if given:
        return given
    here = Path(__file__).resolve().parents[2] / "k8s-manifests"
    return str(here) if (here / "overlays").is_dir() else None


class Plan:
    """What the overlay holds: built from the merged values, then written."""

    def __init__(self, values: dict) -> None:
        self.values = values
        self.provider = "custom"
        self.env_lines: list[str] = []
        self.containers: dict[str, dict] = {name: {"name": name} for name in CONTAINERS}
        self.host_dir = DEFAULT_HOST_DIR  # as the agent will mount it
        self.pod: dict = {}
        self.volumes: list[dict] = []
        self.replacements: list[dict] = []
        self.sidecars: list[dict] = []
        self.annotations: dict = {}
        self.sa_annotations: dict = {}
        self.remove_role = False
        self.secret: dict[str, str] = {}
        self.not_carried: list[tuple[str, str]] = []
        self.notes: list[str] = []

    # ------------------------------------------------------------ build

    def build(self) -> None:
        env, raw_env, not_carried = ibmchart.rendered_env(self.values)
        self.not_carried += not_carried
        settings = config.load([env])
        self.notes = list(settings.notes)
        self._settings(settings)
        self._directories(settings)
        self._pod(raw_env)
        self._service_account()
        self._secret()
        self._unknown()

    def _settings(self, settings: config.Settings) -> None:
        defaults = config.load([{"CDH_HOST_DIR": settings.host_dir}])
        for spec in config.SPECS:
            attr, source = spec.attr, settings.sources.get(spec.attr, spec.name)
            if source == spec.name or attr in DIR_SETTINGS or spec.secret:
                continue
            value = settings.raw[attr]
            if settings.values[attr] == defaults.values.get(attr) or SAME_AS_CDH.get(source) == value:
                continue
            if attr == "schedule" and source == "SCHEDULE":  # IBM's cron: its name keeps its meaning
                self.env_lines += ["# IBM's cron (seconds first, 1 = Sunday), kept under IBM's name",
                                   f'SCHEDULE="{quote(value)}"']
                continue
            if isinstance(settings.values[attr], bool):
                value = "true" if settings.values[attr] else "false"  # the chart's empty useINotify: false
            self.env_lines += [f"# from IBM's {source}", f'{spec.name}="{quote(value)}"']
        if not settings.has_trigger:  # IBM #48: an uploader of your own reads the zips
            self.env_lines += ["# no trigger: the cores stay for an uploader of your own, which may run as "
                               "another user: IBM's zips were 0644", 'CDH_ZIP_FILE_MODE="0644"']
        if settings.core_events:  # IBM's consumers of event files may run as another user
            self.env_lines += ["# IBM's event files were 0644", 'CDH_EVENT_FILE_MODE="0644"']

    def _directories(self, settings: config.Settings) -> None:
        """IBM's directories where the overlay's differ: the volumes' host paths, CDH_CORE_DIR and
        CDH_EVENT_DIR in both containers, and kustomize replacements that keep every mountPath (and
        CDH_HOST_DIR) on its volume's path, as the overlays do."""
        host, core = OVERLAY_DIRS.get(self.provider, (DEFAULT_HOST_DIR, DEFAULT_HOST_DIR + "/cores"))
        ibm_host = settings.host_dir
        paths: dict[str, str] = {}
        if ibm_host != host and not (self.provider == "gke-cos" and ibm_host == "/home/kubernetes/bin"):
            host = ibm_host
            paths = {volume: os.path.join(host, sub) if sub else host for volume, sub in DIR_VOLUMES.items()}
            core = paths["core-dir"]
        elif ibm_host != host:
            self.notes.append(f"HOST_DIR {ibm_host} becomes {host}: cdh keeps its files in a directory of "
                              "its own")
        self.host_dir = host
        if settings.core_dir != core:
            paths["core-dir"] = settings.core_dir
            self._env("CDH_CORE_DIR", settings.core_dir)
        if settings.core_events and settings.event_dir != os.path.join(host, "events"):
            paths["event-dir"] = settings.event_dir
            self._env("CDH_EVENT_DIR", settings.event_dir)
        for volume, path in paths.items():
            self.volumes.append({"name": volume, "hostPath": {"path": path}})
            targets = [f"spec.template.spec.containers.[name={c}].volumeMounts.[name={volume}].mountPath"
                       for c in CONTAINERS]
            if volume == "host-dir":
                targets += [f"spec.template.spec.containers.[name={c}].env.[name=CDH_HOST_DIR].value"
                            for c in CONTAINERS]
            self.replacements.append({
                "source": {"kind": "DaemonSet", "name": "cdh-agent",
                           "fieldPath": f"spec.template.spec.volumes.[name={volume}].hostPath.path"},
                "targets": [{"select": {"kind": "DaemonSet", "name": "cdh-agent"}, "fieldPaths": targets}]})

    def _env(self, name: str, value: str) -> None:
        """``name=value`` in both containers' environment (the host writes composer.env from it)."""
        for c in self.containers.values():
            c.setdefault("env", []).append({"name": name, "value": value})

    def _pod(self, kept_env: list[dict]) -> None:
        v, d = self.values, self.values["daemonset"]
        for key in ("nodeSelector", "affinity"):
            if v.get(key):
                self.pod[key] = v[key]
        if v.get("priorityClassName"):
            self.pod["priorityClassName"] = v["priorityClassName"]
        secrets = [*(v.get("imagePullSecrets") or []), *((v.get("image") or {}).get("pullSecrets") or [])]
        if secrets:
            self.pod["imagePullSecrets"] = [s if isinstance(s, dict) else {"name": s} for s in secrets]
        self.annotations = dict(d.get("podAnnotations") or {})
        agent = self.containers["agent"]  # the uploader: IBM's extra environment was its agent's
        if kept_env:
            agent.setdefault("env", []).extend(kept_env)
        if d.get("envFrom"):
            agent["envFrom"] = d["envFrom"]
        if kept_env or d.get("envFrom"):
            self.notes.append("extraEnvVars taken from Secrets and envFrom go to the uploader (container "
                              "agent); settings of the composer belong in cdh.env")
        host = self.host_dir
        for sidecar in d.get("sidecarContainers") or []:
            sidecar = dict(sidecar)
            mounts = [{**m, "name": IBM_VOLUMES.get(m.get("name"), m.get("name"))}
                      for m in sidecar.get("volumeMounts") or []]
            sidecar["volumeMounts"] = mounts or [{"name": "host-dir", "mountPath": host}]
            self.sidecars.append(sidecar)

    def _service_account(self) -> None:
        annotations = dict((self.values.get("serviceAccount") or {}).get("annotations") or {})
        if annotations.get(ROLE_ARN) == EXAMPLE_ROLE:
            annotations.pop(ROLE_ARN)
            self.not_carried.append((f"serviceAccount.annotations.{ROLE_ARN}",
                                     "IBM's example role, not a real one: set your role (IRSA) in the patch"))
        self.sa_annotations = annotations
        if self.provider in ("eks", "eks-bottlerocket") and ROLE_ARN not in annotations:
            self.remove_role = True  # the overlay's example role would come first in the credential chain
            self.notes.append("no IAM role in IBM's values: the overlay's example role annotation is removed "
                              "(node role or EKS Pod Identity)")

    def _secret(self) -> None:
        d = self.values["daemonset"]
        if not d.get("manageStoreSecret"):
            return
        keys = {"access-key": d.get("s3AccessKey"), "secret-key": d.get("s3Secret")}
        if ROLE_ARN in self.sa_annotations:
            self.not_carried.append(("daemonset.s3AccessKey/s3Secret", "an IAM role (IRSA) is set, and IBM's "
                                     "agent then used the role whatever its keys said: so does cdh"))
        elif all(k and k != PLACEHOLDER for k in keys.values()):
            self.secret = {k: str(v) for k, v in keys.items()}
        else:
            self.not_carried.append(("daemonset.s3AccessKey/s3Secret", "the chart's placeholders or empty: "
                                     "create the cdh-s3 Secret (or use IRSA / Pod Identity / the node role)"))

    def _unknown(self) -> None:
        """Every value given that is not carried over, with why (from NOT_NEEDED, or: not IBM's)."""
        sections = {"composer": set(IBM_DEFAULTS["composer"]),
                    "daemonset": {*IBM_DEFAULTS["daemonset"], "interval", "schedule", "podAnnotations"},
                    "serviceAccount": {"annotations"}}
        for key, value in self.values.items():
            if key in sections and isinstance(value, dict):
                for sub in value:
                    reason = NOT_NEEDED.get(f"{key}.{sub}")
                    if reason or sub not in sections[key]:
                        self.not_carried.append((f"{key}.{sub}", reason or "not a value IBM's chart reads"))
            elif key not in NOT_NEEDED:
                self.not_carried.append((key, "not a value IBM's chart reads"))
            elif NOT_NEEDED[key]:
                self.not_carried.append((key, NOT_NEEDED[key]))

    # ------------------------------------------------------------ write

    def write(self, out: Path, manifests: str) -> list[str]:
        import yaml

        out.mkdir(parents=True, exist_ok=True)
        overlay = f"{manifests.rstrip('/')}/overlays/{self.provider}"
        if os.path.isdir(overlay):
            overlay = os.path.relpath(overlay, out)
        kustomization: dict = {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
                               "resources": [overlay],
                               "configMapGenerator": [{"name": "cdh-config", "behavior": "replace",
                                                       "files": ["cdh.env"],
                                                       "options": {"disableNameSuffixHash": True}}]}
        files = {"cdh.env": self._env_file()}
        patches: list[dict] = []
        ds = self._daemonset_patch()
        if ds:
            files["daemonset.yaml"] = yaml.safe_dump(ds, sort_keys=False)
            patches.append({"path": "daemonset.yaml"})
        if self.sa_annotations:
            sa = {"apiVersion": "v1", "kind": "ServiceAccount",
                  "metadata": {"name": "cdh-agent", "annotations": self.sa_annotations}}
            files["serviceaccount.yaml"] = yaml.safe_dump(sa, sort_keys=False)
            patches.append({"path": "serviceaccount.yaml"})
        elif self.remove_role:
            path = f"/metadata/annotations/{ROLE_ARN.replace('/', '~1')}"
            patches.append({"target": {"kind": "ServiceAccount", "name": "cdh-agent"},
                            "patch": f"- op: remove\n  path: {path}\n"})
        if patches:
            kustomization["patches"] = patches
        if self.replacements:
            kustomization["replacements"] = self.replacements
        if self.secret:
            kustomization["secretGenerator"] = [{"name": "cdh-s3", "envs": ["s3-secret.env"],
                                                 "options": {"disableNameSuffixHash": True}}]
        files["kustomization.yaml"] = ("# Written by `cdh migrate` from an IBM Core Dump Handler "
                                       "installation (see README.md).\n"
                                       + yaml.safe_dump(kustomization, sort_keys=False))
        files["README.md"] = self._report()
        for name, text in files.items():
            (out / name).write_text(text, encoding="utf-8")
        if self.secret:
            path = out / "s3-secret.env"
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write("".join(f"{k}={v}\n" for k, v in self.secret.items()))
            os.chmod(path, 0o600)
            files["s3-secret.env"] = ""
        return sorted(files)

    def _env_file(self) -> str:
        head = ["# cdh settings carried over from an IBM Core Dump Handler installation by `cdh migrate`.",
                "# Only what differs from cdh's defaults; `cdh config --list` shows every setting."]
        notes = [f"# note: {n}" for n in self.notes]
        return "\n".join([*head, *notes, *self.env_lines]) + "\n"

    def _daemonset_patch(self) -> dict | None:
        containers = [c for c in self.containers.values() if len(c) > 1]
        spec: dict = {**self.pod}
        if containers or self.sidecars:
            spec["containers"] = containers + self.sidecars
        if self.volumes:
            spec["volumes"] = self.volumes
        template: dict = {}
        if spec:
            template["spec"] = spec
        if self.annotations:
            template["metadata"] = {"annotations": self.annotations}
        if not template:
            return None
        return {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "cdh-agent"},
                "spec": {"template": template}}

    def _report(self) -> str:
        lines = ["# Moving from the IBM Core Dump Handler", "",
                 f"Written by `cdh migrate`; the base is cdh's `{self.provider}` overlay.", "",
                 "1. `helm uninstall core-dump-handler` and wait until its pods are gone: each runs IBM's "
                 "preStop hook, which restores the node's sysctls and deletes HOST_DIR/cdc (with cdh already "
                 "running on the same HOST_DIR it would delete cdh's composer).",
                 "2. `kubectl apply -k <this directory>`. On a node IBM's hook did not clean, cdh keeps "
                 "IBM's sysctl backups as the originals and moves IBM's files into "
                 "HOST_DIR/ibm-backup-<time>/.",
                 "3. Zips left in IBM's CORE_DIR are uploaded when it is cdh's too; IBM's PersistentVolumes "
                 "(host-volume, core-volume, event-volume) outlive `helm uninstall`: delete them when done.",
                 ""]
        if self.secret:
            lines += ["`s3-secret.env` holds the S3 keys from the values: keep it out of version control.",
                      ""]
        lines += ["## Notes", ""] + [f"- {n}" for n in self.notes] + [""]
        lines += ["## Not carried over", ""] + [f"- `{k}`: {r}" for k, r in self.not_carried]
        return "\n".join(lines) + "\n"
