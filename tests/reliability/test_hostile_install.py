"""Hostile host state and settings for `cdh install` / `cdh uninstall` (the agent's start and the
DaemonSet's preStop hook): planted backups and symlinks in HOST_DIR, a HOST_DIR that is not root's,
and settings that decide what the composer executes.

Each command runs for real (``python -m cdh install``), in a private mount namespace whose /proc/sys
is a fake tree (tests/support/hostile.py: nothing here touches this machine's sysctls, and the default
HOST_DIR is a scratch tmpfs), and the installed composer (HOST_DIR/cdc) is then run the way the
kernel runs it: with no environment, reading HOST_DIR/composer.env.

Secure behaviour:
- HOST_DIR is used only if it is root-owned and not writable by group or others; an existing
  directory is never chmodded, and nothing under it is followed if it is a symlink;
- CDH_CRICTL_PATH (what runs as root on the host) comes from the DaemonSet's environment only, never
  from the ConfigMap a config editor may change;
- composer.env is quoted so that no value can add a line;
- a backup is restored only if it is a regular file owned by root in HOST_DIR and its content is
  plausible (a pattern whose piped program exists, is root-owned and not writable by others); else
  the safe default is written and the reason printed; the bytes are restored as bytes.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
import zipfile
from pathlib import Path

import pytest

from tests.support.composer import KERNEL_ARGS, fake_proc
from tests.support.cri import FakeNode, cgroup_v2_systemd
from tests.support.hostile import (
    cdh_in_sandbox,
    clean_env,
    fake_sysctls,
    in_sandbox,
    sandbox_unavailable,
    sysctl,
)
from tests.support.require import require

AREA = "security"  # tests/reliability/figures.py: one case and one attack per test

NOBODY = 65534
SAFE_DEFAULT = b"core"


@pytest.fixture
def node(tmp_path):
    """A short HOST_DIR (the core_pattern must fit 127 bytes), a fake /proc/sys, and helpers."""
    why = sandbox_unavailable()
    require(not why, f"install tests need a private mount namespace: {why}")
    top = Path(tempfile.mkdtemp(prefix="cdh-", dir="/tmp"))
    n = _Node(top, tmp_path)
    try:
        yield n
    finally:
        shutil.rmtree(top, ignore_errors=True)


class _Node:
    def __init__(self, top: Path, tmp_path: Path) -> None:
        self.top = top
        self.host = top / "host"
        self.host.mkdir(mode=0o700)
        self.sysctls = fake_sysctls(tmp_path / "proc-sys")
        self.tmp = tmp_path
        self.env: dict[str, str] = {"CDH_HOST_DIR": str(self.host),
                                    "CDH_CRI_ENDPOINT": f"unix://{self.host}/no-cri.sock"}

    def cdh(self, *args: str, **settings: str):
        return cdh_in_sandbox(*args, sysctl_root=self.sysctls, env=clean_env(**{**self.env, **settings}))

    def pattern(self) -> bytes:
        return sysctl(self.sysctls, "kernel.core_pattern")

    def crash(self, core: bytes, proc_root: Path | None = None):
        """Run the installed composer as the kernel does: no environment, the core on stdin."""
        env = {"PATH": "/usr/bin:/bin"}
        if proc_root is not None:
            env["CDH_TEST_PROC_ROOT"] = str(proc_root)
        return in_sandbox([str(self.host / "cdc"), *KERNEL_ARGS, "-P=4242"], self.sysctls, env, input=core)


def _ok(proc) -> str:
    out = proc.stdout.decode() + proc.stderr.decode()
    assert proc.returncode == 0, out
    return out


# ---------------------------------------------------------------- what the composer executes


def test_crictl_path_from_the_configmap_never_reaches_the_composer(node):
    """Attack: someone who may edit the ConfigMap (cdh.env: a config editor, not a cluster admin) sets
    CDH_CRICTL_PATH to a program of their choice; the agent copies it into composer.env and the
    composer runs it as root in the host's namespaces at the next crash. Secure: CDH_CRICTL_PATH is
    taken from the DaemonSet's environment only (like CDH_HOST_DIR): in the ConfigMap it is a
    one-line error (exit 3) or ignored with a warning; the program never runs."""
    fake = FakeNode()
    pod = fake.add_pod("web-0", namespace="shop")
    app = fake.add_container(pod, "app")
    stub = fake.install(node.top / "evil-bin")   # root-owned, 0755: only its source makes it hostile
    config = node.tmp / "cdh.env"
    config.write_text(f"CDH_CRICTL_PATH={stub.dir}\n")
    installed = node.cdh("install", CDH_CONFIG_FILE=str(config))
    if installed.returncode != 0:  # refused: fine if it names the setting in one line
        lines = installed.stderr.decode().strip().splitlines()
        assert installed.returncode == 3 and len(lines) == 1 and "CDH_CRICTL_PATH" in lines[0], lines
        return
    proc_root = fake_proc(node.tmp, cgroup=cgroup_v2_systemd(pod, app["id"]))
    node.crash(b"\x7fELF" + os.urandom(5000), proc_root)
    assert stub.calls() == [], f"the ConfigMap's crictl ran as root: {stub.commands()}"


def test_a_value_with_a_newline_cannot_add_a_line_to_composer_env(node):
    """Attack: a DaemonSet env value (or anything that reaches render_env) holding a newline:
    render_env double-quotes values but does not escape newlines, so the value adds its own lines to
    composer.env (here CDH_COMPRESSION=none), and the unterminated first line makes today's composer
    drop the whole file, so CORE_DIR falls back to the default. Secure: values are escaped so no
    value can add a line (or a value with a newline is refused with one line, exit 3)."""
    custom = node.host / "custom-cores"
    endpoint = f"unix://{node.host}/no-cri.sock\nCDH_COMPRESSION=none\n#"
    installed = node.cdh("install", CDH_CORE_DIR=str(custom), CDH_CRI_ENDPOINT=endpoint)
    if installed.returncode != 0:
        lines = installed.stderr.decode().strip().splitlines()
        assert installed.returncode == 3 and len(lines) == 1 and "CDH_CRI_ENDPOINT" in lines[0], lines
        return
    core = b"\x7fELF" + os.urandom(5000)
    node.crash(core)
    zips = sorted(custom.glob("*.zip")) if custom.exists() else []
    assert len(zips) == 1, f"no zip in the configured CORE_DIR ({custom}): composer.env was not read"
    with zipfile.ZipFile(zips[0]) as zf:
        entry = next(i for i in zf.infolist() if i.filename.endswith(".core"))
        assert entry.compress_type == zipfile.ZIP_DEFLATED, "the injected CDH_COMPRESSION=none was applied"


# ---------------------------------------------------------------- backups


def _plant_backup(node, content: bytes) -> Path:
    bak = node.host / "core_pattern.bak"
    bak.unlink(missing_ok=True)
    bak.write_bytes(content)
    os.chmod(bak, 0o600)
    return bak


def _program(node, name: str, owner: int = 0, mode: int = 0o755) -> Path:
    exe = node.top / name
    exe.write_text("#!/bin/sh\ntouch \"$0.ran\"\n")
    os.chmod(exe, mode)
    os.chown(exe, owner, owner)
    return exe


BACKUPS = {
    "pipe-to-a-missing-program": lambda node: b"|/nonexistent/collector %p",
    "pipe-to-a-users-program": lambda node: b"|%s %%p" % bytes(_program(node, "users", owner=NOBODY)),
    "pipe-to-a-world-writable-program": lambda node: b"|%s %%p" % bytes(_program(node, "ww", mode=0o777)),
}


@pytest.mark.parametrize("case", sorted(BACKUPS))
def test_uninstall_restores_only_a_plausible_backup(node, case):
    """Attack: whoever can write HOST_DIR (a hostPath pod, a node user where HOST_DIR is not private)
    replaces core_pattern.bak with a pipe to their program; uninstall (the preStop hook, every rollout)
    writes it into kernel.core_pattern, and the kernel runs that program as root with full
    capabilities at the next crash. Secure: a piped program must exist and be root-owned and not
    writable by others; otherwise the safe default ("core") is written and the reason printed."""
    _ok(node.cdh("install"))
    _plant_backup(node, BACKUPS[case](node))
    out = _ok(node.cdh("uninstall"))
    assert node.pattern() == SAFE_DEFAULT, f"restored {node.pattern()!r}"
    assert "core_pattern.bak" in out, f"the reason is not printed: {out}"


def test_uninstall_never_follows_a_symlinked_backup(node):
    """Attack: core_pattern.bak is a symlink (to a file the attacker controls elsewhere, or to any file
    on the node whose content is then written into a sysctl). Secure: the backup is opened with
    O_NOFOLLOW, must be a regular file owned by root; otherwise the safe default is written."""
    _ok(node.cdh("install"))
    elsewhere = node.top / "elsewhere"
    elsewhere.write_bytes(b"|/bin/true %p")   # plausible content: only the symlink is wrong
    (node.host / "core_pattern.bak").unlink()
    (node.host / "core_pattern.bak").symlink_to(elsewhere)
    _ok(node.cdh("uninstall"))
    assert node.pattern() == SAFE_DEFAULT, f"restored {node.pattern()!r} through a symlink"


def test_a_backup_that_is_not_utf8_is_restored_as_bytes(node):
    """Attack (or a node whose original pattern was not UTF-8): the backup holds a byte that is not
    UTF-8. Today uninstall ends in a UnicodeDecodeError traceback before restoring anything, and the
    node is left on cdh's pattern with its composer still installed. Secure: the backup is read and
    written back as bytes; uninstall completes."""
    _ok(node.cdh("install"))
    original = b"/var/crash/core.\xe9t\xe9.%p"   # a file pattern: plausible, only not UTF-8
    _plant_backup(node, original)
    out = node.cdh("uninstall")
    assert "Traceback" not in out.stderr.decode(), out.stderr.decode()[-1500:]
    assert out.returncode == 0
    assert node.pattern() == original, f"the node is left on {node.pattern()!r}"
    assert not (node.host / "cdc").exists()


def test_install_on_a_node_whose_pattern_is_not_utf8(node):
    """The same bytes as the node's own pattern: install reads it as text and ends in a traceback,
    so the node cannot get cdh at all. Secure: read, backed up and later restored as bytes."""
    original = b"/var/crash/core.\xe9t\xe9.%p"
    (node.sysctls / "kernel" / "core_pattern").write_bytes(original + b"\n")
    installed = node.cdh("install")
    assert "Traceback" not in installed.stderr.decode(), installed.stderr.decode()[-1500:]
    assert installed.returncode == 0
    _ok(node.cdh("uninstall"))
    assert node.pattern() == original


# ---------------------------------------------------------------- HOST_DIR itself


def test_a_symlinked_runtime_directory_is_never_pruned(node):
    """Attack: HOST_DIR/runtime replaced by a symlink to another directory: install chmods the target
    0700 and prune (every uninstall, with no grace) marks and `rmtree`s every subdirectory of it as a
    retired runtime. Secure: HOST_DIR/runtime is opened with O_NOFOLLOW (openat from a checked
    HOST_DIR fd); a symlink is refused and nothing under its target is touched."""
    _ok(node.cdh("install"))
    victim = node.top / "victim"
    for d in ("projects", "backups"):
        (victim / d).mkdir(parents=True)
        (victim / d / "keep.txt").write_text("precious")
    os.chmod(victim, 0o755)
    (node.host / "runtime").symlink_to(victim)
    node.cdh("uninstall")
    assert sorted(p.name for p in victim.iterdir()) == ["backups", "projects"], "pruned through the link"
    assert all((victim / d / "keep.txt").read_text() == "precious" for d in ("projects", "backups"))
    assert sorted(p.name for p in (victim / "projects").iterdir()) == ["keep.txt"], "marked as retired"
    assert stat.S_IMODE(victim.stat().st_mode) == 0o755


HOST_DIRS = {
    "owned-by-a-user": lambda host: os.chown(host, NOBODY, NOBODY) or os.chmod(host, 0o755),
    "writable-by-everyone": lambda host: os.chmod(host, 0o1777),
}


@pytest.mark.parametrize("case", sorted(HOST_DIRS))
def test_a_host_dir_others_control_is_refused(node, case):
    """Attack: HOST_DIR exists and is owned by another user, or writable by everyone (it is /tmp, or a
    typo names a shared directory). Install chmods it and puts cdc there: the other user can replace
    cdc, composer.env or (HOST_DIR is first on the default CDH_CRICTL_PATH) drop a `crictl`, and the
    kernel or the composer runs it as root at the next crash. Secure: install refuses in one line
    naming CDH_HOST_DIR, leaves the directory's mode alone and kernel.core_pattern unchanged."""
    HOST_DIRS[case](node.host)
    before = stat.S_IMODE(node.host.stat().st_mode)
    out = node.cdh("install")
    assert stat.S_IMODE(node.host.stat().st_mode) == before, "HOST_DIR was chmodded"
    assert node.pattern() == b"core", f"core_pattern now points into it: {node.pattern()!r}"
    assert out.returncode != 0 and b"CDH_HOST_DIR" in out.stderr, out.stderr.decode()


