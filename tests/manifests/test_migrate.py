"""`cdh migrate`: IBM Helm values (tests/compat/values/, written for these tests in the shapes of IBM's
provider files and of `helm get values`) become an overlay that renders, on the matching cdh overlay,
and gives the agent IBM's settings with IBM's meaning. Schema validation of the same output: `nox -s
manifests` (tests/manifests/validate.py)."""

from __future__ import annotations

import base64

import pytest

from cdh.agent import configload
from cdh.tools import migrate
from tests.manifests import agentspec as spec
from tests.manifests.kustomize import PROVIDERS, ROOT, find, render
from tests.support.cli import run_cdh

VALUES = ROOT.parent / "tests" / "compat" / "values"
EXPECTED_OVERLAY = {
    "helm-get-values": "custom", "gke-cos": "gke-cos", "openshift": "openshift", "roks": "roks", "eks": "eks",
    "eks-irsa": "eks", "eks-bottlerocket": "eks-bottlerocket", "digitalocean": "digitalocean",
    "minikube": "minikube", "iks": "iks", "own-uploader": "custom",
}


def migrated(tmp_path, name: str):
    out = tmp_path / name
    done = run_cdh("migrate", str(VALUES / f"{name}.yaml"), "-o", str(out))
    assert done.returncode == 0, done.stderr
    return done.stdout, out, render(str(out))


def test_a_broken_values_file_is_one_line(tmp_path):
    (tmp_path / "values.yaml").write_text("daemonset:\n  interval: [60000\n")
    done = run_cdh("migrate", str(tmp_path / "values.yaml"), "-o", str(tmp_path / "out"))
    assert done.returncode == 2 and not (tmp_path / "out").exists()
    assert done.stderr.startswith(f"cdh migrate: {tmp_path / 'values.yaml'}:2:")  # line:column
    assert "not valid YAML" in done.stderr
    assert len(done.stderr.splitlines()) == 1, done.stderr


def test_every_fixture_is_checked():
    assert {p.stem for p in VALUES.glob("*.yaml")} == set(EXPECTED_OVERLAY)


@pytest.mark.parametrize("name", sorted(EXPECTED_OVERLAY))
def test_the_overlay_renders_on_the_providers_and_the_agent_can_start(kubectl_present, tmp_path, name):
    stdout, out, objs = migrated(tmp_path, name)
    assert stdout.startswith(f"overlay: {EXPECTED_OVERLAY[name]} ")
    assert "resources:\n- ../" in (out / "kustomization.yaml").read_text()
    for container in ("host", "agent"):  # the host half and the uploader: the same node, the same view
        settings = spec.settings(objs, container)  # environment + cdh.env: every value valid
        unknown = [u for v in spec.container(objs, container).get("env", [])
                   if (u := spec.unknown_name(v["name"])) and v["name"] != "HTTPS_PROXY"]
        assert unknown == []
        mounts = spec.host_mounts(objs, container)
        assert all(inside == host for inside, host in mounts.items())
        assert {settings.host_dir, settings.core_dir} <= set(mounts)
        assert settings.core_dir == spec.settings(objs, "host").core_dir
    if name != "own-uploader":
        assert "helm uninstall" in (out / "README.md").read_text()


