"""Kubernetes Events from a real agent to a stand-in API server that checks each request as
kube-apiserver would (tests/support/apiserver.py): path, verb, bearer token, content type, body."""

from __future__ import annotations

import signal

import pytest

from tests.support.agentproc import wait_until
from tests.support.apiserver import FakeApiServer
from tests.support.s3server import free_port
from tests.support.scrape import scrape
from tests.support.zips import make_zip, zips_left

POD = {"namespace": "shop", "podname": "web-7d4b9c-x2x9q", "pod_uid": "5e0c7f1a-1111-4222-8333-444455556666",
       "container": "web"}


@pytest.fixture
def api(tmp_path):
    with FakeApiServer(tmp_path / "api") as server:
        yield server


def events_env(agent_env, api, **extra) -> dict[str, str]:
    return {**agent_env, "CDH_K8S_EVENTS": "true", **api.agent_env(), **extra}



def warnings(agent) -> list[dict]:
    return [e for e in agent.events("k8s_event.result") if e["level"] == "warning"]


def test_captured_then_uploaded_on_the_crashed_pod(agent_env, start_agent, core_dir, api, s3_server, bucket):
    port = free_port()
    agent = start_agent(events_env(agent_env, api, CDH_METRICS_PORT=str(port)))
    agent.wait_event("k8s_events.enabled")
    agent.wait_event("agent.started")
    z = make_zip(core_dir, 3000, **POD, signature="1-9e18378b020e987f", top_frame="web!handle_request")
    wait_until(lambda: len(api.events) == 2, what="two Events")
    captured, uploaded = api.events
    assert [captured["reason"], uploaded["reason"]] == ["CoreDumpCaptured", "CoreDumpUploaded"]
    for e in api.events:
        assert e["metadata"]["namespace"] == "shop"
        assert e["regarding"] == {"apiVersion": "v1", "kind": "Pod", "namespace": "shop",
                                  "name": POD["podname"], "uid": POD["pod_uid"],
                                  "fieldPath": "spec.containers{web}"}
        assert e["reportingController"] == "cdh-agent" and e["reportingInstance"] == "cdh-agent-node-a"
        assert e["metadata"]["annotations"]["cdh.io/uuid"] == z.info["uuid"]
    assert captured["type"] == "Warning" and z.filename in captured["note"] and "SIGSEGV" in captured["note"]
    # the crash's cause: in the note, as an annotation to select by, and in the log line of its upload
    assert "at web!handle_request (signature 1-9e18378b020e987f)" in captured["note"]
    assert captured["metadata"]["annotations"]["cdh.io/signature"] == "1-9e18378b020e987f"
    (done,) = agent.events("upload.done")
    assert (done["signature"], done["top_frame"]) == ("1-9e18378b020e987f", "web!handle_request")
    url = f"{s3_server.url}/{bucket}/{z.filename}"
    assert uploaded["type"] == "Normal" and url in uploaded["note"]
    assert uploaded["metadata"]["annotations"]["cdh.io/object-url"] == url
    assert {(r["method"], r["status"]) for r in api.requests} == {("POST", 201)}
    m = scrape(port)
    assert m.value("cdh_k8s_events_total", reason="CoreDumpCaptured", result="posted") == 1
    assert m.value("cdh_k8s_events_total", reason="CoreDumpUploaded", result="posted") == 1

    # The kubelet rotates the projected token; the old one stops working. The next core still gets its Events.
    api.rotate_token()
    make_zip(core_dir, 100, **{**POD, "podname": "web-7d4b9c-abcde", "pod_uid": None})
    wait_until(lambda: len(api.events) == 4, what="Events with the new token")
    assert {(r["method"], r["status"]) for r in api.requests} == {("POST", 201)}
    assert "uid" not in api.events[2]["regarding"]

    # A crash outside any pod (a host process) has nobody to tell: uploaded, no Event.
    make_zip(core_dir, 100, namespace=None, podname=None, container=None)
    agent.wait_event("upload.done", count=3)
    assert len(api.events) == 4 and not warnings(agent)


def test_no_api_server_costs_one_warning(agent_env, start_agent, core_dir):
    agent = start_agent({**agent_env, "CDH_K8S_EVENTS": "true"})  # not in a pod: no KUBERNETES_SERVICE_HOST
    (disabled,) = agent.wait_event("k8s_events.disabled")
    assert "KUBERNETES_SERVICE_HOST" in disabled["reason"]
    for _ in range(3):
        make_zip(core_dir, 100, **POD)
    agent.wait_event("upload.done", count=3)
    assert [e["level"] for e in agent.lines() if e["event"].startswith("k8s_event")] == ["warning"]


def test_an_api_server_that_does_not_answer_costs_one_warning_and_no_upload(agent_env, start_agent, core_dir,
                                                                          api):
    env = events_env(agent_env, api, KUBERNETES_SERVICE_PORT=str(free_port()))  # nobody listens there
    agent = start_agent(env)
    agent.wait_event("agent.started")
    for _ in range(3):
        make_zip(core_dir, 100, **POD)
    agent.wait_event("upload.done", count=3)
    wait_until(lambda: warnings(agent), what="the warning")
    (warned,) = warnings(agent)
    assert warned["why"] == "unreachable" and "debug" in warned["then"]
    assert zips_left(core_dir) == []


def test_forbidden_then_granted(agent_env, start_agent, core_dir, api):
    api.forbid = True  # the ClusterRole is missing
    agent = start_agent({**events_env(agent_env, api), "CDH_LOG_LEVEL": "debug"})
    agent.wait_event("agent.started")
    make_zip(core_dir, 100, **POD)
    agent.wait_event("upload.done")
    wait_until(lambda: len(agent.events("k8s_event.result")) >= 2, what="both Events tried")
    (warned,) = warnings(agent)
    assert warned["why"] == "forbidden" and "cannot create resource" in warned["error"]
    api.forbid = False  # RBAC applied
    make_zip(core_dir, 100, **{**POD, "podname": "web-2"})
    wait_until(lambda: len(api.events) == 2, what="Events once allowed")
    agent.wait_event("k8s_events.ok")


def test_a_restart_does_not_duplicate_events(agent_env, start_agent, core_dir, api, bucket):
    first = start_agent(events_env(agent_env, api, CDH_S3_BUCKET="cdh-no-such-bucket"))
    make_zip(core_dir, 100, **POD)
    first.wait_event("upload.denied")
    wait_until(lambda: len(api.events) == 1, what="CoreDumpCaptured")
    first.signal(signal.SIGTERM)
    assert first.wait(30) == 0
    second = start_agent(events_env(agent_env, api))
    second.wait_event("upload.done")
    wait_until(lambda: len(api.events) == 2, what="CoreDumpUploaded")
    assert [e["reason"] for e in api.events] == ["CoreDumpCaptured", "CoreDumpUploaded"]
    assert [r["status"] for r in api.requests] == [201, 409, 201]  # the second Captured: already there
    assert not warnings(second)
