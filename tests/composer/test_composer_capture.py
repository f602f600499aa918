"""The composer as a process: settings, manual runs, deadline, disk full, permissions, memory."""

from __future__ import annotations

import os
import resource
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from cdh.agent import host
from cdh.config import load
from cdh.sysctl import Sysctl
from tests.support.composer import REPO, composer_env, fake_proc, run_composer, unzip_test
from tests.support.require import require

CORE = b"\x7fELF" + os.urandom(50_000) + bytes(200_000)


def test_manual_run_with_the_documented_command(tmp_path):
    """`cdh compose -e=x -p=1 -P=999999 -s=11 -t=0 -h=x -E='!x' -d=DIR < core`"""
    core_file = tmp_path / "core"
    core_file.write_bytes(CORE)
    out_dir = tmp_path / "DIR"
    with open(core_file, "rb") as stdin:
        r = run_composer(tmp_path / "nohost", stdin=stdin, args=[
            "-e=x", "-p=1", "-P=999999", "-s=11", "-t=0", "-h=x", "-E=!x", f"-d={out_dir}"])
    assert r.rc == 0, r.stderr
    assert r.zip_path.parent == out_dir and r.read(".core") == CORE
    info = r.dump_info
    assert (info["exe"], info["real_pid"], info["host_pid"], info["signal"]) == ("x", "1", 999999, "11")
    assert (info["timestamp"], info["hostname"], info["path"]) == ("0", "x", "!x")
    assert (info["pid"], info["signal_number"], info["timestamp_s"], info["executable"]) == (1, 11, 0, "/x")
    assert any("999999" in e for e in info["metadata_errors"])  # no such process: reported, not fatal
    # HOST_DIR does not exist: the composer does not create it and logs to stderr instead
    assert not (tmp_path / "nohost").exists() and '"event":"compose.start"' in r.stderr
    unzip_test(r.zip_path)


def test_first_log_line_then_one_done_line(tmp_path, host_dir):
    r = run_composer(host_dir, core=CORE, proc_root=fake_proc(tmp_path))
    assert [line["event"] for line in r.log] == ["compose.start", "compose.done"]
    start, done = r.log
    assert start["host_pid"] == 4242 and start["exe"] == "crasher" and start["uuid"] == r.dump_info["uuid"]
    assert done["zip"] == r.zip_path.name and done["core_size"] == len(CORE)


def test_installed_launcher_reads_composer_env_beside_it(tmp_path, host_dir):
    """`cdh install` writes HOST_DIR/cdc and composer.env; the kernel runs cdc with no environment."""
    root = tmp_path / "proc-sys"
    for name, value in (("kernel/core_pattern", "core"), ("kernel/core_pipe_limit", "0"),
                        ("fs/suid_dumpable", "0")):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(value + "\n")
    cores = tmp_path / "elsewhere"
    settings = load([{"CDH_HOST_DIR": str(host_dir), "CDH_CORE_DIR": str(cores), "CDH_COMPRESSION": "none"}])
    host.install(settings, Sysctl(str(root)))
    args = ["-c=0", "-e=app", "-p=1", "-P=999999", "-s=6", "-t=1718000000", "-h=h", "-E=!app"]
    out = subprocess.run([str(host_dir / "cdc"), *args], input=CORE, env={}, capture_output=True)
    assert out.returncode == 0, out.stderr
    (zip_path,) = cores.glob("*.zip")
    with zipfile.ZipFile(zip_path) as zf:
        (core_name,) = [n for n in zf.namelist() if n.endswith(".core")]
        assert zf.getinfo(core_name).compress_type == zipfile.ZIP_STORED  # from composer.env
        assert zf.read(core_name) == CORE
    assert (host_dir / "composer.log").exists()


