"""Hostile node state for the composer: directories and files planted in or around HOST_DIR, and the
crictl it executes. The composer runs as root in the host's namespaces for every crash, while the
kernel holds the dying process, so whatever it follows, chmods, blocks on or executes is the node's.

The attacker here can create files where cdh's directories are configured to be (a node user, another
hostPath pod, a mistyped CDH_CORE_DIR that names /tmp or /) or edits composer.env. Secure behaviour:
- never follow a symlink and never chmod a directory cdh did not create (open by directory fd with
  O_NOFOLLOW, check owner and mode as systemd's chase() or sudo do);
- refuse a log that is not a regular file, without blocking (the composer, and the agent's relay of
  that log);
- execute crictl only if it (and its directory) is root-owned and not writable by group or others;
- parse composer.env line by line: a bad line costs that line, not the file.
Every composer test runs ``cdh compose`` as the kernel would (tests/support/composer.py); the
relay's runs ``cdh agent`` against a real S3 server.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import urllib.request
import zipfile
from pathlib import Path

import pytest

from tests.support.agentproc import base_env
from tests.support.composer import fake_proc, run_composer
from tests.support.cri import FakeNode, cgroup_v2_systemd
from tests.support.s3server import free_port

AREA = "security"  # tests/reliability/figures.py: one case and one attack per test

NOBODY = 65534


def _victim_dir(tmp_path: Path, mode: int = 0o1777) -> Path:
    """A directory cdh did not create, shaped like /tmp: sticky and writable by everyone."""
    victim = tmp_path / "victim-tmp"
    victim.mkdir()
    (victim / "someone-elses-file").write_text("x")
    os.chmod(victim, mode)
    return victim


def _mode(p: Path) -> int:
    return stat.S_IMODE(os.stat(p).st_mode)


PLACES = {
    # CDH_CORE_DIR set (a typo, a bad overlay) to an existing shared directory
    "core-dir-is-shared": lambda host, victim: ({"CDH_CORE_DIR": str(victim)}, None),
    # HOST_DIR/cores replaced by a symlink to it
    "core-dir-symlink": lambda host, victim: ({}, host / "cores"),
    # the event directory, the same two ways
    "event-dir-is-shared": lambda host, victim: ({"CDH_EVENT_DIR": str(victim), "CDH_CORE_EVENTS": "true"},
                                                 None),
    "event-dir-symlink": lambda host, victim: ({"CDH_CORE_EVENTS": "true"}, host / "events"),
}


@pytest.mark.parametrize("place", sorted(PLACES))
def test_a_directory_cdh_did_not_create_is_never_chmodded_or_followed(tmp_path, place):
    """Attack: CORE_DIR or EVENT_DIR is (or is a symlink to) a directory cdh did not create, such as
    /tmp or /: `makedirs_private` follows the link and chmods it 0700 as root at the next crash (every
    other user of /tmp loses it; `/` becomes unusable), and the zip lands wherever the link points.
    Secure: an existing directory is checked, never chmodded: a symlink is refused (O_NOFOLLOW), and
    so is a directory not owned by root or writable by others; the composer says so in its log."""
    host = tmp_path / "host"
    host.mkdir(mode=0o700)
    victim = _victim_dir(tmp_path)
    env, link = PLACES[place](host, victim)
    if link is not None:
        link.symlink_to(victim)
    r = run_composer(host, core=b"\x7fELF" + os.urandom(10_000), env={**env, "CDH_RATE_LIMIT": "off"})
    assert r.rc in (0, 1), r.stderr
    assert _mode(victim) == 0o1777, f"the shared directory was chmodded to {oct(_mode(victim))}"
    if link is not None:
        assert sorted(p.name for p in victim.iterdir()) == ["someone-elses-file"], "followed the link"
    assert any(line["level"] in ("warning", "error") for line in r.log), "the refusal is not logged"


def test_a_fifo_at_the_log_path_does_not_hold_the_crash(tmp_path, figures):
    """Attack: a FIFO at HOST_DIR/composer.log. The composer opens its log for writing before anything
    else, and open(2) of a FIFO without a reader blocks: before the composer's deadline even starts,
    so every crashing process on the node stays held by the kernel, forever. Secure: the log is opened
    O_NONBLOCK and used only if fstat says S_ISREG (else stderr); the core is captured."""
    host = tmp_path / "host"
    host.mkdir(mode=0o700)
    os.mkfifo(host / "composer.log", 0o600)
    core = b"\x7fELF" + os.urandom(10_000)
    try:
        r = run_composer(host, core=core, env={"CDH_COMPOSER_TIMEOUT": "10s"}, timeout=30)
    except subprocess.TimeoutExpired:
        pytest.fail("the composer was still blocked after 30 s (with a 10 s deadline): the crash is held")
    assert r.rc == 0 and r.read(".core") == core
    assert stat.S_ISFIFO(os.stat(host / "composer.log", follow_symlinks=False).st_mode)
    figures.captured(1)


def _crictl_node(tmp_path: Path):
    node = FakeNode()
    pod = node.add_pod("web-0", namespace="shop")
    app = node.add_container(pod, "app", logs=["hello"])
    stub = node.install(tmp_path / "bin")
    return stub, fake_proc(tmp_path, cgroup=cgroup_v2_systemd(pod, app["id"]))


CRICTL_OWNERS = {
    "writable-by-everyone": lambda exe: os.chmod(exe, 0o777),
    "owned-by-a-user": lambda exe: os.chown(exe, NOBODY, NOBODY),
    "directory-writable-by-everyone": lambda exe: os.chmod(exe.parent, 0o777),
}


@pytest.mark.parametrize("case", sorted(CRICTL_OWNERS))
def test_crictl_that_others_could_have_written_is_never_executed(tmp_path, case, figures):
    """Attack: the crictl named by CDH_CRICTL_PATH (or found on its default list) can be written by
    someone other than root: they replace it and the composer runs their program as root in the
    host's namespaces at the next crash. Secure: crictl is executed only if it and its directory are
    root-owned and not writable by group or others (checked on the opened file, then fexecve, or by
    path with O_NOFOLLOW); otherwise it is skipped, logged, and the core still captured."""
    stub, proc_root = _crictl_node(tmp_path)
    CRICTL_OWNERS[case](stub.exe)
    host = tmp_path / "host"
    host.mkdir(mode=0o700)
    core = b"\x7fELF" + os.urandom(10_000)
    r = run_composer(host, core=core, proc_root=proc_root,
                     env={"CDH_CRICTL_PATH": str(stub.dir), "CDH_CRI_TIMEOUT": "10s"})
    assert r.rc == 0 and r.read(".core") == core
    assert stub.calls() == [], f"crictl was executed: {stub.commands()}"
    figures.captured(1)


ENV_FILES = {
    "a-line-that-is-not-an-assignment": b"this line is not KEY=VALUE\n",
    "a-comment-that-is-not-utf8": b"# written on a latin-1 console: caf\xe9\n",
    "an-unterminated-quote": b'CDH_LOG_LINES="12\n',
}


@pytest.mark.parametrize("case", sorted(ENV_FILES))
def test_one_bad_line_in_composer_env_costs_that_line_only(tmp_path, case, figures):
    """Attack (or an honest hand edit): one bad line, or one byte that is not UTF-8, in composer.env.
    Today the composer drops the whole file and runs on defaults: with a non-default HOST_DIR or
    CORE_DIR its zips go to a directory the agent does not watch, and are never uploaded. Secure: every
    good line is kept; the bad one is reported (file and line number) in the composer log."""
    host = tmp_path / "host"
    host.mkdir(mode=0o700)
    custom = tmp_path / "custom-cores"
    env_file = tmp_path / "composer.env"
    env_file.write_bytes(b"# Written by the cdh agent\n" + f'CDH_CORE_DIR="{custom}"\n'.encode()
                         + ENV_FILES[case] + b'CDH_COMPRESSION="none"\n')
    core = b"\x7fELF" + os.urandom(10_000)
    r = run_composer(host, core=core, env={"CDH_COMPOSER_ENV": str(env_file)})
    assert r.rc == 0
    zips = sorted(custom.glob("*.zip")) if custom.exists() else []
    elsewhere = sorted(p.name for p in (host / "cores").glob("*"))
    assert len(zips) == 1, f"the zip went to {elsewhere} in HOST_DIR/cores, not to {custom}"
    with zipfile.ZipFile(zips[0]) as zf:
        entry = next(i for i in zf.infolist() if i.filename.endswith(".core"))
        assert entry.compress_type == zipfile.ZIP_STORED, "the good line after the bad one was dropped"
    errors = [line for line in r.log if line["level"] == "error"]
    assert errors and any("composer.env" in json.dumps(line) for line in errors), r.log
    figures.captured(1)


def test_a_fifo_at_the_composer_log_does_not_wedge_the_agent(tmp_path, s3_server, bucket, start_agent):
    """Attack: a FIFO at HOST_DIR/composer.log. The agent's log relay opens it O_RDONLY on the event
    loop at start: open(2) of a FIFO without a writer blocks, so the agent never listens, its startup
    probe fails, and the kubelet restarts it (each restart an uninstall and reinstall of the node).
    Secure: the relay opens with O_NONBLOCK|O_NOFOLLOW, relays only a regular file, logs the refusal."""
    port = free_port()
    env = base_env(tmp_path, s3_server.agent_env(bucket), CDH_METRICS_PORT=str(port))
    os.mkfifo(tmp_path / "host" / "composer.log", 0o600)
    agent = start_agent(env)
    try:
        agent.wait_event("agent.started", timeout=30)
    except AssertionError:
        pytest.fail("the agent did not finish starting in 30 s: blocked opening the FIFO")
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as r:
        assert r.status == 200
