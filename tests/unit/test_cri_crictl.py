"""Running crictl: timeouts, output caps, stderr that is only a warning, the circuit breaker."""

from __future__ import annotations

import os
import time

import pytest

from cdh.composer.cri import CriError, CriNotFound, OutOfBudget
from cdh.composer.cri.crictl import Crictl, find_crictl


def script(tmp_path, body: str, name: str = "crictl"):
    path = tmp_path / name
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(0o755)
    return str(path)


def cri(exe, timeout=2.0, deadline_in=60.0, host_dir="/nonexistent", endpoint=""):
    return Crictl(exe, host_dir, endpoint, timeout, time.monotonic() + deadline_in)


def test_warnings_on_stderr_are_not_failures(tmp_path):
    warn = 'time="x" level=warning msg="default endpoints"'
    exe = script(tmp_path, f"echo '{warn}' >&2; echo '{{\"items\": []}}'")
    assert cri(exe).json("pods", "-o", "json") == {"items": []}


def test_exit_code_decides_and_the_message_is_extracted(tmp_path):
    fatal = 'time="x" level=fatal msg="rpc error: code = NotFound desc = not found"'
    exe = script(tmp_path, f"echo '{fatal}' >&2; exit 1")
    with pytest.raises(CriNotFound, match="exit 1: rpc error: code = NotFound"):
        cri(exe).json("inspect", "abc")
    exe = script(tmp_path, "echo 'validate service connection: code = Unavailable' >&2; exit 1")
    with pytest.raises(CriError, match="Unavailable") as err:
        cri(exe).json("inspect", "abc")
    assert not isinstance(err.value, CriNotFound)


def test_garbage_and_arrays(tmp_path):
    with pytest.raises(CriError, match="not JSON"):
        cri(script(tmp_path, "echo '<html>'")).json("inspect", "x")
    several = script(tmp_path, """echo '[{"status": 1}, {"status": 2}]'""")
    assert cri(several).json("inspect", "x") == {"status": 1}
    with pytest.raises(CriNotFound, match="nothing found"):
        cri(script(tmp_path, "echo 'No IDs provided or nothing found per filter' >&2")).json("inspect", "x")


def test_timeout_kills_and_trips_the_breaker(tmp_path):
    marker = tmp_path / "started"
    exe = script(tmp_path, f"echo >> {marker}; sleep 60")
    c = cri(exe, timeout=0.5)
    with pytest.raises(CriError, match="timed out"):
        c.json("inspect", "x")
    assert c.call_budget.hung
    with pytest.raises(CriError, match="earlier call timed out"):
        c.json("pods")
    assert marker.read_text().count("\n") == 1


def test_grandchild_holding_stdout_is_killed_with_its_group(tmp_path):
    exe = script(tmp_path, "(sleep 60; echo late) & echo '{}'")
    start = time.monotonic()
    with pytest.raises(CriError, match="timed out"):
        cri(exe, timeout=0.5).json("inspect", "x")
    assert time.monotonic() - start < 30  # bounded: not the grandchild's 60 s


def test_output_over_the_cap_is_dropped(tmp_path):
    exe = script(tmp_path, "yes '{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{'")
    with pytest.raises(CriError, match="dropped"):
        cri(exe).run("ps", max_bytes=1 << 20)


def test_logs_keep_the_tail(tmp_path):
    exe = script(tmp_path, "i=0; while [ $i -lt 3000 ]; do echo line-$i; i=$((i+1)); done; echo warn >&2")
    out = cri(exe).run("logs", max_bytes=1000, keep_tail=True, merge_stderr=True)
    assert len(out) == 1000 and out.endswith(b"line-2999\nwarn\n")


def test_stdin_is_dev_null(tmp_path):
    # A child must never hold the core pipe: `cat` would block on an inherited stdin.
    exe = script(tmp_path, "cat; echo '{}'")
    r, w = os.pipe()
    saved = os.dup(0)
    os.dup2(r, 0)
    try:
        assert cri(exe, timeout=5).json("inspect", "x") == {}
    finally:
        os.dup2(saved, 0)
        for fd in (r, w, saved):
            os.close(fd)


def test_deadline_and_budget(tmp_path):
    exe = script(tmp_path, "sleep 5")
    c = cri(exe, deadline_in=-1)
    with pytest.raises(CriError, match="deadline"):
        c.json("inspect", "x")
    assert c.call_budget.deadline_hit and c.calls == 0
    c = cri(exe, timeout=2)
    with pytest.raises(OutOfBudget):
        c.json("inspect", "x", budget=0.2)
    assert not c.call_budget.hung  # cut by the caller's budget, not a hung runtime


def test_flags_from_host_dir_and_endpoint(tmp_path):
    (tmp_path / "crictl.yaml").write_text("timeout: 2\n")
    exe = script(tmp_path, 'printf \'{"argv": "%s"}\' "$*"')
    out = cri(exe, host_dir=str(tmp_path), endpoint="unix:///run/crio/crio.sock").json("pods")
    assert out["argv"] == f"-c {tmp_path}/crictl.yaml -r unix:///run/crio/crio.sock pods"


def test_missing_crictl(tmp_path):
    with pytest.raises(CriError, match="not found"):
        cri(None).json("pods")


def test_find_crictl_in_explicit_places_only(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "crictl").write_text("not executable")
    b = tmp_path / "b"
    b.mkdir()
    exe = script(b, "true")
    assert find_crictl((str(tmp_path / "missing"), str(tmp_path / "a"), str(b))) == exe
    assert find_crictl((exe,)) == exe  # a file named directly
    assert find_crictl((str(tmp_path / "a"),)) is None