def test_environment_wins_over_composer_env_and_d_wins_for_core_dir(tmp_path, host_dir):
    env_file = tmp_path / "composer.env"
    env_file.write_text(f'CDH_COMPRESSION="none"\nCDH_CORE_DIR="{tmp_path / "from-file"}"\n')
    r = run_composer(host_dir, core=CORE, env={"CDH_COMPOSER_ENV": str(env_file), "CDH_COMPRESSION": "zstd"},
                     args=["-e=a", "-P=1", f"-d={tmp_path / 'from-d'}"])
    assert r.rc == 0, r.stderr
    assert r.zip_path.parent == tmp_path / "from-d"
    with r.open() as zf:
        assert zf.getinfo(f"{r.name}.core").compress_type == 93
    assert r.dump_info["compression"] == "zstd"


def test_bad_settings_never_lose_the_core(tmp_path, host_dir):
    r = run_composer(host_dir, core=CORE, env={"CDH_COMPRESSION": "gzip", "CDH_TYPO": "1",
                                               "CDH_FILENAME_TEMPLATE": "{uuid}-{secret}"})
    assert r.rc == 0, r.stderr
    assert r.read(".core") == CORE and r.dump_info["compression"] == "deflate"
    errors = " ".join(line.get("error", "") for line in r.log if line["level"] == "error")
    assert "CDH_COMPRESSION" in errors and "CDH_TYPO" in errors and "CDH_FILENAME_TEMPLATE" in errors
    assert "-dump-" in r.name  # the default template


def test_environ_only_when_opted_in_and_never_logged(tmp_path, host_dir):
    proc_root = fake_proc(tmp_path, environ=b"API_TOKEN=hunter2\0")
    r = run_composer(host_dir, core=CORE, proc_root=proc_root)
    assert f"{r.name}-proc/environ" not in r.entries
    assert f"{r.name}-proc/status" in r.entries
    r.zip_path.unlink()
    r = run_composer(host_dir, core=CORE, proc_root=proc_root, env={"CDH_INCLUDE_PROC_ENVIRON": "true"})
    assert r.read("-proc/environ") == b"API_TOKEN=hunter2\0"
    assert "hunter2" not in (host_dir / "composer.log").read_text()


