"""The kernel settings cdh owns (cdh/sysctl.py): what core_pattern pipes into, and whether it is ours."""

from __future__ import annotations

import os

from cdh import sysctl
from cdh.composer import kernel


def test_core_pattern_pipes_into_cdc_with_every_specifier_the_composer_reads():
    pattern = sysctl.core_pattern("/var/mnt/core-dump-handler")
    assert pattern == f"|/var/mnt/core-dump-handler/cdc {sysctl.PATTERN_ARGS}"
    assert len(pattern.encode()) <= sysctl.CORE_PATTERN_MAX
    flags = [arg.split("=")[0].lstrip("-") for arg in sysctl.PATTERN_ARGS.split()]
    assert set(flags) <= set(kernel.FLAGS) and all(f"-{f}=%{f}" in sysctl.PATTERN_ARGS for f in flags)


def test_is_ours_only_for_this_host_dirs_composer():
    assert sysctl.is_ours(sysctl.core_pattern("/h"), "/h")
    assert not sysctl.is_ours(sysctl.core_pattern("/h2"), "/h")
    assert not sysctl.is_ours("|/usr/lib/systemd/systemd-coredump %P", "/h")
    assert not sysctl.is_ours("core", "/h")


def test_a_fake_tree_for_tests(tmp_path, monkeypatch):
    (tmp_path / "kernel").mkdir()
    (tmp_path / "kernel" / "core_pattern").write_text("core\n")
    monkeypatch.setenv(sysctl.TEST_SYSCTL_ROOT, str(tmp_path))
    s = sysctl.Sysctl.here()
    assert s.read("kernel.core_pattern") == "core"
    s.write("kernel.core_pattern", "|/h/cdc x")
    assert (tmp_path / "kernel" / "core_pattern").read_text() == "|/h/cdc x"
    monkeypatch.delenv(sysctl.TEST_SYSCTL_ROOT)
    assert sysctl.Sysctl.here().root == "/proc/sys"


def test_values_are_bytes_to_the_kernel(tmp_path):
    """A node's own pattern need not be UTF-8: read, written back and compared without loss."""
    (tmp_path / "kernel").mkdir()
    raw = b"/var/crash/core.\xe9t\xe9.%p"
    (tmp_path / "kernel" / "core_pattern").write_bytes(raw + b"\n")
    s = sysctl.Sysctl(str(tmp_path))
    assert s.read_bytes("kernel.core_pattern") == raw
    s.write("kernel.core_pattern", s.read("kernel.core_pattern"))
    assert (tmp_path / "kernel" / "core_pattern").read_bytes() == raw


def test_what_a_backup_may_hold(tmp_path):
    """implausible(): the reason a backup is not restored, or None. A piped program is checked in the
    host's root (this test runs in the host's PID namespace, where /proc/2/root is visible)."""
    ok = tmp_path / "collector"
    ok.write_text("#!/bin/sh\n")
    os.chmod(ok, 0o755)
    host = str(tmp_path / "host")
    assert sysctl.implausible("fs.suid_dumpable", b"2", host) is None
    assert "from 0 to 2" in sysctl.implausible("fs.suid_dumpable", b"7", host)
    assert "from 0 to" in sysctl.implausible("kernel.core_pipe_limit", b"|/x", host)
    assert sysctl.implausible("kernel.core_pattern", b"core", host) is None
    assert sysctl.implausible("kernel.core_pattern", b"/var/crash/core.\xe9.%p", host) is None
    assert "cdh's own" in sysctl.implausible("kernel.core_pattern", sysctl.core_pattern(host).encode(), host)
    assert "not a core_pattern" in sysctl.implausible("kernel.core_pattern", b"x" * 200, host)
    assert "not an absolute path" in sysctl.implausible("kernel.core_pattern", b"|collector %p", host)
    if sysctl.host_root() is None:
        return  # a pod without hostPID: the program cannot be checked here
    assert sysctl.implausible("kernel.core_pattern", b"|%s %%p" % bytes(ok), host) is None
    assert "No such file" in sysctl.implausible("kernel.core_pattern", b"|/nonexistent/c %p", host)
    os.chmod(ok, 0o777)
    assert "writable by others" in sysctl.implausible("kernel.core_pattern", b"|%s %%p" % bytes(ok), host)
