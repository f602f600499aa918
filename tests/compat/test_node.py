"""The node side: IBM's agent test (its sysctl backups and composer settings) rewritten for cdh, and a
node IBM's agent left behind taken over by `cdh install` and given back by `cdh uninstall`."""

from __future__ import annotations

import os

from tests.compat.chart import rendered
from tests.support.agentproc import NODE_PIPE, fake_sysctl_root
from tests.support.cli import run_cdh

ORIGINALS = {"kernel/core_pattern": NODE_PIPE + " %e",
             "kernel/core_pipe_limit": "16", "fs/suid_dumpable": "0"}


def node(tmp_path):
    root = fake_sysctl_root(tmp_path / "proc-sys")
    for name, value in ORIGINALS.items():
        with open(os.path.join(root, name), "w") as f:
            f.write(value + "\n")
    return root


def sysctl(root: str, name: str) -> str:
    with open(os.path.join(root, name)) as f:
        return f.read().strip()


def env_for(tmp_path, root: str, host_dir, **values: str | None) -> dict[str, str]:
    chart = rendered(HOST_DIR=str(host_dir), CORE_DIR=str(host_dir / "cores"),
                     COMP_CORE_EVENT_DIR=str(host_dir / "events"), **values)
    return {"PATH": os.environ["PATH"], "CDH_TEST_SYSCTL_ROOT": root, **chart}


def test_install_backs_up_the_originals_and_writes_the_composers_settings(tmp_path):
    """IBM's core-dump-agent/tests/basic.rs: the three backups hold exactly the node's values, the
    composer is in place, and its settings file carries the chart's composer values."""
    root = node(tmp_path)
    host = tmp_path / "home"
    done = run_cdh("install", env=env_for(tmp_path, root, host, SCHEDULE="1/1 * * * * *", USE_INOTIFY=""))
    assert done.returncode == 0, done.stderr
    for name, value in ORIGINALS.items():
        assert (host / f"{name.rsplit('/', 1)[1]}.bak").read_text() == value  # exactly, no newline
    assert (host / "cdc").exists()
    settings = (host / "composer.env").read_text()
    for line in ('CDH_COMPOSER_LOG_LEVEL="warning"', 'CDH_MINIMAL_ZIP="false"',
                 'CDH_CONTAINER_PROC_FILES="false"', 'CDH_CRI_IMAGE_CMD="img"', 'CDH_LOG_LINES="500"',
                 'CDH_COMPOSER_TIMEOUT="600s"',
                 'CDH_FILENAME_TEMPLATE="{uuid}-dump-{timestamp}-{hostname}-{exe_name}-{pid}-{signal}"',
                 'CDH_COMPRESSION="deflate"', 'CDH_CORE_EVENTS="false"', f'CDH_EVENT_DIR="{host}/events"'):
        assert line in settings, settings
    assert sysctl(root, "kernel/core_pattern").startswith(f"|{host}/cdc ")
    assert (sysctl(root, "kernel/core_pipe_limit"), sysctl(root, "fs/suid_dumpable")) == ("128", "2")


def test_a_node_ibm_left_behind_is_taken_over_and_given_back(tmp_path):
    """IBM's pod went without its preStop hook: its pattern is live, its backups and files are there."""
    root = node(tmp_path)
    ibm = tmp_path / "mnt"  # OpenShift's /mnt/core-dump-handler: the same HOST_DIR for both
    ibm.mkdir()
    for name, value in ORIGINALS.items():
        (ibm / f"{name.rsplit('/', 1)[1]}.bak").write_text(value)
    (ibm / "cdc").write_bytes(b"\x7fELF\x02\x01\x01")
    (ibm / ".env").write_text("LOG_LEVEL=Warn\nCRIO_IMAGE_CMD=images\nLOG_LENGTH=500\nTIMEOUT=120\n")
    for name, value in (("kernel/core_pattern", f"|{ibm}/cdc -c=%c -e=%e -p=%p -s=%s -t=%t -d={ibm}/cores "
                                                "-h=%h -E=%E"), ("kernel/core_pipe_limit", "128"),
                        ("fs/suid_dumpable", "2")):
        with open(os.path.join(root, name), "w") as f:
            f.write(value + "\n")
    env = env_for(tmp_path, root, ibm, COMP_CRIO_IMAGE_CMD="images")
    done = run_cdh("install", env=env)
    assert done.returncode == 0, done.stderr
    assert f"IBM Core Dump Handler found in {ibm}" in done.stdout
    assert "IBM's composer used TIMEOUT='120'" in done.stdout and "CRIO_IMAGE_CMD" not in done.stdout
    assert not (ibm / ".env").exists() and len(list(ibm.glob("ibm-backup-*/.env"))) == 1
    assert run_cdh("uninstall", env=env).returncode == 0
    for name, value in ORIGINALS.items():
        assert sysctl(root, name) == value, name
    assert not (ibm / "cdc").exists() and not list(ibm.glob("*.bak"))
