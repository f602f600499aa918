"""`cdh uninstall` is the DaemonSet's preStop hook: it must restore the node whatever the env-file says."""

from __future__ import annotations

import pytest

from cdh import EXIT_OK, cli
from cdh.agent import host


@pytest.fixture
def uninstalled(monkeypatch):
    """Records the settings `cdh uninstall` would restore the host with (no real /proc/sys here)."""
    calls = []
    monkeypatch.setattr(host, "uninstall", lambda settings: calls.append(settings) or ["restored"])
    return calls


# The last: HOST_DIR comes from the DaemonSet's environment only, never from the ConfigMap.
@pytest.mark.parametrize("env_file", [None, "CDH_COMPRESSION=gzip\n", "CDH_TYPO=1\n", "CDH_HOST_DIR=/tmp\n"])
def test_uninstall_falls_back_to_the_environment(clean_env, tmp_path, uninstalled, capsys, env_file):
    cfg = tmp_path / "cdh.env"  # None: the file is gone, as when the ConfigMap was deleted first
    if env_file is not None:
        cfg.write_text(env_file)
    clean_env.setenv("CDH_HOST_DIR", str(tmp_path / "host"))
    clean_env.setenv("CDH_CONFIG_FILE", str(cfg))
    assert cli.main(["cdh", "uninstall"]) == EXIT_OK
    assert [s.host_dir for s in uninstalled] == [str(tmp_path / "host")]
    assert "using the environment alone" in capsys.readouterr().err


def test_uninstall_reads_a_valid_env_file(clean_env, tmp_path, uninstalled, capsys):
    cfg = tmp_path / "cdh.env"
    cfg.write_text("CDH_CORE_PIPE_LIMIT=64\n")
    clean_env.setenv("CDH_HOST_DIR", str(tmp_path / "from-env"))
    clean_env.setenv("CDH_CONFIG_FILE", str(cfg))
    assert cli.main(["cdh", "uninstall"]) == EXIT_OK
    assert [(s.host_dir, s.core_pipe_limit) for s in uninstalled] == [(str(tmp_path / "from-env"), 64)]
    assert capsys.readouterr().err == ""


def test_install_and_uninstall_write_the_sysctl_tree_tests_name(clean_env, tmp_path):
    """`cdh install`/`cdh uninstall` honour CDH_TEST_SYSCTL_ROOT as the agent does: a CLI test never
    writes the machine's core_pattern (which other test runs share)."""
    from cdh.sysctl import PROC_SYS, Sysctl
    from tests.support.agentproc import fake_sysctl_root

    real_write = Sysctl.write

    def guarded(self, name, value):  # a regression must fail here, not change the machine
        assert self.root != PROC_SYS, f"wrote the machine's {name}"
        real_write(self, name, value)

    clean_env.setattr(Sysctl, "write", guarded)
    root = fake_sysctl_root(tmp_path / "proc-sys")
    clean_env.setenv("CDH_TEST_SYSCTL_ROOT", root)
    clean_env.setenv("CDH_HOST_DIR", str(tmp_path / "host"))
    pattern = tmp_path / "proc-sys" / "kernel" / "core_pattern"
    assert cli.main(["cdh", "install"]) == EXIT_OK
    assert pattern.read_text().startswith(f"|{tmp_path / 'host'}/cdc ")
    assert cli.main(["cdh", "uninstall"]) == EXIT_OK
    assert pattern.read_text().strip() == "core"
