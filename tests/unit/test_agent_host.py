"""Host setup against a fake /proc/sys: backups, restore, idempotence, truncation guard."""

from __future__ import annotations

import os

import pytest

from cdh.agent import host
from cdh.config import load
from cdh.sysctl import PATTERN_ARGS, SAFE_DEFAULTS


@pytest.fixture
def sysctl(fake_sysctl):
    return fake_sysctl


def settings(host_dir, **extra):
    return load([{"CDH_HOST_DIR": str(host_dir), **extra}])


def test_install_sets_sysctls_and_backs_up_originals(host_dir, sysctl):
    s = settings(host_dir)
    host.install(s, sysctl)
    assert sysctl.read("kernel.core_pattern") == f"|{host_dir}/cdc {PATTERN_ARGS}"
    assert sysctl.read("kernel.core_pipe_limit") == "128"
    assert sysctl.read("fs.suid_dumpable") == "2"
    assert (host_dir / "core_pattern.bak").read_text() == "core"
    assert os.access(host_dir / "cdc", os.X_OK)
    assert "CDH_CORE_DIR=" in (host_dir / "composer.env").read_text()
    assert oct((host_dir / "cores").stat().st_mode & 0o777) == "0o700"


def test_file_modes_open_their_directories_to_the_same_readers(host_dir, sysctl):
    host.install(settings(host_dir, CDH_ZIP_FILE_MODE="0644", CDH_EVENT_FILE_MODE="0640"), sysctl)
    assert oct((host_dir / "cores").stat().st_mode & 0o777) == "0o755"
    assert oct((host_dir / "events").stat().st_mode & 0o777) == "0o750"
    assert oct(host_dir.stat().st_mode & 0o777) == "0o700"
    assert 'CDH_ZIP_FILE_MODE="0644"' in (host_dir / "composer.env").read_text()  # the composer's too


def test_reinstall_keeps_the_original_backup(host_dir, sysctl):
    s = settings(host_dir)
    host.install(s, sysctl)
    host.install(s, sysctl)  # agent restarted: the current pattern is ours
    assert (host_dir / "core_pattern.bak").read_text() == "core"
    host.uninstall(s, sysctl)
    assert sysctl.read("kernel.core_pattern") == "core"
    assert sysctl.read("kernel.core_pipe_limit") == "0"
    assert not (host_dir / "core_pattern.bak").exists()
    assert not (host_dir / "cdc").exists()


def test_uninstall_succeeds_when_files_are_gone(host_dir, sysctl):
    s = settings(host_dir)
    host.install(s, sysctl)
    for name in ("cdc", "composer.env", "core_pattern.bak"):
        (host_dir / name).unlink()
    host.uninstall(s, sysctl)
    # No backup left: never keep a pattern that points at a removed composer.
    assert sysctl.read_bytes("kernel.core_pattern") == SAFE_DEFAULTS["kernel.core_pattern"]
    host.uninstall(s, sysctl)  # and again, with nothing at all


def test_uninstall_leaves_a_pattern_that_is_not_ours(host_dir, sysctl):
    s = settings(host_dir)
    host.install(s, sysctl)
    sysctl.write("kernel.core_pattern", "|/usr/lib/systemd/systemd-coredump %P")
    host.uninstall(s, sysctl)
    assert sysctl.read("kernel.core_pattern") == "|/usr/lib/systemd/systemd-coredump %P"


def test_too_long_host_dir_is_refused_naming_it(tmp_path, sysctl):
    long_dir = tmp_path / ("x" * 90)
    with pytest.raises(host.HostError, match="CDH_HOST_DIR"):
        host.install(settings(long_dir), sysctl)
    assert sysctl.read("kernel.core_pattern") == "core"


def test_truncated_read_back_is_refused(host_dir, sysctl, monkeypatch):
    real_write = sysctl.write
    monkeypatch.setattr(sysctl, "write", lambda n, v: real_write(n, v[:40]))
    with pytest.raises(host.HostError, match="reads back as"):
        host.install(settings(host_dir), sysctl)
