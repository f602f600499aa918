"""Operations with the real kernel: a process crashes in a kubelet-shaped cgroup; the agent (which set
kernel.core_pattern itself) uploads the zip, relays the composer's lines, counts the capture, posts the
Events on the pod; `cdh doctor` passes; then core_pattern is changed behind the agent's back and the
readiness probe, the metric and the doctor all say so."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.support.agentproc import Proc, base_env, wait_until
from tests.support.apiserver import FakeApiServer
from tests.support.cgroups import make_container_cgroup, remove_cgroups
from tests.support.cli import run_cdh
from tests.support.crashes import compile_program
from tests.support.cri import FakeNode
from tests.support.s3server import free_port, list_keys
from tests.support.scrape import probe, scrape

pytestmark = pytest.mark.kernel


def core_pattern() -> str:
    return Path("/proc/sys/kernel/core_pattern").read_text().rstrip("\n")


@pytest.fixture
def short_host_dir():
    d = Path(tempfile.mkdtemp(prefix="cdhk-", dir="/tmp"))  # core_pattern holds 127 bytes
    yield d
    shutil.rmtree(d, ignore_errors=True)


def test_a_real_crash_seen_by_metrics_events_logs_probes_and_doctor(kernel, s3_server, bucket, s3, tmp_path,
                                                                   short_host_dir, image_runtime):
    node = FakeNode()
    shop = node.add_pod("api-0", namespace="shop")
    app = node.add_container(shop, "server", logs=["listening on :8080"])
    node.install(short_host_dir)  # HOST_DIR/crictl: first in the default CDH_CRICTL_PATH
    binary = compile_program("segv_regs", tmp_path)
    port = free_port()
    with FakeApiServer(tmp_path / "api") as api:
        env = {k: v for k, v in base_env(tmp_path, s3_server.agent_env(bucket)).items()
               if k != "CDH_TEST_SYSCTL_ROOT"}  # this time the machine's own sysctls
        env.update({"CDH_HOST_DIR": str(short_host_dir), "CDH_RUNTIME_DIR": str(image_runtime),
                    "CDH_METRICS_PORT": str(port), "CDH_CHECK_INTERVAL": "200ms", "CDH_K8S_EVENTS": "true",
                    "CDH_UNINSTALL_ON_STOP": "true", **api.agent_env()})
        agent = Proc(["agent"], env, tmp_path / "agent.log")
        try:
            agent.wait_event("agent.started")
            assert core_pattern().startswith(f"|{short_host_dir}/cdc ")
            crash_in_pod(binary, shop, app["id"])
            (done,) = agent.wait_event("upload.done", timeout=60)
            (relayed,) = agent.wait_event("compose.done")
            assert relayed["component"] == "composer"
            pod = (relayed["namespace"], relayed["podname"], relayed["container"])
            assert pod == ("shop", "api-0", "server")
            assert list_keys(s3, bucket) == [done["key"]]
            m = scrape(port)
            assert m.value("cdh_cores_captured_total") == 1
            assert m.value("cdh_uploads_succeeded_total", route="main", kind="s3") == 1
            assert m.value("cdh_core_bytes_captured_total") == relayed["core_size"] > 0
            wait_until(lambda: len(api.events) == 2, what="the pod's Events")
            assert [e["reason"] for e in api.events] == ["CoreDumpCaptured", "CoreDumpUploaded"]
            assert all(e["regarding"]["uid"] == shop["metadata"]["uid"] for e in api.events)

            report = doctor(env)
            assert report["ok"], report
            assert {c["name"]: c["status"] for c in report["checks"]}["runtime"] == "pass"  # the bundled one

            Path("/proc/sys/kernel/core_pattern").write_text("core.%p")  # someone else's setting
            agent.wait_event("host.core_pattern_changed")
            status, body = probe(port, "/readyz")
            assert status == 503 and body["checks"]["core_pattern"] is False
            assert scrape(port).value("cdh_core_pattern_ours") == 0
            report = doctor(env)
            failed = [c["name"] for c in report["checks"] if c["status"] == "fail"]
            assert not report["ok"] and failed == ["core_pattern"]
            agent.signal(signal.SIGTERM)
            assert agent.wait(60) == 0
        finally:
            agent.stop()
    assert core_pattern() == "core.%p"  # the agent's uninstall leaves a pattern that is not its own


def crash_in_pod(binary: Path, pod: dict, container_id: str) -> None:
    made = make_container_cgroup(pod, container_id)
    leaf = made[-1]

    def enter_cgroup():
        (leaf / "cgroup.procs").write_text(str(os.getpid()))

    try:
        proc = subprocess.run([str(binary)], capture_output=True, preexec_fn=enter_cgroup, timeout=120)
        assert proc.returncode == -signal.SIGSEGV
    finally:
        wait_until(lambda: not (leaf / "cgroup.procs").read_text().strip(), what="an empty cgroup")
        remove_cgroups(made)


def doctor(env: dict[str, str]) -> dict:
    done = run_cdh("doctor", "--json", env=env)
    assert done.returncode in (0, 1), done.stderr
    return json.loads(done.stdout)