def test_files_are_private(tmp_path, host_dir):
    r = run_composer(host_dir, core=CORE)
    assert stat.S_IMODE(r.zip_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(r.core_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE((host_dir / "composer.log").stat().st_mode) == 0o600


def test_same_name_twice_keeps_both(tmp_path, host_dir):
    env = {"CDH_FILENAME_TEMPLATE": "{exe_name}"}
    first = run_composer(host_dir, core=b"one", env=env)
    second = run_composer(host_dir, core=b"two", env=env)
    assert first.rc == second.rc == 0
    zips = sorted(second.core_dir.glob("*.zip"))
    assert len(zips) == 2
    cores = set()
    for z in zips:
        with zipfile.ZipFile(z) as zf:
            cores |= {zf.read(n) for n in zf.namelist() if n.endswith(".core")}
    assert cores == {b"one", b"two"}


# ---------------------------------------------------------------- deadline


def test_deadline_finishes_a_valid_zip_marked_truncated(tmp_path, host_dir):
    argv = [sys.executable, "-m", "cdh", "compose", "-e=slow", "-p=1", "-P=999999", "-s=11"]
    env = composer_env(host_dir, {"CDH_COMPOSER_TIMEOUT": "1s"})
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    first = os.urandom(1 << 20)
    proc.stdin.write(first)
    proc.stdin.flush()  # ... and then the writer stalls, keeping the pipe open
    try:
        assert proc.wait(timeout=60) == 32
    finally:
        proc.stdin.close()
    (zip_path,) = (host_dir / "cores").glob("*.zip")
    unzip_test(zip_path)
    with zipfile.ZipFile(zip_path) as zf:
        name = zip_path.name[:-4]
        import json

        info = json.loads(zf.read(f"{name}-dump-info.json"))
        assert info["truncated"] is True and info["truncated_reason"] == "deadline"
        assert info["core_size"] == len(first) and zf.read(f"{name}.core") == first


# ---------------------------------------------------------------- disk full


@pytest.fixture
def small_fs(tmp_path):
    """A 2 MiB tmpfs (needs root and mount)."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m,mode=0700", "tmpfs", str(mnt)],
                          capture_output=True)
    require(done.returncode == 0, f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


# Without the retention guard's limits (cdh/retention.py), so that the disk really fills.
NO_LIMITS = {"CDH_KEEP_FREE": "0", "CDH_MAX_USE": "off"}


def test_disk_full_gives_a_valid_zip_marked_truncated(tmp_path, host_dir, small_fs):
    """No floor set, so the disk really fills: the core stops before the write that does not fit."""
    big = os.urandom(8 << 20)  # incompressible, four times the space
    r = run_composer(host_dir, core=big, env={"CDH_COMPRESSION": "none", **NO_LIMITS}, args=[
        "-e=big", "-P=999999", "-s=11", f"-d={small_fs}"])
    assert r.rc == 0 and r.parts == []
    unzip_test(r.zip_path)
    info = r.dump_info
    assert info["truncated"] is True and "full" in info["truncated_reason"]
    assert 0 < info["core_size"] < len(big)
    assert r.read(".core") == big[:info["core_size"]]  # the core's first bytes, intact


def test_disk_already_full_gives_no_zip_or_a_valid_one(tmp_path, host_dir, small_fs):
    filler = small_fs / "filler"
    with open(filler, "wb") as f:
        try:
            f.write(os.urandom(2 << 20))
        except OSError:
            pass
    r = run_composer(host_dir, core=CORE, env=NO_LIMITS, args=["-e=x", "-P=999999", f"-d={small_fs}"])
    assert r.rc == 1 and r.parts == []
    for z in r.zips:
        unzip_test(z)


def test_file_size_limit_is_handled_like_disk_full(tmp_path, host_dir):
    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))

    r = run_composer(host_dir, core=os.urandom(4 << 20), env={"CDH_COMPRESSION": "none"}, preexec_fn=limit)
    assert r.rc == 1 and r.parts == []
    unzip_test(r.zip_path)
    assert "File too large" in r.dump_info["truncated_reason"]


# ---------------------------------------------------------------- memory


def _vm_hwm_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["deflate", "none", "zstd"])
def test_streaming_2gib_keeps_peak_rss_under_64mib(tmp_path, host_dir, mode):
    """Peak RSS of the composer's own address space (VmHWM) while 2 GiB stream through it.

    VmHWM never decreases, so sampling it while we feed (and once more as stdin closes)
    gives the peak. ru_maxrss from wait4 is printed too, but not asserted: a child
    spawned from pytest inherits pytest's own RSS high-water mark from before exec.
    """
    total = 2 << 30
    argv = [sys.executable, "-m", "cdh", "compose", "-e=big", "-p=1", "-P=999999", "-s=11"]
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=composer_env(host_dir, {"CDH_COMPRESSION": mode}), cwd=str(REPO))
    block = (os.urandom(256 << 10) + bytes(512 << 10) + b"stack frame " * (256 << 10))[: 1 << 20]
    hwm = 0
    for i in range(total // len(block)):
        proc.stdin.write(block)
        if i % 64 == 0:
            hwm = max(hwm, _vm_hwm_kib(proc.pid))
    hwm = max(hwm, _vm_hwm_kib(proc.pid))
    proc.stdin.close()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    assert proc.returncode == 0, proc.stderr.read()
    print(f"composer peak RSS for a 2 GiB core ({mode}): VmHWM {hwm / 1024:.1f} MiB "
          f"(ru_maxrss {usage.ru_maxrss / 1024:.1f} MiB, includes the spawning pytest)")
    assert 0 < hwm < 64 * 1024
    (zip_path,) = Path(host_dir / "cores").glob("*.zip")
    with zipfile.ZipFile(zip_path) as zf:
        core = next(i for i in zf.infolist() if i.filename.endswith(".core"))
        assert core.file_size == total
