"""Stack traces and signatures of real crashes, taken by the installed composer under the real kernel.

tests/support/crashers/stack.c is built here three ways (-O2 with frame pointers, -O2 without,
and that stripped) under one file name, and crashed in known ways with ASLR on; every zip's
dump-info is read back. The promises (README "Stack traces and signatures"): the same fault site
crashed twice gives one signature, two call sites that both abort() give two, the trace names the
functions and matches gdb frame for frame, and a stripped binary still groups, by build id and
offset.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from cdh import ondisk
from cdh.stack.offline import tap_file
from cdh.stack.tap import StackTap
from tests.support.cli import run_cdh
from tests.support.composer import installed_composer
from tests.support.crashes import CRASHERS
from tests.support.gdb import physical_frames, readelf_build_id
from tests.support.kernel import exclusive, unavailable
from tests.support.require import require

pytestmark = pytest.mark.kernel

BUILDS = {"fp": ["-O2", "-g", "-fno-omit-frame-pointer"],
          "nofp": ["-O2", "-g", "-fomit-frame-pointer"],
          "stripped": ["-O2", "-g", "-fomit-frame-pointer"]}
# (name, mode, signal): segv twice, to show ASLR changes nothing.
CRASHES = [("segv", "segv", 11), ("segv-again", "segv", 11), ("abort_a", "abort_a", 6),
           ("abort_b", "abort_b", 6), ("handler", "handler", 6), ("threads", "threads", 11)]
EXE = "stackcrash"   # one name for every build: the module name is part of a named frame's token
PY_CRASH = "import ctypes\ndef parse(): ctypes.string_at(0)\nparse()\n"


class Crash:
    def __init__(self, zip_path: Path, binary: Path, pid: int) -> None:
        self.zip_path, self.binary, self.pid = zip_path, binary, pid
        with zipfile.ZipFile(zip_path) as zf:
            name = zip_path.name[: -len(ondisk.ZIP_SUFFIX)]
            self.info = json.loads(zf.read(name + ondisk.DUMP_INFO))
            self.core = zf.read(name + ondisk.CORE)

    @property
    def stack(self) -> dict:
        return self.info["stack"]

    @property
    def frames(self) -> list[dict]:
        return self.stack["threads"][0]["frames"]

    def names(self) -> list[str | None]:
        return [f.get("function") for f in self.frames]


@pytest.fixture(scope="module")
def builds(tmp_path_factory) -> dict[str, Path]:
    require(shutil.which("gcc") and shutil.which("strip"), "gcc and strip build the crasher (.ci/run)")
    out = tmp_path_factory.mktemp("stack-builds")
    built = {}
    for build, flags in BUILDS.items():
        (out / build).mkdir()
        binary = out / build / EXE
        subprocess.run(["gcc", *flags, "-pthread", "-o", str(binary), str(CRASHERS / "stack.c")],
                       check=True, capture_output=True)
        if build == "stripped":
            subprocess.run(["strip", "--strip-all", str(binary)], check=True)
        built[build] = binary
    return built


class Crashes(dict):
    """{(build, crash name): Crash}, and the composer's log lines of them all (``log``)."""

    log: list[dict]


