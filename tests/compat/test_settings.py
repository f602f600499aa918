"""IBM's settings, as IBM's chart renders them: accepted, every value explained, IBM's meaning kept.

`cdh config` with the environment the chart renders for each of its values files (tests/compat/chart.py):
exit 0, and every variable is named in the output (the setting it became, or a note why not). Then
the two settings that reach outside: ``S3_REGION`` naming a host (an upload to a TLS S3 server on that
address with no endpoint setting) and no bucket with no trigger (cores kept on the node, IBM #48).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.compat.chart import ENVIRONMENTS
from tests.support.agentproc import Proc, base_env, fake_sysctl_root, run_sweep
from tests.support.cli import run_cdh
from tests.support.composer import run_composer
from tests.support.require import require
from tests.support.s3server import ACCESS_KEY, SECRET_KEY, list_keys
from tests.support.zips import make_zip


def config_of(env: dict[str, str]) -> subprocess.CompletedProcess:
    return run_cdh("config", env={"PATH": os.environ["PATH"], **env})


@pytest.mark.parametrize("values", list(ENVIRONMENTS))
def test_every_value_ibms_chart_renders_is_accepted_and_explained(values):
    env = ENVIRONMENTS[values]
    out = config_of(env)
    assert out.returncode == 0, out.stderr
    assert out.stderr == ""
    unexplained = [name for name in env if name not in out.stdout]
    assert unexplained == [], out.stdout


@pytest.mark.parametrize(("values", "lines"), [
    ("values.openshift.yaml", ["CDH_HOST_DIR=/mnt/core-dump-handler  # from HOST_DIR",
                               "CDH_CRI_IMAGE_CMD=images  # from COMP_CRIO_IMAGE_CMD",
                               "CDH_CRI_ENDPOINT_HINT=unix:///run/containerd/containerd.sock  "
                               "# from CRIO_ENDPOINT",
                               "CDH_CRI_ENDPOINT=\n"]),
    ("ci/inotify-manage-store.yaml", [
        "CDH_FILENAME_TEMPLATE={uuid}-dump-{timestamp}-{hostname}-{exe_name}-{pid}-{signal}  # from COMP_",
        "named every zip <uuid>.zip"]),
    ("ci/interval-manage-store.yaml", ["CDH_INTERVAL=60000ms  # from INTERVAL", "CDH_USE_INOTIFY=  # from",
                                       "59000 and more"]),
    ("ci/schedule-no-manage-store.yaml", ["CDH_SCHEDULE=1/60 * * * * *  # from SCHEDULE", "1 = Sunday"]),
    ("values.yaml", ["CDH_SCHEDULE=  # from SCHEDULE",
                     "CDH_COMPOSER_LOG_LEVEL=warning  # from COMP_LOG_LEVEL", "VENDOR is ignored",
                     "EVENT_DIR is ignored", "CDH_S3_ACCESS_KEY=<set>  # from S3_ACCESS_KEY"]),
    ("values.aws.sts.yaml on EKS (IRSA)", [
        "CDH_S3_ACCESS_KEY=\n", "CDH_S3_SECRET_KEY=\n",
        "S3_ACCESS_KEY and S3_SECRET not used: AWS_WEB_IDENTITY_TOKEN_FILE"]),
    ("--set daemonset.interval=3600000", ["CDH_INTERVAL=3600000ms  # from INTERVAL"]),
    ("--set composer.logLength=2000000", ["CDH_LOG_LINES=2000000  # from COMP_LOG_LENGTH"]),
    ("--set daemonset.s3Region=<IBM COS host>", [
        "CDH_S3_ENDPOINT=https://s3.eu-de.cloud-object-storage.appdomain.cloud  # from S3_REGION",
        "CDH_S3_REGION=eu-de  # from S3_REGION", "CDH_S3_ADDRESSING=path  # from S3_REGION"]),
])
def test_what_each_becomes(values, lines):
    out = config_of(ENVIRONMENTS[values]).stdout
    for line in lines:
        assert line in out, out


# ---------------------------------------------------------------- S3_REGION=<host:port>


def ibm_s3(bucket: str, region: str) -> dict[str, str]:
    """IBM's names only: no endpoint setting."""
    return {"S3_BUCKET_NAME": bucket, "S3_REGION": region, "S3_ACCESS_KEY": ACCESS_KEY,
            "S3_SECRET": SECRET_KEY}


