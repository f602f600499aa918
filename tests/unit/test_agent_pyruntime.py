"""Installing the runtime into HOST_DIR: cdc's first line, atomic replacement, safe removal.

A small fake runtime stands in for one laid out by packaging/pyruntime.py (tests/packaging/ runs the
real one); what is checked here is the installer's bookkeeping.
"""

from __future__ import annotations

import fcntl
import io
import json
import os
import time
import zipfile

import pytest

from cdh import ondisk
from cdh.agent import host, pyruntime
from cdh.config import load
from cdh.sysctl import Sysctl


def make_source(path, rid="aaaaaaaaaaaa", payload=b"v1"):
    """A laid-out runtime in miniature: manifest, host files, one file only the image needs."""
    files = {"bin/python3": b"\x7fELF interpreter", "bin/python3._pth": b"../site-packages\n",
             "lib/ld.so": b"\x7fELF loader", "lock": b"", "site-packages/cdh/__init__.py": payload}
    for rel, data in {**files, "site-packages/aiobotocore/__init__.py": b"agent only"}.items():
        (path / rel).parent.mkdir(parents=True, exist_ok=True)
        (path / rel).write_bytes(data)
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("__main__.py", "print('cdh')\n")
    (path / "cdh.pyz").write_bytes(b"#!/usr/bin/env python3\n" + archive.getvalue())
    manifest = {"id": rid, "python": "3.11.7", "interpreter": "bin/python3", "loader_path": "lib/ld.so",
                "pyz": "cdh.pyz", "host_files": sorted(files), "host_bytes": 100}
    (path / "runtime.json").write_text(json.dumps(manifest))
    return path


@pytest.fixture
def source(tmp_path):
    return make_source(tmp_path / "image-runtime")


def install(host_dir, source, **kw):
    return pyruntime.install(str(host_dir), str(source), str(host_dir / "cdc"), **kw)


def test_cdc_is_the_zipapp_on_the_bundled_loader_and_interpreter(host_dir, source):
    install(host_dir, source)
    target = host_dir / "runtime" / "aaaaaaaaaaaa"
    first = (host_dir / "cdc").read_bytes().split(b"\n", 1)[0].decode()
    assert first == f"#!{target}/lib/ld.so {target}/bin/python3"
    with zipfile.ZipFile(host_dir / "cdc") as z:  # still a zip after the new first line
        assert z.read("__main__.py") == b"print('cdh')\n"
    assert os.access(host_dir / "cdc", os.X_OK)
    assert (target / "bin/python3").read_bytes() == b"\x7fELF interpreter"
    assert not (target / "site-packages/aiobotocore").exists()  # only the host part is copied
    assert json.loads((target / "runtime.json").read_text())["id"] == "aaaaaaaaaaaa"


def test_reinstall_of_the_same_runtime_copies_nothing(host_dir, source):
    install(host_dir, source)
    inode = (host_dir / "runtime/aaaaaaaaaaaa/bin/python3").stat().st_ino
    done = install(host_dir, source)
    assert any("already at" in line for line in done)
    assert (host_dir / "runtime/aaaaaaaaaaaa/bin/python3").stat().st_ino == inode


def test_upgrade_replaces_cdc_by_rename_and_retires_the_old_runtime(host_dir, source, tmp_path):
    install(host_dir, source)
    with open(host_dir / "cdc", "rb") as running:  # a composer the kernel started on the old cdc
        new = make_source(tmp_path / "new-runtime", rid="bbbbbbbbbbbb", payload=b"v2")
        install(host_dir, new)
        assert b"runtime/bbbbbbbbbbbb/" in (host_dir / "cdc").read_bytes().split(b"\n", 1)[0]
        assert b"runtime/aaaaaaaaaaaa/" in running.readline()  # the old file is intact, never overwritten
    old = host_dir / "runtime/aaaaaaaaaaaa"
    assert (old / "retired").exists() and (old / "bin/python3").exists()  # within the grace period


