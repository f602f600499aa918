"""Real crashes through the real kernel into the installed composer.

`cdh install` (host.install) points kernel.core_pattern at HOST_DIR/cdc in a
temporary HOST_DIR; a small C program crashes in several ways; each crash
must give exactly one complete zip inside CORE_DIR, and uninstall must put the
previous core_pattern back.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import struct
import subprocess
import tempfile
import time
import zipfile
from pathlib import Path

import pytest

from cdh.agent import host
from cdh.config import load
from cdh.sysctl import core_pattern, is_ours
from tests.support.cgroups import make_container_cgroup, remove_cgroups
from tests.support.composer import installed_composer
from tests.support.require import require

HERE = Path(__file__).parent
ET_CORE, PT_NOTE, NT_PRSTATUS = 4, 4, 1


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def crasher(tmp_path_factory) -> Path:
    """tests/kernel/crasher.c, compiled once per session."""
    require(shutil.which("gcc"), "gcc is needed to build the crasher (.ci/run installs it)")
    exe = tmp_path_factory.mktemp("crasher") / "crasher"
    subprocess.run(["gcc", "-O1", "-g", "-pthread", "-o", str(exe), str(HERE / "crasher.c")], check=True)
    return exe


@pytest.fixture
def installed(kernel, request, image_runtime):
    """The composer installed in a short temporary HOST_DIR (core_pattern has 127 bytes), on the
    self-contained runtime the image ships (HOST_DIR/runtime/<id>), not this machine's Python.

    Extra settings come from ``@pytest.mark.settings(NAME=value)``.
    """
    marker = request.node.get_closest_marker("settings")
    with installed_composer(image_runtime, **(marker.kwargs if marker else {})) as settings:
        assert _read_sysctl("kernel/core_pattern") == core_pattern(settings.host_dir)
        yield settings
    assert _read_sysctl("kernel/core_pattern") == kernel["kernel/core_pattern"], \
        "uninstall must restore the previous pattern"


def _read_sysctl(name: str) -> str:
    return Path("/proc/sys", name).read_text().rstrip("\n")


def wait_for(condition, timeout: float = 60.0, what: str = "condition"):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def run_crash(crasher: Path, *args: str, expect_signal: int = 11, preexec_fn=None) -> int:
    p = subprocess.Popen([str(crasher), *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         preexec_fn=preexec_fn)
    assert p.wait(timeout=120) == -expect_signal
    return p.pid


def one_zip(settings) -> Path:
    core_dir = Path(settings.core_dir)
    zips = wait_for(lambda: list(core_dir.glob("*.zip")), what=f"a zip in {core_dir}")
    assert len(zips) == 1, zips
    wait_for(lambda: not list(core_dir.glob(".*.part")), what="no .part file left")
    return zips[0]


def composer_log(settings) -> str:
    path = Path(settings.host_dir, "composer.log")
    return path.read_text() if path.exists() else "(no composer.log)"


# ---------------------------------------------------------------- ELF checks


def elf_extent(head: bytes) -> tuple[int, int, list[tuple[int, int, int]]]:
    """(e_type, extent of header + program headers + every segment's file range, phdrs)."""
    assert head[:4] == b"\x7fELF" and head[4] == 2, "a 64-bit ELF"
    e_type, = struct.unpack_from("<H", head, 16)
    e_phoff, = struct.unpack_from("<Q", head, 32)
    e_phentsize, e_phnum = struct.unpack_from("<HH", head, 54)
    assert e_phnum != 0xFFFF, "extended numbering is not expected for these small processes"
    extent = e_phoff + e_phentsize * e_phnum
    phdrs = []
    for i in range(e_phnum):
        p_type, _, p_offset, _, _, p_filesz = struct.unpack_from("<IIQQQQ", head, e_phoff + i * e_phentsize)
        phdrs.append((p_type, p_offset, p_filesz))
        extent = max(extent, p_offset + p_filesz)
    return e_type, extent, phdrs


def note_types(data: bytes) -> list[int]:
    types, pos = [], 0
    while pos + 12 <= len(data):
        namesz, descsz, ntype = struct.unpack_from("<III", data, pos)
        types.append(ntype)
        pos += 12 + (namesz + 3) // 4 * 4 + (descsz + 3) // 4 * 4
    return types


def check_zip(zip_path: Path, core_dir: Path) -> tuple[dict, zipfile.ZipFile, str]:
    assert zip_path.parent == core_dir
    name = zip_path.name[: -len(".zip")]
    assert "/" not in name and ".." not in name
    zf = zipfile.ZipFile(zip_path)
    assert zf.testzip() is None
    info = json.loads(zf.read(f"{name}-dump-info.json"))
    core = zf.getinfo(f"{name}.core")
    with zf.open(core) as f:
        head = f.read(1 << 20)  # header, program headers and notes come first
    e_type, extent, phdrs = elf_extent(head)
    assert e_type == ET_CORE
    assert extent == core.file_size == info["core_size"], "the core was cut short or padded"
    info["_notes"] = [t for p_type, off, size in phdrs if p_type == PT_NOTE
                      for t in note_types(head[off:off + size])]
    return info, zf, name


def check_dump_info(info: dict, pid: int, exe: str, signal: int, crasher: Path) -> None:
    # IBM's fields as the kernel gave them (strings, %E with '!'), the typed values beside them
    assert info["real_pid"] == str(pid) and info["pid"] == pid and info["host_pid"] == pid  # one pid ns
    assert info["exe"] == exe and info["signal"] == str(signal) and info["signal_number"] == signal
    assert info["path"] == str(crasher).replace("/", "!") and info["executable"] == str(crasher)
    assert info["timestamp"] == str(info["timestamp_s"]) and abs(info["timestamp_s"] - time.time()) < 600
    assert info["node_hostname"] == os.uname().nodename
    assert info["compression"] == "deflate" and info["truncated"] is False
    assert info["pod_found_by"] == "none" and info["container_id"] is None
    assert isinstance(info["metadata_errors"], list) and len(info["uuid"]) == 36


# ---------------------------------------------------------------- tests


@pytest.mark.kernel
@pytest.mark.parametrize(("mode", "signal"), [("segv", 11), ("abort", 6)])
def test_crash_gives_one_complete_zip(installed, crasher, mode, signal):
    pid = run_crash(crasher, mode, expect_signal=signal)
    zip_path = one_zip(installed)
    info, zf, name = check_zip(zip_path, Path(installed.core_dir))
    check_dump_info(info, pid, "crasher", signal, crasher)
    assert NT_PRSTATUS in info["_notes"]
    # /proc was read while the process was still there
    assert b"Name:\tcrasher" in zf.read(f"{name}-proc/status")
    assert zf.read(f"{name}-proc/cmdline").startswith(str(crasher).encode() + b"\0")
    assert f"{name}-proc/environ" not in zf.namelist()
    assert stat_mode(zip_path) == 0o600
    # compose.done is written after the zip is published: wait for it rather than race it
    wait_for(lambda: "compose.done" in composer_log(installed), what="compose.done")
    log = [json.loads(line) for line in composer_log(installed).splitlines()]
    assert [line["event"] for line in log] == ["compose.start", "compose.done"], log


def stat_mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


@pytest.mark.kernel
@pytest.mark.settings(CDH_FILENAME_TEMPLATE="{pathname}-{exe_name}-{hostname}-{uuid}")
def test_a_process_named_dot_dot_slash_stays_inside_core_dir(installed, crasher):
    host_dir = Path(installed.host_dir)
    before = _names_around(host_dir)
    pid = run_crash(crasher, "evil")
    zip_path = one_zip(installed)
    info, zf, name = check_zip(zip_path, Path(installed.core_dir))
    # %e as the kernel gives it ('/' written as '!'); /proc has the real comm
    check_dump_info(info, pid, "..!..!evil", 11, crasher)
    assert b"Name:\t../../evil" in zf.read(f"{name}-proc/status")
    # {pathname} is the executable's path with its slashes back: sanitised too
    assert "evil" in name and "/" not in name and ".." not in name
    assert name.startswith(str(crasher).replace("/", "_"))
    assert _names_around(host_dir) == before, "something was written outside CORE_DIR"


def _names_around(host_dir: Path) -> set[str]:
    """Names in HOST_DIR, its parent and grandparent that a ../../ escape would hit."""
    names = set()
    for d in (host_dir, host_dir.parent, host_dir.parent.parent):
        names |= {str(p) for p in d.iterdir() if "evil" in p.name}
    names |= {str(p) for p in host_dir.iterdir() if p.name not in ("composer.log", "ratelimit.json")}
    return names


@pytest.mark.kernel
def test_multithreaded_crash_has_every_thread(installed, crasher):
    pid = run_crash(crasher, "threads")
    info, _, _ = check_zip(one_zip(installed), Path(installed.core_dir))
    check_dump_info(info, pid, info["exe"], 11, crasher)
    assert info["_notes"].count(NT_PRSTATUS) == 5  # main + 3 spinning + the crashing thread


@pytest.mark.kernel
def test_simultaneous_crashes_give_one_zip_each(installed, crasher):
    procs = [subprocess.Popen([str(crasher), mode]) for mode in ("segv", "abort", "threads", "segv")]
    pids = {p.pid: p.wait(timeout=120) for p in procs}
    assert sorted(pids.values()) == [-11, -11, -11, -6]
    core_dir = Path(installed.core_dir)

    def four_zips():
        found = list(core_dir.glob("*.zip"))
        return found if len(found) == 4 else None

    zips = wait_for(four_zips, what="four zips")
    wait_for(lambda: not list(core_dir.glob(".*.part")), what="no .part file left")
    seen = set()
    for zip_path in zips:
        info, _, _ = check_zip(zip_path, core_dir)
        assert info["signal_number"] == -pids[info["host_pid"]]
        seen.add(info["host_pid"])
    assert seen == set(pids)


@pytest.mark.kernel
@pytest.mark.slow
def test_larger_core_is_complete(installed, crasher):
    run_crash(crasher, "big", "96")
    info, _, _ = check_zip(one_zip(installed), Path(installed.core_dir))
    assert info["core_size"] > 96 << 20


@pytest.mark.kernel
def test_rlimit_core_1_is_not_piped(installed, crasher):
    """The kernel's recursion guard, which the composer keeps for itself and crictl.

    The kernel starts a pipe helper with RLIMIT_CORE 1 and pipes no core of a process
    whose limit is 1; with 0 it would (checked on 6.18), so the composer does not use 0.
    With core_pipe_limit > 0 the crasher is reaped only after its helper has read the
    whole core, so nothing can appear later for this crash.
    """
    def limit_one():
        resource.setrlimit(resource.RLIMIT_CORE, (1, 1))

    run_crash(crasher, "segv", preexec_fn=limit_one)
    assert list(Path(installed.core_dir).glob("*")) == []
    assert "compose.start" not in composer_log(installed)
    run_crash(crasher, "segv")  # and the next crash is captured as usual
    one_zip(installed)


@pytest.mark.kernel
def test_uninstall_restores_the_previous_pattern(kernel):
    host_dir = Path(tempfile.mkdtemp(prefix="cdhk-", dir="/tmp"))
    try:
        settings = load([{"CDH_HOST_DIR": str(host_dir)}])
        previous = _read_sysctl("kernel/core_pattern")
        host.install(settings)
        assert is_ours(_read_sysctl("kernel/core_pattern"), str(host_dir))
        assert int(_read_sysctl("kernel/core_pipe_limit")) > 0
        host.uninstall(settings)
        assert _read_sysctl("kernel/core_pattern") == previous
        assert not (host_dir / "cdc").exists()
    finally:
        shutil.rmtree(host_dir, ignore_errors=True)


# ---------------------------------------------------------------- a real cgroup and the crictl stub


@pytest.mark.kernel
def test_container_crash_gets_its_pod_from_the_cgroup(installed, crasher):
    from tests.support.cri import FakeNode

    node = FakeNode()
    shop = node.add_pod("api-0", namespace="shop", labels={"app": "api"})
    node.add_pod("api-0", namespace="test")  # same name elsewhere: the cgroup decides
    app = node.add_container(shop, "server", logs=["listening on :8080"])
    node.install(Path(installed.host_dir))  # HOST_DIR/crictl: first in CDH_CRICTL_PATH
    made = make_container_cgroup(shop, app["id"])
    leaf = made[-1]

    def enter_cgroup():
        (leaf / "cgroup.procs").write_text(str(os.getpid()))

    try:
        run_crash(crasher, "segv", preexec_fn=enter_cgroup)
    finally:
        wait_for(lambda: not (leaf / "cgroup.procs").read_text().strip(), what="an empty cgroup")
        remove_cgroups(made)
    info, zf, name = check_zip(one_zip(installed), Path(installed.core_dir))
    assert info["container_id"] == app["id"], composer_log(installed)
    assert (info["pod_found_by"], info["namespace"], info["podname"], info["container"]) == (
        "cgroup", "shop", "api-0", "server"), info["metadata_errors"]
    assert json.loads(zf.read(f"{name}-pod-info.json"))["id"] == shop["id"]
    assert zf.read(f"{name}-0.log") == b"listening on :8080\n"
