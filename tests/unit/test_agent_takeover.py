"""A node taken over from the IBM Core Dump Handler (fixtures written here, shaped as IBM's agent leaves
a node): IBM's original backups kept and restored at uninstall, IBM's files out of the way."""

from __future__ import annotations

from pathlib import Path

from cdh.agent import host
from cdh.config import load
from tests.support.agentproc import NODE_PIPE

ORIGINALS = {"kernel.core_pattern": NODE_PIPE,
             "kernel.core_pipe_limit": "16", "fs.suid_dumpable": "0"}
IBM_ENV = ("LOG_LEVEL=Warn\nIGNORE_CRIO=false\nINCLUDE_PROC_INFO=false\nCRIO_IMAGE_CMD=img\n"
           "USE_CRIO_CONF=false\nFILENAME_TEMPLATE={uuid}-dump-{timestamp}-{hostname}-{exe_name}-{pid}-{signal}\n"
           "LOG_LENGTH=2000\nPOD_SELECTOR_LABEL=\nTIMEOUT=600\nCOMPRESSION=true\nCORE_EVENTS=false\n"
           "EVENT_DIRECTORY={events}\n")


def ibm_node(ibm_dir: Path, sysctl, crictl: bytes = b"#!/bin/sh\n# crictl v1.22, copied by IBM's agent\n"):
    """What IBM's agent leaves when its pod goes without its preStop hook."""
    ibm_dir.mkdir(parents=True, exist_ok=True)
    for name, value in ORIGINALS.items():
        (ibm_dir / f"{name.rsplit('.', 1)[1]}.bak").write_text(value)  # IBM: no newline
    (ibm_dir / "cdc").write_bytes(b"\x7fELF\x02\x01\x01 IBM's composer")
    (ibm_dir / ".env").write_text(IBM_ENV.replace("{events}", f"{ibm_dir}/events"))
    (ibm_dir / "crictl").write_bytes(crictl)
    (ibm_dir / "composer.log").write_text("WARN - 2024-11-12T10:00:00 - something\n")
    sysctl.write("kernel.core_pattern", f"|{ibm_dir}/cdc -c=%c -e=%e -p=%p -s=%s -t=%t "
                                        f"-d={ibm_dir}/cores -h=%h -E=%E")
    sysctl.write("kernel.core_pipe_limit", "128")
    sysctl.write("fs.suid_dumpable", "2")


def aside(d: Path) -> Path:
    (found,) = d.glob("ibm-backup-*")
    return found


def test_same_host_dir_keeps_ibms_originals_and_moves_its_files_aside(host_dir, fake_sysctl):
    ibm_node(host_dir, fake_sysctl)
    (host_dir / "crictl.yaml").write_text("runtime-endpoint: unix:///run/dockershim.sock\n")
    s = load([{"CDH_HOST_DIR": str(host_dir), "COMP_LOG_LEVEL": "Warn"}])
    done = host.install(s, fake_sysctl, composer=b"#!/bin/sh\n")
    assert fake_sysctl.read("kernel.core_pattern").startswith(f"|{host_dir}/cdc -c=%c ")
    for name, value in ORIGINALS.items():  # IBM's backups are cdh's: the node's originals
        assert (host_dir / f"{name.rsplit('.', 1)[1]}.bak").read_text() == value
    moved = aside(host_dir)
    assert sorted(p.name for p in moved.iterdir()) == [".env", "composer.log", "crictl", "crictl.yaml"]
    assert (host_dir / "cdc").read_bytes() == b"#!/bin/sh\n"  # cdh's composer, IBM's replaced
    assert any("IBM's composer used LOG_LENGTH='2000'" in line and "COMP_LOG_LENGTH" in line for line in done)
    assert not any("LOG_LEVEL" in line or "EVENT_DIRECTORY" in line for line in done), done
    host.uninstall(s, fake_sysctl)
    for name, value in ORIGINALS.items():
        assert fake_sysctl.read(name) == value
    assert not (host_dir / "cdc").exists() and moved.is_dir()  # IBM's files stay for the user


def test_ibms_host_dir_elsewhere_gives_cdh_its_originals(tmp_path, fake_sysctl):
    """GKE COS: IBM used /home/kubernetes/bin itself, cdh a directory of its own inside it."""
    ibm_dir = tmp_path / "bin"
    gke_crictl = b"#!/bin/sh\n# GKE's own crictl\n"
    ibm_node(ibm_dir, fake_sysctl, crictl=gke_crictl)
    s = load([{"CDH_HOST_DIR": str(ibm_dir / "cdh")}])
    done = host.install(s, fake_sysctl, composer=b"#!/bin/sh\n")
    for name, value in ORIGINALS.items():
        assert (ibm_dir / "cdh" / f"{name.rsplit('.', 1)[1]}.bak").read_text() == value
    moved = aside(ibm_dir)
    assert sorted(p.name for p in moved.iterdir()) == [
        ".env", "cdc", "composer.log", "core_pattern.bak", "core_pipe_limit.bak", "suid_dumpable.bak"]
    assert (ibm_dir / "crictl").read_bytes() == gke_crictl  # not IBM's to move: the node's own
    assert any("taking the node over" in line for line in done)
    host.install(s, fake_sysctl, composer=b"#!/bin/sh\n")  # an agent restart changes nothing
    host.uninstall(s, fake_sysctl)
    for name, value in ORIGINALS.items():  # not IBM's pattern, not IBM's 128 and 2
        assert fake_sysctl.read(name) == value


def test_ibms_pattern_without_its_backup_is_never_taken_for_an_original(tmp_path, fake_sysctl):
    ibm_dir = tmp_path / "i"
    ibm_dir.mkdir()
    fake_sysctl.write("kernel.core_pattern", f"|{ibm_dir}/cdc -c=%c -e=%e -p=%p -s=%s -t=%t "
                                             f"-d={ibm_dir}/cores -h=%h -E=%E")
    s = load([{"CDH_HOST_DIR": str(tmp_path / "c")}])
    host.install(s, fake_sysctl, composer=b"#!/bin/sh\n")
    assert not (tmp_path / "c" / "core_pattern.bak").exists()
    host.uninstall(s, fake_sysctl)
    assert fake_sysctl.read("kernel.core_pattern") == "core"  # never back to IBM's missing composer


def test_a_node_without_ibm_reports_nothing(host_dir, fake_sysctl):
    done = host.install(load([{"CDH_HOST_DIR": str(host_dir)}]), fake_sysctl, composer=b"#!/bin/sh\n")
    assert not any("IBM" in line for line in done)
    assert not list(host_dir.glob("ibm-backup-*"))
