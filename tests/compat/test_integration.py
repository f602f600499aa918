"""IBM's integration checks (its integration/run-ibm.sh), rewritten for cdh on the real kernel.

IBM's script installs the chart, crashes a pod (quay.io/icdh/segfaulter), fetches the newest object
from the bucket, unpacks it and checks four things: dump-info's node_hostname is not empty, the log
has 500 lines, image-info's repoTags[0] is the crashed image, and the unpacked directory holds 8
files (the zip and its 7 entries). Here: the agent configured with the chart's environment (IBM's
names, S3_REGION naming the store with its scheme, as IBM's script does), a real process crashing
in a kubelet-shaped cgroup of a pod the crictl stub knows, the object fetched from a real S3 server.
cdh adds the crasher's /proc files (``<name>-proc/``, a ninth entry) unless CDH_PROC_FILES=false: the
run below sets it, as an IBM consumer counting entries would.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import tempfile
import zipfile
from pathlib import Path

import pytest

from tests.compat.chart import rendered
from tests.support.agentproc import Proc
from tests.support.cgroups import make_container_cgroup, remove_cgroups
from tests.support.crashes import compile_program
from tests.support.cri import FakeNode
from tests.support.require import require
from tests.support.s3server import ACCESS_KEY, SECRET_KEY

IMAGE = "registry.example.com/demo/segfaulter:latest"


@pytest.mark.kernel
def test_ibms_integration_checks(kernel, s3_server, bucket, s3, tmp_path):
    require(shutil.which("gcc"), "gcc is needed to build the crasher (.ci/run installs it)")
    host = Path(tempfile.mkdtemp(prefix="cdhc-", dir="/tmp"))  # core_pattern holds 127 bytes
    node = FakeNode()
    pod = node.add_pod("segfaulter", labels={"run": "segfaulter"})
    app = node.add_container(pod, "segfaulter", image=IMAGE, logs=[f"line {i}" for i in range(700)])
    node.install(host)  # HOST_DIR/crictl
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": os.environ.get("PYTHONPATH", ""),
           **rendered(HOST_DIR=str(host), CORE_DIR=str(host / "cores"),
                      COMP_CORE_EVENT_DIR=str(host / "events"), S3_BUCKET_NAME=bucket,
                      S3_REGION=s3_server.url, S3_ACCESS_KEY=ACCESS_KEY,
                      S3_SECRET=SECRET_KEY),
           "CDH_PROC_FILES": "false", "CDH_NODE_NAME": "node-ibm", "CDH_METRICS_PORT": "0",
           "CDH_UNINSTALL_ON_STOP": "true", "AWS_EC2_METADATA_DISABLED": "true",
           # the stub, not whatever runtime this machine runs (CRIO_ENDPOINT is only a hint)
           "CDH_CRI_ENDPOINT": f"unix://{host}/no-runtime.sock"}
    repo = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [repo, env["PYTHONPATH"]]))
    agent = Proc(["agent"], env, tmp_path / "agent.log")
    made = make_container_cgroup(pod, app["id"])
    try:
        agent.wait_event("agent.started", timeout=60)
        victim = compile_program("segv_regs", tmp_path)
        crashed = subprocess.run([str(victim)], capture_output=True, timeout=60,
                                 preexec_fn=lambda: (made[-1] / "cgroup.procs").write_text(str(os.getpid())))
        assert crashed.returncode == -signal.SIGSEGV
        done = agent.wait_event("upload.done", timeout=120)[0]
    finally:
        agent.signal()
        agent.wait(60)
        remove_cgroups(made)
        shutil.rmtree(host, ignore_errors=True)
    # IBM's script: fetch the object, unzip it beside the zip, then look
    out = tmp_path / "fetched"
    out.mkdir()
    body = s3.get_object(Bucket=bucket, Key=done["key"])["Body"].read()
    (out / os.path.basename(done["key"])).write_bytes(body)
    zipfile.ZipFile(io.BytesIO(body)).extractall(out)
    name = os.path.basename(done["key"])[: -len(".zip")]
    info = json.loads((out / f"{name}-dump-info.json").read_text())
    assert info["node_hostname"] != ""                                               # 1
    assert len((out / f"{name}-0.log").read_text().splitlines()) == 500              # 2
    assert json.loads((out / f"{name}-0-image-info.json").read_text())["repoTags"][0] == IMAGE  # 3
    assert len(os.listdir(out)) == 8, sorted(os.listdir(out))                        # 4
    assert info["podname"] == "segfaulter" and info["signal"] == "11"