# ---------------------------------------------------------------- a node the IBM Core Dump Handler left


def _ibm_node(node, mode: int = 0o700) -> Path:
    """IBM's HOST_DIR beside cdh's, as IBM's agent leaves it when its pod goes without its preStop
    hook: its pattern still in kernel.core_pattern, its composer, settings and backups in the directory."""
    ibm = node.top / "ibm"
    ibm.mkdir()
    os.chmod(ibm, mode)
    (ibm / "cdc").write_bytes(b"\x7fELF\x02\x01\x01 IBM's composer")
    (ibm / ".env").write_text("LOG_LEVEL=Warn\n")
    pattern = f"|{ibm}/cdc -c=%c -e=%e -p=%p -s=%s -t=%t -d={ibm}/cores -h=%h -E=%E"
    (node.sysctls / "kernel" / "core_pattern").write_text(pattern + "\n")
    return ibm


@pytest.mark.parametrize("name", ["core_pattern.bak", "composer.log"])
def test_a_fifo_in_ibms_directory_does_not_hold_the_install(node, name):
    """Attack: a FIFO where the take-over of IBM's node reads (a backup, IBM's log):
    open(2) waits for a writer that never comes, so `cdh install` never finishes, the DaemonSet's pod
    never becomes ready and the node keeps IBM's dead pattern (every crash lost). Secure: what the
    take-over reads is opened without blocking and used only when it is a regular root file."""
    ibm = _ibm_node(node)
    (ibm / name).unlink(missing_ok=True)
    os.mkfifo(ibm / name)
    out = _ok(node.cdh("install"))
    assert node.pattern().startswith(f"|{node.host}/cdc ".encode()), out