def test_a_whole_installation_carries_over(kubectl_present, tmp_path):
    stdout, out, objs = migrated(tmp_path, "helm-get-values")
    s = spec.settings(objs)
    assert s.filename_template == "{uuid}-{namespace}-{podname}-{exe_name}"  # IBM's {{x}} form, as meant
    assert (s.log_lines, s.composer_timeout_s, s.compression) == (2000, 300.0, "none")
    assert s.pod_selector == ("example.com/core-dumps", None) and s.core_events is True
    assert s.event_file_mode == 0o644 and s.zip_file_mode == 0o600  # IBM's events were 0644; a trigger is set
    assert (s.interval_s, s.use_inotify) == (3600.0, False)
    assert (s.s3_bucket, s.s3_region, s.s3_addressing) == ("cluster-7-cores", "us-south", "path")
    assert s.s3_endpoint == "https://s3.us-south.cloud-object-storage.appdomain.cloud"
    assert (s.host_dir, s.core_dir, s.event_dir) == (
        "/data/core-dump-handler", "/data/core-dump-handler/cores", "/data/events")
    for container in ("host", "agent"):
        assert spec.settings(objs, container).event_dir == "/data/events"
        assert {"/data/core-dump-handler", "/data/core-dump-handler/cores", "/data/core-dump-handler/state",
                "/data/events"} == set(spec.host_mounts(objs, container))
    pod = spec.pod_spec(objs)
    assert pod["nodeSelector"] == {"kubernetes.io/os": "linux", "example.com/pool": "apps"}
    assert pod["priorityClassName"] == "system-node-critical"
    assert pod["imagePullSecrets"] == [{"name": "registry-creds"}]
    assert pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    annotations = spec.daemonset(objs)["spec"]["template"]["metadata"]["annotations"]
    assert annotations["example.com/team"] == "platform"
    (shipper,) = [c for c in pod["containers"] if c["name"] == "event-shipper"]
    assert shipper["volumeMounts"] == [{"name": "event-dir", "mountPath": "/data/events"}]
    agent = spec.container(objs)
    assert {"configMapRef": {"name": "cluster-7-proxy"}} in agent["envFrom"]
    assert any(v["name"] == "HTTPS_PROXY" and "valueFrom" in v for v in agent["env"])
    secret = find(objs, "Secret", "cdh-s3")["data"]
    assert base64.b64decode(secret["access-key"]) == b"AKIAEXAMPLEMIGRATE01"
    assert (out / "s3-secret.env").stat().st_mode & 0o777 == 0o600
    assert "not carried over: tolerations: cdh's agent tolerates every taint" in stdout
    assert "not carried over: replicaCount:" in stdout


def test_iam_roles(kubectl_present, tmp_path):
    _, _, objs = migrated(tmp_path, "eks-irsa")
    annotations = find(objs, "ServiceAccount", "cdh-agent")["metadata"].get("annotations", {})
    assert annotations[migrate.ROLE_ARN] == "arn:aws:iam::210987654321:role/cluster-9-core-dumps"
    _, _, objs = migrated(tmp_path, "eks")  # no role in IBM's values: not the overlay's example one either
    annotations = find(objs, "ServiceAccount", "cdh-agent")["metadata"].get("annotations") or {}
    assert migrate.ROLE_ARN not in annotations
    # a role and keys: IBM's agent used the role (the keys went unused), so the keys are not carried over
    irsa = (VALUES / "eks-irsa.yaml").read_text().replace(
        "manageStoreSecret: false", "manageStoreSecret: true\n  s3AccessKey: AKIAUNUSED\n  s3Secret: unused")
    (tmp_path / "keys-and-role.yaml").write_text(irsa)
    done = run_cdh("migrate", str(tmp_path / "keys-and-role.yaml"), "-o", str(tmp_path / "keys-and-role"))
    assert done.returncode == 0, done.stderr
    objs = render(str(tmp_path / "keys-and-role"))
    assert "AKIAUNUSED" not in str(objs) and not (tmp_path / "keys-and-role" / "s3-secret.env").exists()
    assert "an IAM role (IRSA) is set" in done.stdout


def test_gke_cos_keeps_cdhs_own_directory(kubectl_present, tmp_path):
    _, out, objs = migrated(tmp_path, "gke-cos")
    s = spec.settings(objs)
    assert (s.host_dir, s.core_dir) == ("/home/kubernetes/bin/cdh", "/home/kubernetes/cores")
    assert s.s3_region == "auto"
    assert "HOST_DIR /home/kubernetes/bin becomes /home/kubernetes/bin/cdh" in (out / "cdh.env").read_text()


def test_the_own_uploader_recipe_needs_no_bucket(kubectl_present, tmp_path):
    _, _, objs = migrated(tmp_path, "own-uploader")
    s = spec.settings(objs)
    assert not s.use_inotify and not s.s3_bucket
    assert s.zip_file_mode == 0o644  # IBM's zips were 0644: an uploader of another user reads them
    configload.check(s)  # IBM #48: the agent starts, keeps the cores on the node


@pytest.mark.parametrize("provider", PROVIDERS)
def test_migrate_knows_each_overlays_directories(kubectl_present, provider):
    objs = render(f"overlays/{provider}")
    s = spec.settings(objs)
    default = (migrate.DEFAULT_HOST_DIR, migrate.DEFAULT_HOST_DIR + "/cores")
    host, core = migrate.OVERLAY_DIRS.get(provider, default)
    assert (s.host_dir, s.core_dir) == (host, core)
    volumes = {v["name"] for v in spec.pod_spec(objs)["volumes"] if "hostPath" in v}
    assert set(migrate.DIR_VOLUMES) <= volumes
    assert {c["name"] for c in spec.pod_spec(objs)["containers"]} == set(migrate.CONTAINERS)
    assert provider in migrate.PROVIDERS
