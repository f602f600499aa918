"""Kubernetes Event bodies are what the API server accepts; no API server, no Events, one warning."""

from __future__ import annotations

from cdh.agent import k8sevents
from tests.support.apiserver import event_problems

INFO = {"uuid": "0f3a2b1c-aaaa-4bbb-8ccc-123456789abc", "namespace": "shop", "podname": "web-7d4b9c-x2x9q",
        "pod_uid": "2b0c525e-1111-4222-8333-444455556666", "container": "web", "exe": "segfaulter",
        "real_pid": 1, "signal": 11}


def test_event_bodies_pass_the_api_servers_checks():
    cap = k8sevents.captured(INFO, "node-a", "x.zip", 123, 1700000000.25)
    up = k8sevents.uploaded(INFO, "node-a", "s3://b/k/x.zip", "s3", 123, 1700000001.0)
    for event in (cap, up):
        assert event_problems(event, namespace="shop") == []
    assert cap["type"] == "Warning" and cap["reason"] == "CoreDumpCaptured"
    assert "SIGSEGV" in cap["note"] and "container web" in cap["note"]
    assert up["type"] == "Normal" and "s3://b/k/x.zip" in up["note"]
    assert up["metadata"]["annotations"]["cdh.io/destination-kind"] == "s3"
    assert cap["regarding"] == {"apiVersion": "v1", "kind": "Pod", "namespace": "shop",
                                "name": "web-7d4b9c-x2x9q", "uid": INFO["pod_uid"],
                                "fieldPath": "spec.containers{web}"}
    assert cap["eventTime"] == "2023-11-14T22:13:20.250000Z"
    assert cap["metadata"]["name"] != up["metadata"]["name"]


def test_the_captured_event_names_the_cause():
    signed = {**INFO, "signature": "1-0123456789abcdef", "top_frame": "segfaulter!parse_header"}
    cap = k8sevents.captured(signed, "node-a", "x.zip", 123, 0)
    assert event_problems(cap, namespace="shop") == []
    assert ("crashed with signal 11 (SIGSEGV) at segfaulter!parse_header (signature 1-0123456789abcdef); "
            "core dump captured") in cap["note"]
    assert cap["metadata"]["annotations"]["cdh.io/signature"] == "1-0123456789abcdef"
    unsigned = k8sevents.captured(INFO, "node-a", "x.zip", 123, 0)
    assert "signature" not in unsigned["note"]
    assert "cdh.io/signature" not in unsigned["metadata"]["annotations"]


def test_no_event_for_a_crash_outside_a_pod_and_long_names_are_cut():
    assert k8sevents.captured({**INFO, "namespace": None}, "n", "x.zip", 1, 0) is None
    long = k8sevents.captured({**INFO, "podname": "p" * 253, "exe": "e" * 2000}, "n" * 300, "x.zip", 1, 0)
    assert event_problems(long, namespace="shop") == []
    assert len(long["metadata"]["name"]) <= 253 and long["metadata"]["name"].endswith(".captured")


def test_in_cluster_discovery_says_why_not(tmp_path):
    assert "KUBERNETES_SERVICE_HOST" in k8sevents.InCluster.discover({})
    env = {"KUBERNETES_SERVICE_HOST": "fd00::1", "KUBERNETES_SERVICE_PORT": "443",
           k8sevents.TEST_SERVICE_ACCOUNT_VAR: str(tmp_path)}
    assert "token is missing" in k8sevents.InCluster.discover(env)
    (tmp_path / "token").write_text("t")
    (tmp_path / "ca.crt").write_text("c")
    found = k8sevents.InCluster.discover(env)
    assert found.url == "https://[fd00::1]:443"


async def test_an_unusable_ca_bundle_disables_events_with_one_warning(tmp_path):
    import io
    import json

    from cdh.agent.log import Log

    (tmp_path / "token").write_text("t")
    (tmp_path / "ca.crt").write_text("not a certificate")
    out = io.BytesIO()
    poster = k8sevents.EventPoster(Log(stream=out))
    await poster.start({"KUBERNETES_SERVICE_HOST": "10.0.0.1", "KUBERNETES_SERVICE_PORT": "443",
                        k8sevents.TEST_SERVICE_ACCOUNT_VAR: str(tmp_path)})
    (line,) = [json.loads(x) for x in out.getvalue().splitlines()]
    assert line["event"] == "k8s_events.disabled" and "CA bundle" in line["reason"]
    assert not poster.enabled
    poster.post({"metadata": {"namespace": "x", "name": "y"}, "reason": "CoreDumpCaptured"})  # a no-op
    await poster.stop()
