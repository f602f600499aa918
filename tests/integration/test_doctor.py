"""`cdh doctor` against a healthy node and broken ones: a host set up by the agent's own install code
(a fake /proc/sys, never this machine's), the crictl stub, a real S3 server process; the real command.
The real kernel: tests/kernel/test_ops_kernel.py."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from cdh import config
from cdh.agent import host
from cdh.sysctl import Sysctl
from tests.support.agentproc import base_env
from tests.support.cli import run_cdh
from tests.support.cri import FakeNode
from tests.support.require import require
from tests.support.s3server import free_port, list_keys

ALL = ["core_pattern", "core_pipe_limit", "composer", "runtime", "composer_env", "capture", "cri",
       "core_dir", "bucket"]
NO_SOCKET = "unix:///nonexistent/cri.sock"  # no CRI socket answers: the composer (and doctor) use crictl


@pytest.fixture
def node_env(tmp_path, s3_server, bucket):
    """A node as the agent leaves it: composer, composer.env, sysctls (fake), crictl (stub)."""
    env = base_env(tmp_path, s3_server.agent_env(bucket), CDH_CRI_ENDPOINT=NO_SOCKET)
    fake = FakeNode()
    fake.add_container(fake.add_pod("web-0", namespace="shop"), "web")
    fake.install(Path(env["CDH_HOST_DIR"]))  # HOST_DIR is first in the default CDH_CRICTL_PATH
    settings = config.load([env])
    host.install(settings, Sysctl(env["CDH_TEST_SYSCTL_ROOT"]))
    return env


def doctor(env: dict[str, str], *args: str) -> tuple[int, dict[str, dict]]:
    done = run_cdh("doctor", "--json", *args, env=env)
    assert done.returncode in (0, 1), done.stderr
    report = json.loads(done.stdout)
    assert report["ok"] == (done.returncode == 0)
    return done.returncode, {c["name"]: c for c in report["checks"]}


def statuses(checks: dict[str, dict]) -> dict[str, str]:
    return {name: c["status"] for name, c in checks.items()}


def only_failing(checks: dict[str, dict], *names: str) -> None:
    failing = sorted(n for n, c in checks.items() if c["status"] == "fail")
    assert failing == sorted(names), {n: checks[n]["detail"] for n in failing}
    assert all(checks[n]["hint"] for n in names), "every failure says how to fix it"


def sysctl(env, name: str) -> Path:
    return Path(env["CDH_TEST_SYSCTL_ROOT"], *name.split("."))


def test_a_healthy_node_passes(node_env, s3, bucket):
    rc, checks = doctor(node_env)
    assert rc == 0 and list(checks) == ALL
    assert statuses(checks) == {**dict.fromkeys(ALL, "pass"), "runtime": "skip"}  # a development launcher
    assert "nonexistent/cri.sock" in checks["cri"]["detail"] and "1 pods" in checks["cri"]["detail"]
    assert "written, read back, deleted" in checks["bucket"]["detail"]
    assert list_keys(s3, bucket) == []  # the probe object is gone
    assert not list(Path(node_env["CDH_HOST_DIR"]).glob(".doctor-*"))  # and the dry run's directory
    assert not (Path(node_env["CDH_HOST_DIR"]) / "composer.log").exists()  # the dry run logs privately
    text = run_cdh("doctor", env=node_env)
    lines = text.stdout.splitlines()
    assert text.returncode == 0 and len(lines) == len(ALL) + 1
    assert lines[-1] == "8 passed, 0 failed, 1 skipped"
    assert all(line.split()[0] in ("PASS", "SKIP") for line in lines[:-1])


def test_core_pattern_not_ours(node_env):
    sysctl(node_env, "kernel.core_pattern").write_text("|/usr/share/apport/apport -p%p -s%s -c%c\n")
    rc, checks = doctor(node_env)
    assert rc == 1
    only_failing(checks, "core_pattern")
    assert "apport" in checks["core_pattern"]["detail"]


def test_pipe_limit_zero(node_env):
    sysctl(node_env, "kernel.core_pipe_limit").write_text("0\n")
    rc, checks = doctor(node_env)
    assert rc == 1
    only_failing(checks, "core_pipe_limit")
    assert "core_pipe_limit" in checks["core_pipe_limit"]["hint"]


def test_missing_composer(node_env):
    os.unlink(Path(node_env["CDH_HOST_DIR"]) / "cdc")
    rc, checks = doctor(node_env)
    assert rc == 1
    only_failing(checks, "core_pattern", "composer")
    assert "missing" in checks["core_pattern"]["detail"] and checks["capture"]["status"] == "skip"


def test_composer_that_cannot_run(node_env):
    cdc = Path(node_env["CDH_HOST_DIR"]) / "cdc"
    cdc.write_text("#!/bin/sh\necho 'cannot import cdh' >&2\nexit 1\n")
    rc, checks = doctor(node_env)
    assert rc == 1
    only_failing(checks, "capture")
    assert "cannot import cdh" in checks["capture"]["detail"]


def test_invalid_composer_env(node_env):
    (Path(node_env["CDH_HOST_DIR"]) / "composer.env").write_text('CDH_COMPRESSION="gzip"\n')
    rc, checks = doctor(node_env)
    assert rc == 1
    only_failing(checks, "composer_env", "capture")  # the composer logs the bad value and uses its default
    assert "CDH_COMPRESSION" in checks["composer_env"]["detail"]


def test_unreachable_bucket(node_env):
    rc, checks = doctor({**node_env, "CDH_S3_ENDPOINT": f"http://127.0.0.1:{free_port()}"})
    assert rc == 1
    only_failing(checks, "bucket")
    assert "EndpointConnectionError" in checks["bucket"]["detail"]


def test_wrong_keys(node_env, fault_proxy, s3_server):
    fault_proxy.refuse_key("AKIAWRONGWRONGWRONG0", s3_server)
    rc, checks = doctor({**node_env, "CDH_S3_ENDPOINT": fault_proxy.url,
                         "CDH_S3_ACCESS_KEY": "AKIAWRONGWRONGWRONG0"})
    assert rc == 1
    only_failing(checks, "bucket")
    assert "InvalidAccessKeyId" in checks["bucket"]["detail"] and "Secret" in checks["bucket"]["hint"]


def test_an_encryption_the_store_cannot_apply_is_named(node_env, fault_proxy, s3_server):
    key_id = fault_proxy.fail_encryption(s3_server)
    rc, checks = doctor({**node_env, "CDH_S3_ENDPOINT": fault_proxy.url, "CDH_S3_SSE": "aws:kms",
                         "CDH_S3_SSE_KMS_KEY_ID": key_id})
    assert rc == 1
    only_failing(checks, "bucket")
    assert "InternalError" in checks["bucket"]["detail"]
    assert "cannot apply this encryption" in checks["bucket"]["detail"]
    assert "CDH_S3_SSE" in checks["bucket"]["hint"]


def test_no_bucket_configured_is_skipped(node_env):
    env = {k: v for k, v in node_env.items() if k != "CDH_S3_BUCKET"}
    rc, checks = doctor(env)
    assert rc == 0 and checks["bucket"]["status"] == "skip"


def test_crictl_that_fails(node_env):
    stub = Path(node_env["CDH_HOST_DIR"]) / "crictl"
    stub.write_text("#!/bin/sh\n"
                    "echo 'time=\"x\" level=fatal msg=\"connect: connection refused\"' >&2\nexit 1\n")
    rc, checks = doctor(node_env)
    assert rc == 1
    only_failing(checks, "cri")
    assert "connection refused" in checks["cri"]["detail"]


@pytest.fixture
def full_disk(tmp_path):
    """A 1 MiB tmpfs, filled (root only: required, tests/support/require.py)."""
    mnt = tmp_path / "full"
    mnt.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,mode=0700", "tmpfs", str(mnt)],
                          capture_output=True)
    require(done.returncode == 0, f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        with open(mnt / "filler", "wb") as f:
            try:
                f.write(b"\0" * (2 << 20))
            except OSError:
                pass
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], check=True)


def test_full_core_dir(node_env, full_disk):
    rc, checks = doctor({**node_env, "CDH_CORE_DIR": str(full_disk)})
    assert rc == 1
    only_failing(checks, "core_dir")
    assert "free of" in checks["core_dir"]["detail"]


def test_a_node_seen_from_elsewhere_with_host_root(node_env, tmp_path):
    """kubectl debug node mounts the node's / at /host: paths resolve under it; cdc, crictl run chrooted."""
    root = tmp_path / "host-root"
    root.mkdir()
    done = subprocess.run(["mount", "--bind", "/", str(root)], capture_output=True)
    require(done.returncode == 0, f"cannot bind-mount / here: {done.stderr.decode().strip()}")
    # The crictl stub reads /proc, which a plain bind of / leaves out: a crictl of two lines instead.
    (Path(node_env["CDH_HOST_DIR"]) / "crictl").write_text("#!/bin/sh\necho '{\"items\": [{}, {}]}'\n")
    try:
        env = {**node_env, "CDH_TEST_SYSCTL_ROOT": str(root) + node_env["CDH_TEST_SYSCTL_ROOT"]}
        rc, checks = doctor(env, "--host-root", str(root))
        assert rc == 0, {n: c["detail"] for n, c in checks.items() if c["status"] == "fail"}
        assert "2 pods" in checks["cri"]["detail"] and checks["capture"]["status"] == "pass"
        os.unlink(Path(node_env["CDH_HOST_DIR"]) / "cdc")  # seen through the mount, too
        rc, checks = doctor(env, "--host-root", str(root))
        assert rc == 1 and checks["composer"]["status"] == "fail"
    finally:
        subprocess.run(["umount", str(root)], check=True)


def test_the_bucket_check_on_every_kind(node_env, store):
    env = {k: v for k, v in node_env.items() if not k.startswith("CDH_S3_")} | store.agent_env()
    rc, checks = doctor(env)
    assert rc == 0 and checks["bucket"]["status"] == "pass", checks["bucket"]
    assert checks["bucket"]["detail"].startswith(f"{store.kind}://{store.bucket}/cdh-doctor/")
    assert checks["bucket"]["detail"].endswith("written, read back, deleted")
    assert list_keys(store.client, store.bucket) == []


@pytest.mark.parametrize("store", ["azblob"], indirect=True)
def test_a_wrong_azure_key(node_env, store):
    import base64

    env = {k: v for k, v in node_env.items() if not k.startswith("CDH_S3_")}
    wrong = base64.b64encode(b"x" * 64).decode()
    env.update(CDH_DESTINATION=f"azblob://{store.bucket}",
               CDH_AZURE_CONNECTION_STRING=store.server.connection_string(key=wrong))
    rc, checks = doctor(env)
    assert rc == 1
    only_failing(checks, "bucket")
    assert "AuthorizationFailure" in checks["bucket"]["detail"] and wrong not in json.dumps(checks)
