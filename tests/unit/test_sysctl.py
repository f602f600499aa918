"""The kernel settings cdh owns (cdh/sysctl.py): what core_pattern pipes into, and whether it is ours."""

from __future__ import annotations

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
