"""The whole product on the real kernel: agent on the image's runtime → crash → object in S3.

The agent runs as the DaemonSet's container runs it (the image's entry zipapp on the
bundled runtime), installs the composer into a temporary HOST_DIR and points
kernel.core_pattern at it; a real process crashes; the kernel pipes the core to the
composer; the agent uploads the zip, verifies the object and deletes the local copy;
SIGTERM restores the node.
"""

from __future__ import annotations

import io
import json
import os
import signal
import struct
import subprocess
import tempfile
import zipfile
from pathlib import Path

import pytest

from tests.support.agentproc import Proc, wait_until
from tests.support.crashes import compile_program
from tests.support.s3server import list_keys

ET_CORE = 4


def elf_core_extent(core: bytes) -> tuple[int, int]:
    """(e_type, extent of headers and every segment's file range): equals the size of a complete core."""
    e_type, = struct.unpack_from("<H", core, 16)
    e_phoff, = struct.unpack_from("<Q", core, 32)
    e_phentsize, e_phnum = struct.unpack_from("<HH", core, 54)
    extent = e_phoff + e_phentsize * e_phnum
    for i in range(e_phnum):
        _, _, p_offset, _, _, p_filesz = struct.unpack_from("<IIQQQQ", core, e_phoff + i * e_phentsize)
        extent = max(extent, p_offset + p_filesz)
    return e_type, extent


@pytest.fixture
def agent(kernel, s3_server, bucket, image_entry, tmp_path):
    # A short HOST_DIR: kernel.core_pattern holds 127 bytes at most.
    host_dir = Path(tempfile.mkdtemp(prefix="cdhe-", dir="/tmp"))
    env = {"PATH": "/usr/bin:/bin", "CDH_HOST_DIR": str(host_dir), "CDH_NODE_NAME": "node-e2e",
           "CDH_UNINSTALL_ON_STOP": "true", "CDH_METRICS_PORT": "0", "CDH_S3_KEY_PREFIX": "{node}/",
           "CDH_CRICTL_PATH": str(host_dir), "AWS_EC2_METADATA_DISABLED": "true",
           **s3_server.agent_env(bucket)}
    proc = Proc(["agent"], env, tmp_path / "agent.log", command=[image_entry])
    try:
        proc.wait_event("agent.started", timeout=60)
        yield proc, host_dir
    finally:
        proc.stop()
        subprocess.run(["rm", "-rf", str(host_dir)], check=False)


@pytest.mark.kernel
def test_a_real_crash_ends_as_a_verified_object_and_the_node_is_restored(
        agent, kernel, s3, bucket, tmp_path):
    proc, host_dir = agent
    pattern = Path("/proc/sys/kernel/core_pattern").read_text().strip()
    assert pattern.startswith(f"|{host_dir}/cdc "), pattern
    with (host_dir / "cdc").open("rb") as f:
        first_line = f.readline()
    assert first_line.startswith(f"#!{host_dir}/runtime/".encode()), "cdc runs on the bundled runtime"

    victim = compile_program("segv_regs", tmp_path)
    crashed = subprocess.run([str(victim)], capture_output=True, timeout=60)
    assert crashed.returncode == -signal.SIGSEGV

    done = proc.wait_event("upload.done", timeout=120)[0]
    assert done["key"].startswith("node-e2e/") and done["key"].endswith(".zip")
    wait_until(lambda: not list((host_dir / "cores").iterdir()), 30, "CORE_DIR to be empty")
    assert list_keys(s3, bucket) == [done["key"]]

    body = s3.get_object(Bucket=bucket, Key=done["key"])["Body"].read()
    assert len(body) == done["bytes"]
    zf = zipfile.ZipFile(io.BytesIO(body))
    assert zf.testzip() is None
    name = done["key"].rsplit("/", 1)[1][: -len(".zip")]
    info = json.loads(zf.read(f"{name}-dump-info.json"))
    assert info["exe"] == "segv_regs" and info["signal"] == str(int(signal.SIGSEGV))
    assert info["truncated"] is False
    core = zf.read(f"{name}.core")
    assert elf_core_extent(core) == (ET_CORE, len(core)) == (ET_CORE, info["core_size"])
    head = s3.head_object(Bucket=bucket, Key=done["key"])["Metadata"]
    assert head["exe"] == "segv_regs" and head["signal"] == "11" and head["node"] == "node-e2e"

    proc.signal(signal.SIGTERM)
    assert proc.wait(60) == 0
    assert Path("/proc/sys/kernel/core_pattern").read_text().strip() == kernel["kernel/core_pattern"]
    assert not (host_dir / "cdc").exists()
    runtimes = host_dir / "runtime"
    assert not runtimes.exists() or not any(runtimes.iterdir()), "no runtime left behind"
    assert os.path.isdir(host_dir / "cores"), "uninstall keeps CORE_DIR (it may hold zips not yet uploaded)"
