"""/proc/<pid>/cgroup → container id, for every runtime and cgroup driver the composer knows."""

from __future__ import annotations

import pytest

from cdh.composer.proc import container_id, read_facts

CID = "3f1c" + "a" * 56 + "0b9e"          # a container id
NODE = "d" * 64                           # a k3d node container id
UID = "6e1a8d2b-7c4f-4f1e-9f0a-1b2c3d4e5f60"
UID_ = UID.replace("-", "_")

# (description, cgroup file text, expected id)
ROWS = [
    ("containerd, systemd driver, cgroup v2",
     f"0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID_}.slice/cri-containerd-{CID}.scope\n",
     CID),
    ("containerd, systemd driver, Guaranteed (no QoS slice)",
     f"0::/kubepods.slice/kubepods-pod{UID_}.slice/cri-containerd-{CID}.scope\n", CID),
    ("containerd, systemd driver, cgroup v1 (many hierarchies)",
     f"12:memory:/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{UID_}.slice/"
     f"cri-containerd-{CID}.scope\n11:cpu,cpuacct:/kubepods.slice/kubepods-besteffort.slice/"
     f"kubepods-besteffort-pod{UID_}.slice/cri-containerd-{CID}.scope\n"
     f"1:name=systemd:/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{UID_}.slice/"
     f"cri-containerd-{CID}.scope\n0::/\n", CID),
    ("containerd, systemd-style path on cgroupfs",
     f"0::/kubepods-besteffort-pod{UID_}.slice:cri-containerd:{CID}\n", CID),
    ("containerd, systemd-style path on cgroupfs, v1 with a system.slice prefix",
     f"4:pids:/system.slice/containerd.service/kubepods-burstable-pod{UID_}.slice:cri-containerd:{CID}\n",
     CID),
    ("containerd / cri-dockerd, cgroupfs, v1 (GKE COS)",
     f"9:memory:/kubepods/burstable/pod{UID}/{CID}\n"
     f"1:name=systemd:/kubepods/burstable/pod{UID}/{CID}\n", CID),
    ("cgroupfs, Guaranteed pod", f"0::/kubepods/pod{UID}/{CID}\n", CID),
    ("cgroupfs, static pod with a 32-hex uid", f"0::/kubepods/besteffort/pod{'c' * 32}/{CID}\n", CID),
    ("CRI-O, systemd", f"0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID_}.slice/"
     f"crio-{CID}.scope\n", CID),
    ("CRI-O, systemd under crun (/container)", f"0::/kubepods.slice/kubepods-pod{UID_}.slice/"
     f"crio-{CID}.scope/container\n", CID),
    ("CRI-O, cgroupfs", f"0::/kubepods/burstable/pod{UID}/crio-{CID}\n", CID),
    ("CRI-O, cgroupfs under crun", f"0::/kubepods/burstable/pod{UID}/crio-{CID}/container\n", CID),
    ("docker / cri-dockerd, systemd", f"0::/kubepods.slice/kubepods-besteffort.slice/"
     f"kubepods-besteffort-pod{UID_}.slice/docker-{CID}.scope\n", CID),
    ("plain docker, cgroupfs, v1", f"12:pids:/docker/{CID}\n1:name=systemd:/docker/{CID}\n", CID),
    ("k3d: k3s inside docker, the last match wins",
     f"0::/docker/{NODE}/kubepods/burstable/pod{UID}/{CID}\n", CID),
    ("a process in a nested cgroup inside the container",
     f"0::/kubepods.slice/kubepods-pod{UID_}.slice/cri-containerd-{CID}.scope/init.scope\n", CID),
]

NOT_CONTAINERS = [
    ("CRI-O conmon is not the container",
     f"0::/kubepods.slice/kubepods-pod{UID_}.slice/crio-conmon-{CID}.scope\n"),
    ("private cgroup namespace", "0::/\n"),
    ("a host service", "0::/system.slice/sshd.service\n"),
    ("a pod slice without a container", f"0::/kubepods.slice/kubepods-pod{UID_}.slice\n"),
    ("64-hex not under a pod or docker", f"0::/machine.slice/{CID}\n"),
    ("garbage", "not a cgroup file\n::\n"),
    ("empty", ""),
]


@pytest.mark.parametrize(("text", "expected"), [r[1:] for r in ROWS], ids=[r[0] for r in ROWS])
def test_container_id_for_every_runtime(text, expected):
    assert container_id(text) == expected


@pytest.mark.parametrize("text", [r[1] for r in NOT_CONTAINERS], ids=[r[0] for r in NOT_CONTAINERS])
def test_no_container_id(text):
    assert container_id(text) is None


def test_unified_line_is_preferred_over_v1_lines():
    other = "e" * 64
    text = f"3:memory:/docker/{other}\n0::/kubepods/pod{UID}/{CID}\n"
    assert container_id(text) == CID


def test_paths_containing_colons_are_split_correctly():
    assert container_id(f"5:name=systemd:/a:b/kubepods/pod{UID}/{CID}\n") == CID


def test_read_facts_reads_through_one_directory_handle(tmp_path):
    d = tmp_path / "77"
    d.mkdir()
    (d / "cgroup").write_text(f"0::/kubepods/pod{UID}/{CID}\n")
    (d / "status").write_text("Name:\tx\n")
    (d / "environ").write_bytes(b"TOKEN=secret\0")
    facts = read_facts(str(tmp_path), 77, include_environ=False)
    assert facts.container_id == CID
    assert facts.files["status"] == b"Name:\tx\n"
    assert "environ" not in facts.files  # opt-in only
    assert any("maps" in e for e in facts.errors)  # missing files are reported, not fatal
    assert read_facts(str(tmp_path), 77, include_environ=True).files["environ"] == b"TOKEN=secret\0"


def test_read_facts_of_a_vanished_process(tmp_path):
    facts = read_facts(str(tmp_path), 999999, include_environ=False)
    assert facts.files == {} and facts.container_id is None
    assert facts.errors and "999999" in facts.errors[0]
    assert read_facts(str(tmp_path), None, include_environ=False).errors


def test_reads_are_bounded(tmp_path, monkeypatch):
    from cdh.composer import proc

    d = tmp_path / "5"
    d.mkdir()
    (d / "maps").write_bytes(b"x" * 100_000)
    monkeypatch.setitem(proc.MAX_BYTES, "maps", 1000)
    assert len(read_facts(str(tmp_path), 5, False).files["maps"]) == 1000


def test_symlinked_files_are_not_followed(tmp_path):
    d = tmp_path / "6"
    d.mkdir()
    (tmp_path / "elsewhere").write_text("not the process")
    (d / "status").symlink_to(tmp_path / "elsewhere")
    facts = read_facts(str(tmp_path), 6, False)
    assert "status" not in facts.files


def test_the_clouds_secrets_in_an_environ_are_redacted():
    """The agent's own environment, if it crashes with environ capture on: every cloud's secrets."""
    from cdh.composer.proc import redact_environ

    environ = b"\0".join([b"PATH=/bin", b"CDH_AZURE_ACCOUNT_KEY=k1", b"AZURE_STORAGE_CONNECTION_STRING=c",
                          b"AZURE_CLIENT_SECRET=s", b"AZURE_STORAGE_SAS_TOKEN=sig", b"AWS_SESSION_TOKEN=t",
                          b"AZURE_CLIENT_ID=not-secret"])
    out = redact_environ(environ).split(b"\0")
    assert out[0] == b"PATH=/bin" and out[-1] == b"AZURE_CLIENT_ID=not-secret"
    assert all(item.endswith(b"=<redacted>") for item in out[1:-1]), out
