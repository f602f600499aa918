"""The optional monitoring component (k8s-manifests/components/monitoring): the alerts are valid PromQL
and fire when they should (`promtool test rules`), every metric the alerts and the dashboard read is one
the agent exports, and the PodMonitor scrapes the agent's port. Schema validity: `nox -s manifests`."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from cdh.agent.metrics import Metrics
from tests.manifests import agentspec as spec
from tests.manifests.kustomize import ROOT, find, render
from tests.support.require import require, require_module

TARGET = "examples/monitoring"
HERE = Path(__file__).parent
COMPONENT = ROOT / "components" / "monitoring"
NOT_CDH = {"up"}  # Prometheus' own


@pytest.fixture
def mon(kubectl_present):
    return render(TARGET)


@pytest.fixture
def promtool():
    path = shutil.which("promtool")
    require(path, "promtool not found: apt-get install prometheus (.ci/run installs it)")
    return path


def exported() -> set[str]:
    """Every sample name the agent's /metrics has (counters with _total, histogram series ...)."""
    metrics = Metrics()
    metrics.use_routes({"main": "s3"})  # the agent's start: the upload series of its destinations
    return {s.name for fam in metrics.registry.collect() for s in fam.samples}


def metric_names(expr: str) -> set[str]:
    return set(re.findall(r"\b(cdh_[a-z0-9_]+|up)\b", expr))


def rule_file(mon, tmp_path: Path, annotations: bool = True) -> Path:
    """The PrometheusRule's groups as a Prometheus rule file (JSON is YAML)."""
    spec_ = json.loads(json.dumps(find(mon, "PrometheusRule", "cdh-agent")["spec"]))
    if not annotations:  # the unit tests check labels and timing; `check rules` parses the templates
        for group in spec_["groups"]:
            for rule in group["rules"]:
                rule.pop("annotations", None)
    path = tmp_path / ("rules.yaml" if annotations else "rules-bare.yaml")
    path.write_text(json.dumps(spec_))
    return path


def test_alerts_and_dashboard_read_only_metrics_the_agent_exports(mon):
    have = exported()
    rules = find(mon, "PrometheusRule", "cdh-agent")["spec"]["groups"][0]["rules"]
    dashboard = json.loads((COMPONENT / "cdh-dashboard.json").read_text())
    exprs = [r["expr"] for r in rules] + [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    exprs.append(dashboard["templating"]["list"][1]["query"]["query"])
    used = set().union(*map(metric_names, exprs)) - NOT_CDH
    assert used and not used - have, f"not exported: {sorted(used - have)}"
    # Every state the issue asks an alert for is covered.
    assert {"cdh_uploads_failed_total", "cdh_oldest_pending_zip_age_seconds", "cdh_core_pattern_ours",
            "cdh_composer_failures_total"} <= set().union(*(metric_names(r["expr"]) for r in rules))


def test_alert_rules_pass_promtool(mon, promtool, tmp_path):
    rules = rule_file(mon, tmp_path)
    check = subprocess.run([promtool, "check", "rules", str(rules)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    cases = tmp_path / "alerts.test.yaml"
    bare = rule_file(mon, tmp_path, annotations=False)
    cases.write_text((HERE / "promtool" / "alerts.test.yaml").read_text().replace("RULES", str(bare)))
    test = subprocess.run([promtool, "test", "rules", str(cases)], capture_output=True, text=True)
    assert test.returncode == 0, test.stdout + test.stderr


def test_every_alert_has_a_unit_test_and_says_what_to_do(mon):
    rules = find(mon, "PrometheusRule", "cdh-agent")["spec"]["groups"][0]["rules"]
    tested = set(re.findall(r"alertname: (\w+)", (HERE / "promtool" / "alerts.test.yaml").read_text()))
    assert {r["alert"] for r in rules} == tested
    for r in rules:
        assert r["labels"]["severity"] in ("critical", "warning", "info")
        assert r["annotations"]["summary"] and r["annotations"]["description"]


def test_the_podmonitor_scrapes_the_agents_metrics_port(mon):
    pm = find(mon, "PodMonitor", "cdh-agent")
    ds = spec.daemonset(mon)
    assert pm["metadata"]["namespace"] == ds["metadata"]["namespace"]
    pod_labels = ds["spec"]["template"]["metadata"]["labels"]
    assert pm["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    (endpoint,) = pm["spec"]["podMetricsEndpoints"]
    ports = {p["name"]: p["containerPort"] for p in spec.container(mon)["ports"]}
    assert ports[endpoint["port"]] == spec.settings(mon).metrics_port and endpoint["path"] == "/metrics"
    relabel = endpoint["relabelings"][0]
    assert (relabel["sourceLabels"], relabel["targetLabel"]) == (["__meta_kubernetes_pod_node_name"], "node")


def test_the_dashboard_is_a_grafana_dashboard(mon):
    cm = find(mon, "ConfigMap", "cdh-grafana-dashboard")
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    dashboard = json.loads(cm["data"]["cdh-dashboard.json"])
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids)) and dashboard["uid"] == "cdh-core-dumps"
    assert all(p["datasource"]["uid"] == "${datasource}" and p["targets"] for p in dashboard["panels"])
    cells = set()
    for p in dashboard["panels"]:  # no two panels on one grid cell
        g = p["gridPos"]
        mine = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
        assert not cells & mine, p["title"]
        assert g["x"] + g["w"] <= 24
        cells |= mine


def test_the_schemas_are_strict():
    jsonschema = require_module("jsonschema", "jsonschema is needed (moto[server] brings it)")
    pm = {"apiVersion": "monitoring.coreos.com/v1", "kind": "PodMonitor",
          "metadata": {"name": "x", "namespace": "cdh"},
          "spec": {"selector": {}, "podMetricsEndpoints": [{"port": "metrics", "interval": "30s"}]}}
    schema = json.loads((ROOT / "schemas" / "podmonitor-monitoring-v1.json").read_text())
    jsonschema.validate(pm, schema)
    bad_interval = [{"port": "metrics", "interval": "30 s"}]
    for bad in ({**pm, "spec": {**pm["spec"], "podMetricEndpoints": []}},  # a typo
                {**pm, "spec": {**pm["spec"], "podMetricsEndpoints": bad_interval}}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, schema)
    rule_schema = json.loads((ROOT / "schemas" / "prometheusrule-monitoring-v1.json").read_text())
    both = {"apiVersion": "monitoring.coreos.com/v1", "kind": "PrometheusRule",
            "metadata": {"name": "x", "namespace": "cdh"},
            "spec": {"groups": [{"name": "g", "rules": [{"alert": "A", "record": "b", "expr": "1"}]}]}}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(both, rule_schema)