def test_s3_region_holding_host_and_port_reaches_a_tls_server_there(tmp_path, tls_s3_server, start_agent):
    server, cert = tls_s3_server
    bucket = server.create_bucket()
    core_dir = tmp_path / "host" / "cores"
    core_dir.mkdir(parents=True, mode=0o700)
    env = base_env(tmp_path, ibm_s3(bucket, f"127.0.0.1:{server.port}"), CDH_S3_CA_BUNDLE=str(cert))
    # the one-shot upload, and the agent
    z = make_zip(core_dir, 3000)
    done = run_sweep(env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert list_keys(server.client(), bucket) == [z.filename]
    agent = start_agent(env)
    agent.wait_event("storage.ok", timeout=60)
    z2 = make_zip(core_dir, 5000)
    agent.wait_event("upload.done", timeout=60)
    assert sorted(list_keys(server.client(), bucket)) == sorted([z.filename, z2.filename])
    start = agent.events("agent.starting")[0]
    assert start["endpoint"] == f"https://127.0.0.1:{server.port}"


def test_a_bad_region_or_endpoint_is_one_line_before_the_node_is_touched(tmp_path, s3_server):
    for bad in ({"S3_REGION": "[::1"}, {"CDH_S3_ENDPOINT": "https://[::1"}):
        env = base_env(tmp_path, {"CDH_S3_BUCKET": "b", **bad})
        sysctl_root = env["CDH_TEST_SYSCTL_ROOT"]
        proc = Proc(["agent"], env, tmp_path / "agent.log")
        rc = proc.wait(60)
        stderr = proc.proc.stderr.read().decode()
        assert rc == 3 and len(stderr.splitlines()) == 1 and "Traceback" not in stderr, stderr
        assert f"{next(iter(bad))}={next(iter(bad.values()))!r} is not valid" in stderr
        with open(os.path.join(sysctl_root, "kernel", "core_pattern")) as f:
            assert f.read().strip() == "core"  # host setup never ran
        assert not (tmp_path / "host" / "cdc").exists()
        fake_sysctl_root(tmp_path / "proc-sys")


def test_no_bucket_and_no_trigger_keeps_cores_on_the_node(tmp_path, start_agent):
    """IBM #48 / the FAQ's own-uploader recipe: useINotify false, no interval, no schedule, no Secret."""
    env = base_env(tmp_path, {}, USE_INOTIFY="false", INTERVAL="", SCHEDULE="")
    agent = start_agent(env)
    agent.wait_event("agent.started", timeout=60)
    (note,) = agent.events("intake.no_trigger")
    assert "IBM #48" in note["action"]
    assert not agent.events("storage.unavailable") and not agent.events("storage.ok")
    core_dir = tmp_path / "host" / "cores"
    z = make_zip(core_dir, 1000)
    agent.signal()
    assert agent.wait(60) == 0
    assert os.path.exists(z.path)  # kept for the user's own uploader
    assert os.path.exists(tmp_path / "host" / "cdc")  # the composer was installed all the same


def test_an_uploader_of_your_own_running_as_another_user_reads_the_zips(tmp_path):
    """IBM's FAQ, "How should I integrate my own uploader?": no trigger, and an uploader of one's own
    that takes a shared flock on each zip (IBM's composer held an exclusive one while writing), then
    reads it. IBM's zips were 0644; cdh's are 0600 in a 0700 CORE_DIR unless CDH_ZIP_FILE_MODE opens
    them. The uploader here runs as nobody, as one deployed on its own may."""
    require(shutil.which("setpriv") and shutil.which("flock"), "setpriv and flock (util-linux) are needed")
    top = Path(tempfile.mkdtemp(prefix="cdh-own-uploader-"))
    try:
        top.chmod(0o755)
        cores = top / "cores"
        each_zip = 'cd "$0" && for f in *.zip; do flock -s -n "$f" unzip -tq "$f" || exit 1; done'
        uploader = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                    "sh", "-c", each_zip, str(cores)]
        for mode, readable in (("", False), ("0644", True)):
            env = {"CDH_CORE_DIR": str(cores), **({"CDH_ZIP_FILE_MODE": mode} if mode else {})}
            r = run_composer(tmp_path / "host", core=os.urandom(1000), env=env, args=[
                "-c=0", "-e=segfaulter", "-p=4", "-s=11", "-t=1718000000", "-h=web-0", "-E=!usr!bin!x"])
            assert r.rc == 0, r.stderr
            done = subprocess.run(uploader, capture_output=True, text=True, timeout=60)
            assert (done.returncode == 0) is readable, done.stdout + done.stderr
            if not readable:
                assert "can't cd" in done.stderr  # CORE_DIR is 0700
                for z in cores.glob("*.zip"):
                    assert z.stat().st_mode & 0o777 == 0o600
                    z.unlink()
        assert "No errors detected" in done.stdout and len(list(cores.glob("*.zip"))) == 1
    finally:
        shutil.rmtree(top)