@pytest.fixture(scope="module")
def crashes(builds, image_runtime, tmp_path_factory) -> Crashes:
    """Every crash of every build, through the installed composer."""
    why = unavailable()
    require(why is None, f"the real kernel cannot be used here: {why}")
    require(Path("/proc/sys/kernel/randomize_va_space").read_text().strip() == "2",
            "ASLR must be on (kernel.randomize_va_space=2) for the signature to be shown independent of it")
    kept = tmp_path_factory.mktemp("stack-zips")
    found = Crashes()
    with exclusive(), installed_composer(image_runtime, CDH_RATE_LIMIT="off") as settings:
        for build, binary in builds.items():
            for name, mode, signal in CRASHES:
                pid = run(binary, mode, signal)
                zip_path = next_zip(Path(settings.core_dir), kept)
                found[(build, name)] = Crash(zip_path, binary, pid)
        # CPython faulting in a C extension, plainly and with faulthandler (its handler runs on an
        # alternate stack, reports, and re-raises the signal)
        for name, flags in (("plain", ()), ("faulthandler", ("-X", "faulthandler"))):
            p = subprocess.Popen([sys.executable, *flags, "-c", PY_CRASH], stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
            assert p.wait(timeout=120) == -11
            zip_path = next_zip(Path(settings.core_dir), kept)
            found[("python", name)] = Crash(zip_path, Path(sys.executable), p.pid)
        # coredump_filter 0: no anonymous memory in the core, so no stack: /proc/<pid>/mem gives it
        pid = run(builds["nofp"], "segv", 11, coredump_filter="0")
        zip_path = next_zip(Path(settings.core_dir), kept)
        found[("nofp", "no-stack-in-core")] = Crash(zip_path, builds["nofp"], pid)
        found.log = composer_log(Path(settings.host_dir, ondisk.COMPOSER_LOG), done=len(found))
    return found


def composer_log(path: Path, done: int, timeout: float = 60) -> list[dict]:
    """The composer's log lines once it holds ``done`` compose.done lines (each is written after
    its zip is published: the last zip can be there a moment before its line)."""
    deadline = time.monotonic() + timeout
    while True:
        lines = [json.loads(line) for line in path.read_text().splitlines()]
        if sum(line["event"] == "compose.done" for line in lines) >= done or time.monotonic() > deadline:
            return lines
        time.sleep(0.02)


def run(binary: Path, mode: str, signal: int, coredump_filter: str | None = None) -> int:
    def setup():
        if coredump_filter is not None:
            Path("/proc/self/coredump_filter").write_text(coredump_filter)

    p = subprocess.Popen([str(binary), mode], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         preexec_fn=setup)
    assert p.wait(timeout=120) == -signal
    return p.pid


def next_zip(core_dir: Path, kept: Path, timeout: float = 60) -> Path:
    """The one zip the crash gave, moved out of CORE_DIR (so the next crash's is the only one)."""
    deadline = time.monotonic() + timeout
    while True:
        zips = list(core_dir.glob("*.zip")) if core_dir.exists() else []
        if zips and not list(core_dir.glob(".*.part")):
            assert len(zips) == 1, zips
            return Path(shutil.move(str(zips[0]), kept))
        assert time.monotonic() < deadline, f"no zip in {core_dir}"
        time.sleep(0.02)


# ---------------------------------------------------------------- the signature's promises


@pytest.mark.parametrize("build", list(BUILDS))
def test_the_same_fault_site_crashed_twice_with_aslr_gives_one_signature(crashes, build):
    a, b = crashes[(build, "segv")], crashes[(build, "segv-again")]
    assert a.frames[0]["pc"] != b.frames[0]["pc"], "ASLR did not move the program: nothing shown"
    assert a.info["signature"] == b.info["signature"] is not None
    assert a.info["signature"].startswith("1-") and len(a.info["signature"]) == 18


@pytest.mark.parametrize("build", list(BUILDS))
def test_two_sites_that_both_call_abort_give_two_signatures(crashes, build):
    a, b = crashes[(build, "abort_a")], crashes[(build, "abort_b")]
    assert a.info["signal_number"] == b.info["signal_number"] == 6
    assert None is not a.info["signature"] != b.info["signature"] is not None
    assert a.info["signature"] != crashes[(build, "segv")].info["signature"]


@pytest.mark.parametrize("build", list(BUILDS))
def test_a_fatal_handler_and_a_worker_thread_group_with_the_fault_they_report(crashes, build):
    segv = crashes[(build, "segv")].info["signature"]
    assert crashes[(build, "handler")].info["signature"] == segv     # SIGSEGV handler -> abort()
    assert crashes[(build, "threads")].info["signature"] == segv     # the same fault in a thread


def test_a_python_crash_groups_the_same_with_and_without_faulthandler(crashes):
    plain, handled = crashes[("python", "plain")], crashes[("python", "faulthandler")]
    assert plain.info["signature"] == handled.info["signature"] is not None
    # faulthandler's frames, its signal trampoline, then the interpreter's frames it interrupted:
    # the tap followed the signal frame from the alternate stack to the thread's own stack
    names = handled.names()
    trampoline = next(i for i, f in enumerate(handled.frames) if f.get("signal_frame"))
    assert "_PyEval_EvalFrameDefault" in names[trampoline + 1:], handled.frames
    assert "_PyEval_EvalFrameDefault" in plain.names()


def test_frame_pointers_do_not_change_the_signature(crashes):
    for name, _, _ in CRASHES:
        assert crashes[("fp", name)].info["signature"] == crashes[("nofp", name)].info["signature"], name


def test_the_trace_names_the_functions(crashes):
    for build in ("fp", "nofp"):
        segv = crashes[(build, "segv")]
        assert segv.names()[:4] == ["inner", "middle", "outer", "main"], segv.frames
        assert segv.info["top_frame"] == f"{EXE}!inner"
        assert segv.stack["signature_frames"] == [f"{EXE}!inner", f"{EXE}!middle", f"{EXE}!outer"]
        abort = crashes[(build, "abort_a")]
        # libc's names from its .dynsym, ours from .symtab; GCC's .cold clone is cut in the signature
        assert abort.names()[1:3] == ["raise", "abort"] and abort.names()[4:6] == ["path_a", "main"]
        assert abort.names()[3] in ("site_a", "site_a.cold")
        assert abort.info["top_frame"] == f"{EXE}!site_a"
        handler = crashes[(build, "handler")]
        assert [f for f in handler.frames if f.get("signal_frame")], "the signal trampoline is marked"


def test_the_trace_is_gdbs_frame_for_frame(crashes, tmp_path):
    require(shutil.which("gdb"), "gdb is the reference (.ci/run installs it)")
    for (build, name), crash in crashes.items():
        if name == "no-stack-in-core":
            continue   # gdb has only the core: it stops after frame 0 (ours reads /proc/<pid>/mem)
        if build == "python":
            continue   # matches too, but gdb spends minutes on the interpreter's debug info
        core = tmp_path / f"{build}.{name}.core"
        core.write_bytes(crash.core)
        ours = [int(f["pc"], 16) for f in crash.frames]
        theirs = [pc for pc, _ in physical_frames(crash.binary, core)]
        assert ours == theirs, (build, name, crash.frames, crash.stack["threads"][0]["stopped"])
        core.unlink()


def test_a_stripped_binary_groups_by_build_id_and_offset(crashes, builds):
    build_id = readelf_build_id(builds["stripped"])
    segv = crashes[("stripped", "segv")]
    assert [f.get("function") for f in segv.frames[:3]] == [None, None, None]
    assert segv.stack["modules"][segv.frames[0]["module"]] == build_id
    tokens = segv.stack["signature_frames"]
    assert len(tokens) == 3 and all(t.startswith(build_id + "+0x") for t in tokens)
    assert tokens[0] == f"{build_id}+{segv.frames[0]['offset']}"   # the link-time offset: addr2line's input
    assert segv.info["top_frame"] == f"{build_id[:12]}+{segv.frames[0]['offset']}"
    # named and stripped builds of the same code differ (documented): names are not in the file
    assert segv.info["signature"] != crashes[("nofp", "segv")].info["signature"]


def test_a_stack_the_core_left_out_is_read_from_the_held_process(crashes):
    crash = crashes[("nofp", "no-stack-in-core")]
    assert len(crash.core) < len(crashes[("nofp", "segv")].core) / 2, "coredump_filter 0 was not applied"
    assert crash.info["signature"] == crashes[("nofp", "segv")].info["signature"]
    assert crash.names()[:4] == ["inner", "middle", "outer", "main"]


# ---------------------------------------------------------------- where it is written


def test_dump_info_holds_the_stack_in_the_contracts_shape(crashes):
    crash = crashes[("fp", "threads")]
    assert tuple(crash.stack) == ondisk.STACK_FIELDS
    assert crash.stack["version"] == "1" and crash.stack["signature_version"] == "1"
    assert crash.stack["errors"] == [] and crash.stack["seconds"] >= 0
    threads = crash.stack["threads"]
    assert [t["crashed"] for t in threads] == [True] + [False] * (len(threads) - 1) and len(threads) == 5
    assert all(tuple(t) == ondisk.THREAD_FIELDS for t in threads)
    assert {k for t in threads for f in t["frames"] for k in f} <= set(ondisk.FRAME_FIELDS)
    waiting = [t for t in threads if "worker_wait" in [f.get("function") for f in t["frames"]]]
    assert len(waiting) == 1, "every thread is unwound, not only the crashing one"
    named = {f["module"] for t in threads for f in t["frames"] if "module" in f}
    assert named == set(crash.stack["modules"])


def test_compose_done_says_the_signature(crashes):
    done = [line for line in crashes.log if line["event"] == "compose.done"]
    assert len(done) == len(crashes)
    signed = {(c.info["signature"], c.info["top_frame"]) for c in crashes.values()}
    assert {(d["signature"], d["top_frame"]) for d in done} == signed
    assert {d["stack"] for d in done} == {"signed"} and all(d["stack_seconds"] >= 0 for d in done)
    assert not [line for line in crashes.log if line["level"] not in ("info", "debug")]


def test_the_tap_keeps_the_same_bytes_whatever_the_block_size(crashes, tmp_path):
    core = tmp_path / "threads.core"
    core.write_bytes(crashes[("nofp", "threads")].core)
    whole = tap_file(str(core))
    assert whole.error is None and len(whole.windows) >= 5
    data = core.read_bytes()
    for size in (4093, 65536, len(data)):
        tap = StackTap()
        for at in range(0, len(data), size):
            tap.feed(memoryview(data)[at:at + size])
        assert (tap.head, tap.windows, tap.error) == (whole.head, whole.windows, None), size
    os.unlink(core)


def test_cdh_inspect_shows_the_trace_first(crashes):
    crash = crashes[("nofp", "abort_a")]
    shown = run_cdh("inspect", str(crash.zip_path))
    assert shown.returncode == 0, shown.stderr
    _, _, _, first, thread, *frames = shown.stdout.splitlines()
    assert first.startswith(f"Signature {crash.info['signature']}  {EXE}!site_a | {EXE}!path_a | {EXE}!main")
    assert thread.startswith(f"Thread {crash.pid}, crashed")
    named = [line.split()[2].split("+")[0] for line in frames[:6]]
    assert named[1:3] == ["raise", "abort"] and named[4:6] == ["path_a", "main"]
    assert f"  {EXE}+{crash.frames[4]['offset']}" in frames[4]   # module + offset: addr2line's input
    as_json = json.loads(run_cdh("inspect", "--json", str(crash.zip_path)).stdout)
    assert as_json["stack"]["signature"] == crash.info["signature"]
    assert as_json["stack"]["threads"] == crash.stack["threads"]