def test_old_runtime_is_removed_only_after_the_grace_and_when_unlocked(host_dir, source, tmp_path):
    install(host_dir, source)
    install(host_dir, make_source(tmp_path / "new", rid="bbbbbbbbbbbb"))
    old = host_dir / "runtime/aaaaaaaaaaaa"
    past = time.time() - pyruntime.RETIRE_GRACE_S - 1
    os.utime(old / "retired", (past, past))
    fd = os.open(old / "lock", os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_SH)  # what packaging/_cdh_runtime.py does in every composer
    try:
        done = pyruntime.prune(str(host_dir), keep="bbbbbbbbbbbb")
        assert old.exists() and "holds its lock" in " ".join(done)
    finally:
        os.close(fd)
    done = pyruntime.prune(str(host_dir), keep="bbbbbbbbbbbb")
    assert not old.exists(), done
    assert sorted(os.listdir(host_dir / "runtime")) == ["bbbbbbbbbbbb"]


def test_an_interrupted_copy_is_cleaned_up(host_dir, source):
    stale = host_dir / "runtime" / ".cccccccccccc.tmp.999999999"
    stale.mkdir(parents=True)
    install(host_dir, source)
    assert not stale.exists()


def test_prune_runtimes_keeps_the_one_cdc_names(host_dir, source, tmp_path):
    install(host_dir, make_source(tmp_path / "old", rid="0ld0ld0ld0ld"))
    install(host_dir, source)
    os.utime(host_dir / "runtime/0ld0ld0ld0ld/retired", (1, 1))
    settings = load([{"CDH_HOST_DIR": str(host_dir)}])
    host.prune_runtimes(settings)
    assert sorted(os.listdir(host_dir / "runtime")) == ["aaaaaaaaaaaa"]


def test_uninstall_removes_cdc_and_every_unused_runtime(host_dir, source, tmp_path):
    proc_sys = tmp_path / "proc-sys"
    for name, value in (("kernel/core_pattern", "core"), ("kernel/core_pipe_limit", "0"),
                        ("fs/suid_dumpable", "0")):
        (proc_sys / name).parent.mkdir(parents=True, exist_ok=True)
        (proc_sys / name).write_text(value + "\n")
    settings = load([{"CDH_HOST_DIR": str(host_dir), "CDH_RUNTIME_DIR": str(source)}])
    host.install(settings, Sysctl(str(proc_sys)))
    assert (host_dir / "runtime/aaaaaaaaaaaa").is_dir()
    host.uninstall(settings, Sysctl(str(proc_sys)))
    assert not (host_dir / "cdc").exists()
    assert not (host_dir / "runtime").exists()


def test_a_missing_runtime_is_a_clear_error(host_dir, tmp_path):
    settings = load([{"CDH_HOST_DIR": str(host_dir), "CDH_RUNTIME_DIR": str(tmp_path / "nothing")}])
    with pytest.raises(host.HostError, match="CDH_RUNTIME_DIR"):
        host.install_composer(settings, ondisk.HostDir(str(host_dir)))


def test_a_first_line_longer_than_the_kernel_reads_is_refused(tmp_path, source, monkeypatch):
    monkeypatch.setattr(pyruntime, "shebang_max", lambda: pyruntime.SHEBANG_MAX_OLD)
    long_dir = tmp_path / ("h" * 40)  # fine for core_pattern, too long for a pre-5.1 kernel's #! line
    with pytest.raises(pyruntime.RuntimeInstallError, match="CDH_HOST_DIR"):
        install(long_dir, source)
    assert not (long_dir / "cdc").exists()


@pytest.mark.parametrize(("release", "limit"), [
    ("6.18.44-fc-v657", 256), ("5.1.0", 256), ("5.10.0-27-amd64", 256),
    ("4.18.0-553.el8_10.x86_64", 128), ("3.10.0-1160.el7.x86_64", 128), ("garbage", 128)])
def test_kernel_first_line_limit(release, limit):
    assert pyruntime.shebang_max(release) == limit


def test_two_installers_at_once_leave_one_complete_runtime(host_dir, source):
    install(host_dir, source)
    manifest = pyruntime.read_manifest(str(source))
    target = str(host_dir / "runtime" / manifest["id"])
    pyruntime.copy_host_part(str(source), manifest, target)  # the slower one renames onto a finished copy
    assert sorted(os.listdir(host_dir / "runtime")) == ["aaaaaaaaaaaa"]
    assert (host_dir / "runtime/aaaaaaaaaaaa/runtime.json").is_file()