def test_backups_in_an_ibm_directory_others_can_write_are_not_adopted(node):
    """Attack: IBM's HOST_DIR is writable by others (an old chart's hostPath, a shared directory), so a
    node user writes the `.bak` files cdh adopts as the node's originals: uninstall then writes their
    values into the kernel (here: cores of setuid programs, root's memory, dumped into a directory
    the user chose). Secure: IBM's directory is taken over only when it is root's alone, as cdh's
    own HOST_DIR; otherwise it is named and left as it is, and nothing in it is adopted."""
    ibm = _ibm_node(node, mode=0o777)
    (ibm / "core_pattern.bak").write_bytes(b"/tmp/loot/core.%p")
    (ibm / "suid_dumpable.bak").write_bytes(b"2")
    out = _ok(node.cdh("install"))
    assert str(ibm) in out and "not root's alone" in out, out
    _ok(node.cdh("uninstall"))
    assert node.pattern() == SAFE_DEFAULT, f"restored {node.pattern()!r} from a backup others wrote"
    assert sysctl(node.sysctls, "fs.suid_dumpable") == b"0"
    assert (ibm / "core_pattern.bak").exists() and (ibm / "cdc").exists(), "IBM's files were moved"


def test_a_symlinked_backup_in_ibms_directory_is_not_adopted(node):
    """Attack: IBM's core_pattern.bak is a symlink to a file a node user controls. Secure: as cdh's
    own backups, it is adopted only when it is a regular root file with one link."""
    ibm = _ibm_node(node)
    theirs = node.top / "theirs"
    theirs.write_bytes(b"/tmp/loot/core.%p")
    os.chown(theirs, NOBODY, NOBODY)
    (ibm / "core_pattern.bak").symlink_to(theirs)
    _ok(node.cdh("install"))
    _ok(node.cdh("uninstall"))
    assert node.pattern() == SAFE_DEFAULT, f"restored {node.pattern()!r} through a symlink"
