"""The multi-tenant example (k8s-manifests/examples/multi-tenant): its routes file is one the agent
takes, with each route's credentials where the pod mounts that route's Secret, and each team may read
its own route's Secret and nothing else of cdh's. Schema validity: `nox -s manifests`."""

from __future__ import annotations

import fnmatch
import os

import pytest

from cdh import routes
from tests.manifests import agentspec as spec
from tests.manifests.kustomize import find, render

TARGET = "examples/multi-tenant"
TEAMS = ("team-a", "team-b")


@pytest.fixture
def mt(kubectl_present):
    return render(TARGET)


def mounts(objs) -> dict[str, dict]:
    """mountPath -> the pod volume mounted there."""
    volumes = {v["name"]: v for v in spec.pod_spec(objs)["volumes"]}
    return {m["mountPath"]: volumes[m["name"]] for m in spec.container(objs)["volumeMounts"]}


def routes_text(objs, settings) -> str:
    directory, key = os.path.split(settings.routes_file)
    volume = mounts(objs)[directory]
    return find(objs, "ConfigMap", volume["configMap"]["name"])["data"][key]


def route_secrets(objs, text: str) -> dict[str, dict]:
    """mountPath -> volume of each Secret the routes file names as a route's credentials."""
    return {path: v for path, v in mounts(objs).items() if "secret" in v and f"credentials: {path}\n" in text}


def test_the_routes_file_is_one_the_agent_takes_with_the_secrets_it_mounts(mt, tmp_path):
    settings = spec.settings(mt)
    text = routes_text(mt, settings)
    # Lay each Secret out as the kubelet mounts it, under tmp_path, and read the file as the agent does.
    for path, volume in route_secrets(mt, text).items():
        secret = find(mt, "Secret", volume["secret"]["secretName"])
        here = tmp_path / path.lstrip("/")
        here.mkdir(parents=True)
        for key, value in secret["stringData"].items():
            (here / key).write_text(value)
        text = text.replace(f"credentials: {path}\n", f"credentials: {here}\n")
    table = routes.parse(text, settings.routes_file)
    assert [r.name for r in table.routes] == list(TEAMS)
    assert all(r.credentials is not None and str(tmp_path) in r.credentials.directory for r in table.routes)
    assert sum(r.encrypted for r in table.routes) == 1, "one route encrypts to its team"
    assert (table.default, table.unknown) == ("main", "keep")
    assert settings.s3_bucket, "default: main needs the main bucket"
    namespaces = [o["metadata"]["name"] for o in mt if o["kind"] == "Namespace"]
    for team in TEAMS:
        assert team in namespaces and table.choose(team).name == team
        others = [p for r in table.routes if r.name != team for p in r.namespaces]
        assert not any(fnmatch.fnmatchcase(team, p) for p in others)


def test_each_team_reads_its_own_secret_and_nothing_else_of_cdhs(mt):
    namespace = spec.daemonset(mt)["metadata"]["namespace"]
    bindings = [o for o in mt if o["kind"] == "RoleBinding"]
    for team in TEAMS:
        (binding,) = [b for b in bindings if {"kind": "Group", "name": team,
                                             "apiGroup": "rbac.authorization.k8s.io"} in b["subjects"]]
        assert binding["metadata"]["namespace"] == namespace and len(binding["subjects"]) == 1
        role = find(mt, "Role", binding["roleRef"]["name"])
        assert binding["roleRef"]["kind"] == "Role" and role["metadata"]["namespace"] == namespace
        assert role["rules"] == [{"apiGroups": [""], "resources": ["secrets"],
                                  "resourceNames": [f"cdh-route-{team}"], "verbs": ["get"]}]
        secret = find(mt, "Secret", f"cdh-route-{team}")
        assert secret["metadata"]["namespace"] == namespace
    assert not [o for o in mt if o["kind"] == "ClusterRoleBinding" and any(
        s.get("kind") == "Group" for s in o["subjects"])], "no team gets anything cluster-wide"
    # The agent itself still only posts Events.
    granted = {b["roleRef"]["name"] for b in mt if b["kind"] in ("RoleBinding", "ClusterRoleBinding")
               and any(s.get("kind") == "ServiceAccount" for s in b["subjects"])}
    assert granted == {"cdh-agent-events"}


def test_route_secrets_and_the_routes_file_are_read_only_mounts_of_the_uploader_only(mt):
    settings = spec.settings(mt)
    secrets = route_secrets(mt, routes_text(mt, settings))
    assert len(secrets) == len(TEAMS)
    assert all(v["secret"]["defaultMode"] == 0o400 for v in secrets.values())
    ours = {*secrets, os.path.dirname(settings.routes_file)}
    agent = {m["mountPath"]: m for m in spec.container(mt)["volumeMounts"]}
    assert all(agent[p].get("readOnly") for p in ours)
    others = [c for c in spec.pod_spec(mt)["containers"] if c["name"] != "agent"]
    assert not [m for c in others for m in c["volumeMounts"] if m["mountPath"] in ours], \
        "only the uploader holds the routes' keys (the privileged host container does not)"
