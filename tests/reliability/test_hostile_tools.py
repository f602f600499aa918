"""Hostile input on the developer's machine: what a crashing workload (through its dump) or anyone who
can write to the bucket can do to ``cdh ls``, ``cdh get`` and ``cdh inspect``.

The attacker controls every string in a dump (its container log, argv, comm, paths, the image name the
runtime reported, pod labels), every byte of the zip and core, and every key and metadata value in the
bucket. The developer runs the tools in a terminal, in a directory of their own, as themselves.

Secure behaviour, in one place:
- nothing from a workload or the bucket reaches the terminal raw: control characters are shown escaped;
- unpacking is bounded: never past an entry's declared size, never the same bytes twice, never beyond a
  ceiling (the dump's core size plus a margin, ``--max-size`` to raise it) or the free space;
- every file written is created with O_NOFOLLOW|O_EXCL and mode 0600 (a core is a process's memory);
- every malformed input ends in one line on stderr and a documented exit code, never a traceback;
- the work is linear in the size of the input.

Every command runs under ceilings (tests/support/hostile.py): 2 GiB of address space, a file size
limit where a bomb is involved, CPU seconds where the cost is the attack. A ceiling hit is the attack
succeeding, reported as such, not a hang or a full disk.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import subprocess
import zipfile
from pathlib import Path

import pytest

from tests.support import dumpbuild, synthcore
from tests.support.hostile import (
    MiB,
    clean_env,
    control_characters,
    core_with_notes,
    note,
    nt_file,
    prpsinfo,
    run_cdh,
    x86_prstatus,
)
from tests.support.require import require
from tests.support.s3server import put_dump

AREA = "security"  # tests/reliability/figures.py: one case and one attack per test

NT_PRSTATUS, NT_PRPSINFO, NT_SIGINFO, NT_FILE = 1, 3, 0x53494749, 0x46494C45
FAILURE = 1  # cdh's documented exit code for a command that failed (README: exit codes)

# What a workload can put in a string that ends up on the developer's screen.
OSC52 = "\x1b]52;c;" + "ZWNobyBwd25lZA==" + "\x07"          # set the clipboard to "echo pwned"
TITLE = "\x1b]0;retitled\x07"                                 # set the window title
WIPE = "\x1b[2J\x1b[H"                                        # clear the screen
OVERPRINT = "\r\x1b[2K  $ gdb -q safe.core"                   # rewrite the current line
C1_CSI = "\u009b31m"                                          # an 8-bit CSI (xterm honours it in some modes)
PROGRESS = re.compile(r"^\s*(downloading |downloaded |\d+% )")
HOSTILE = [OSC52, TITLE, WIPE, OVERPRINT, C1_CSI, "\x08\x08\x7f", "\x00nul"]


def _no_control(ran, what: str) -> None:
    found = control_characters(ran.stdout) + control_characters(ran.stderr)
    assert not found, f"{what} printed {len(found)} raw control characters, e.g. {found[:4]}"


def _errors(ran) -> list[str]:
    """stderr without the download progress lines (which go to stderr too)."""
    return [ln for ln in ran.err_lines if not PROGRESS.match(ln)]


def _hostile_core(tmp_path: Path) -> bytes:
    """A core whose argv, comm and mapped file paths carry terminal escapes."""
    notes = note(b"CORE", NT_PRSTATUS, x86_prstatus())
    notes += note(b"CORE", NT_PRPSINFO, prpsinfo(b"ev\x1b]0;x\x07", ("app " + OSC52 + WIPE).encode()))
    notes += note(b"CORE", NT_SIGINFO, struct.pack("<iiiiQ", 11, 0, 1, 0, 0xBAD) + bytes(104))
    notes += note(b"CORE", 6, struct.pack("<4Q", 9, 0x400100, 0, 0))  # auxv: AT_ENTRY
    page = synthcore.elf_file_page(bytes(range(20)))
    paths = [("/app/" + OVERPRINT).encode(), ("/lib/" + TITLE + "libc.so").encode()]
    notes += note(b"CORE", NT_FILE, nt_file([(0x400000, 0x401000, 0, paths[0]),
                                             (0x7F0000000000, 0x7F0000001000, 0, paths[1])]))
    return core_with_notes(notes, [(0x400000, 0x1000, page), (0x7F0000000000, 0x1000, page)])


def _hostile_stack() -> dict:
    """dump-info's stack trace (cdh/stack/trace.py) as a hostile binary's symbol table and paths make
    it, or as a bucket writer writes it: function names, modules and reasons carry escapes."""
    frame = {"pc": "0x401000", "how": "cfi", "module": "/app/" + TITLE + "bin", "offset": "0x1000",
             "function": "main" + OSC52, "function_offset": 4}
    thread = {"tid": 7, "crashed": True, "stopped": "outermost" + WIPE, "frames": [frame, dict(frame)]}
    return {"version": 1, "signature_version": 1, "signature_frames": ["bin!main" + C1_CSI],
            "threads": [thread, dict(thread, crashed=False)], "modules": {}, "errors": [OVERPRINT],
            "seconds": 0.1}


def _hostile_dump(tmp_path: Path) -> Path:
    """A dump as the composer writes it for a hostile workload: the zip and entry names are the
    composer's (sanitised), every string inside comes from the workload or its runtime."""
    path, info = dumpbuild.build(tmp_path, _hostile_core(tmp_path),
                                 log=[f"line {i} {s}" for i, s in enumerate(HOSTILE)])
    info.update(exe="app" + TITLE, path="/usr/bin/app" + OVERPRINT, hostname="web-0" + WIPE,
                node_hostname="node" + C1_CSI, namespace="ns" + OSC52, podname="web-0" + TITLE,
                container="app\x1b[8m", image="registry.example.com/app:1" + OVERPRINT,
                truncated=True, truncated_reason="\x1b[5mblink",
                signature="0123456789abcdef" + WIPE, top_frame="app!main" + OSC52,
                stack=_hostile_stack())
    _replace_entries(path, {path.name[:-4] + "-dump-info.json": json.dumps(info).encode()})
    return path


# ---------------------------------------------------------------- terminal control sequences


def test_inspect_prints_workload_strings_escaped(tmp_path):
    """Attack: a pod that can crash puts OSC 52 (clipboard), title, clear-screen and carriage-return
    sequences in its log, argv, comm, mapped paths and image name; `cdh inspect` prints them raw, so the
    developer's terminal is rewritten and the "Open it" lines can show a command other than the one a
    copy-paste runs. Secure: every workload string is shown with control characters escaped (as git and
    ls do), in every section including the stack trace (function names come from the workload's own
    symbol tables) and the debugger commands; --json stays valid JSON."""
    dump = _hostile_dump(tmp_path)
    env = clean_env()
    ran = run_cdh("inspect", str(dump), env=env)
    assert ran.rc == 0, ran.stderr
    _no_control(ran, "cdh inspect")
    assert "Open it" in ran.stdout and "main\\x1b]52" in ran.stdout, ran.stdout
    every_thread = run_cdh("inspect", "--threads", str(dump), env=env)
    assert every_thread.rc == 0, every_thread.stderr
    _no_control(every_thread, "cdh inspect --threads")
    unpacked = run_cdh("inspect", str(dump), "--json", env=env)
    assert unpacked.rc == 0 and isinstance(json.loads(unpacked.stdout), dict)


def test_ls_and_get_print_bucket_strings_escaped(tmp_path, s3_server, s3, bucket):
    """Attack: anyone who can write to the bucket names an object with escape sequences in its key and
    sets x-amz-meta-* values the same way; `cdh ls` prints keys and metadata raw, `cdh get` prints the
    key. Secure: keys and metadata are shown escaped; the key the user can copy is still unambiguous."""
    dump = _hostile_dump(tmp_path)
    key = "nodes/a" + TITLE + "/dump" + WIPE + ".zip"
    s3.put_object(Bucket=bucket, Key=key, Body=dump.read_bytes(),
                  Metadata={"namespace": "ns" + OSC52, "pod": "p\x1b[2K", "exe": "e\x1b[31m",
                            "signal": "11", "signature": "0123" + WIPE, "top-frame": "main" + TITLE})
    env = clean_env(**s3_server.agent_env(bucket))
    listed = run_cdh("ls", env=env)
    assert listed.rc == 0, listed.stderr
    _no_control(listed, "cdh ls")
    grouped = run_cdh("ls", "--group", env=env)
    assert grouped.rc == 0 and "main" in grouped.stdout, grouped.stderr
    _no_control(grouped, "cdh ls --group")
    out = tmp_path / "out"
    got = run_cdh("get", key, "-o", str(out), env=env)
    assert got.rc == 0, got.stderr
    _no_control(got, "cdh get")


# ---------------------------------------------------------------- bounded unpacking


def _zstd_bomb(tmp_path: Path, declared: int, actual: int) -> Path:
    """A dump whose zstd core entry declares ``declared`` bytes but decompresses to ``actual``."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    path, _ = dumpbuild.build(tmp_path, b"\0" * actual, compression="zstd")
    dumpbuild.patch_entry(path, path.name[:-4] + ".core", size=declared)
    return path


def _replace_entries(path: Path, entries: dict[str, bytes]) -> None:
    """Rewrite the zip with the named entries' contents replaced (or added)."""
    with zipfile.ZipFile(path) as zf:
        kept = {i.filename: zf.read(i) for i in zf.infolist()}
    kept.update(entries)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for fname, data in kept.items():
            zf.writestr(fname, data)


def _upload(s3, bucket: str, path: Path) -> str:
    info = json.loads(zipfile.ZipFile(path).read(path.name[:-4] + "-dump-info.json"))
    key = f"node-1/{path.name}"
    put_dump(s3, bucket, key, path, info)
    return key


def _leftovers(out: Path) -> list[str]:
    return sorted(str(p.relative_to(out)) for p in out.rglob("*")) if out.exists() else []


def test_a_zstd_bomb_stops_at_the_declared_size(tmp_path, s3_server, s3, bucket, figures):
    """Attack: a 33 KB object whose zstd core entry declares 1 MiB but decompresses to 256 MiB
    (1 GiB in the report); `cdh get` decompresses to the end of the stream and checks the size only
    afterwards, so the disk fills first. Secure: decompression stops one byte past the declared size,
    the dump is refused in one line, and nothing is kept. (A 64 MiB file size ceiling stands in for
    the disk: today the write hits it.)"""
    bomb = _zstd_bomb(tmp_path / "src", declared=1 * MiB, actual=256 * MiB)
    key = _upload(s3, bucket, bomb)
    out = tmp_path / "out"
    ran = run_cdh("get", key, "-o", str(out), env=clean_env(**s3_server.agent_env(bucket)),
                  file_size=64 * MiB, io_report=tmp_path / "io")
    assert ran.rc == FAILURE and len(_errors(ran)) == 1, ran.stderr
    assert "Traceback" not in ran.stderr and "Errno" not in ran.stderr, ran.stderr
    assert ran.wrote_bytes is not None and ran.wrote_bytes < 8 * MiB, f"wrote {ran.wrote_bytes} bytes"
    assert _leftovers(out) == []
    figures.note(f"zstd bomb, {bomb.stat().st_size // 1024} KiB object, 256 MiB inside: refused after "
                 f"{ran.wrote_bytes / MiB:.1f} MiB written (download included)")


def _duplicated_central_directory(tmp_path: Path, copies: int, entry_bytes: int) -> Path:
    """A dump with a highly compressible proc entry whose central directory record is repeated."""
    path, _ = dumpbuild.build(tmp_path, b"\x7fELF" + bytes(4096),
                              proc={"cmdline": b"/usr/bin/app\0", "maps": b"\0" * entry_bytes})
    raw = path.read_bytes()
    eocd = raw.rfind(b"PK\x05\x06")
    count, cd_size, cd_offset = struct.unpack_from("<HII", raw, eocd + 10)
    directory = raw[cd_offset:cd_offset + cd_size]
    records, pos = [], 0
    while pos < len(directory):
        n, m, k = struct.unpack_from("<HHH", directory, pos + 28)
        records.append(directory[pos:pos + 46 + n + m + k])
        pos += 46 + n + m + k
    big = next(r for r in records if r[46:46 + struct.unpack_from("<H", r, 28)[0]].endswith(b"-proc/maps"))
    new_dir = b"".join(records) + big * copies
    tail = bytearray(raw[eocd:eocd + 22])
    struct.pack_into("<HHII", tail, 8, count + copies, count + copies, len(new_dir), cd_offset)
    path.write_bytes(raw[:cd_offset] + new_dir + bytes(tail))
    return path


def test_repeated_central_directory_records_are_refused(tmp_path, s3_server, s3, bucket, figures):
    """Attack: one 16 MiB entry (16 KB deflated) listed 40 times in the central directory: each record
    is unpacked again, 656 MiB written here (the report: 70 KB object, 23 s, 6.4 GiB). Secure: entries
    that share or overlap bytes, or repeat a name, are refused before anything is unpacked; the object
    is reported damaged in one line; nothing is kept; less than one copy of the entry is written."""
    (tmp_path / "src").mkdir()
    zpath = _duplicated_central_directory(tmp_path / "src", copies=40, entry_bytes=16 * MiB)
    assert zpath.stat().st_size < 100_000
    key = _upload(s3, bucket, zpath)
    out = tmp_path / "out"
    ran = run_cdh("get", key, "-o", str(out), env=clean_env(**s3_server.agent_env(bucket)),
                  file_size=256 * MiB, io_report=tmp_path / "io")
    assert ran.wrote_bytes is not None and ran.wrote_bytes < 16 * MiB, f"wrote {ran.wrote_bytes} bytes"
    assert ran.rc == FAILURE and len(_errors(ran)) == 1, (ran.rc, ran.stderr)
    assert _leftovers(out) == []
    figures.note(f"one 16 MiB entry listed 41 times, {zpath.stat().st_size // 1024} KiB object: refused "
                 f"after {ran.wrote_bytes / MiB:.1f} MiB written (656 MiB before)")


def test_unpacking_has_a_ceiling_from_the_dump_and_max_size_raises_it(tmp_path, s3_server, s3, bucket):
    """Attack: an honest zip whose core is far bigger than its dump-info says (200 MiB of zeros, 200 KB
    deflated, dump-info core_size 1 MiB): unpacked without question. Secure: the total unpacked is
    capped at dump-info's core size plus a margin (refused in one line, nothing kept), and
    `--max-size` lets the developer take it anyway."""
    src = tmp_path / "src"
    src.mkdir()
    path, info = dumpbuild.build(src, b"\0" * (200 * MiB))
    info["core_size"] = 1 * MiB   # what the composer measured, says the dump
    _replace_entries(path, {path.name[:-4] + "-dump-info.json": json.dumps(info).encode()})
    key = _upload(s3, bucket, path)
    env = clean_env(**s3_server.agent_env(bucket))
    out = tmp_path / "out"
    ran = run_cdh("get", key, "-o", str(out), env=env, file_size=512 * MiB, io_report=tmp_path / "io")
    assert ran.rc == FAILURE and len(_errors(ran)) == 1, (ran.rc, ran.stderr)
    assert ran.wrote_bytes is not None and ran.wrote_bytes < 32 * MiB, f"wrote {ran.wrote_bytes} bytes"
    assert _leftovers(out) == []
    ok = run_cdh("get", key, "-o", str(out), "--max-size", "1GiB", env=env, file_size=512 * MiB)
    assert ok.rc == 0, ok.stderr


@pytest.fixture
def small_disk(tmp_path):
    """A 24 MiB tmpfs (root only; the reliability suite runs as root)."""
    require(os.geteuid() == 0 and shutil.which("mount"), "root is needed to mount a small tmpfs")
    d = tmp_path / "small"
    d.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "cdh-test-small", str(d)], check=True)
    try:
        yield d
    finally:
        subprocess.run(["umount", "-l", str(d)], check=False)


def test_a_dump_bigger_than_the_free_space_is_refused_before_writing(tmp_path, small_disk, s3_server, s3,
                                                                     bucket):
    """Attack (or just a big core): the unpacked core does not fit the disk. Today unpacking runs into
    ENOSPC, prints a raw "[Errno 28] No space left on device", and leaves the downloaded zip behind,
    using the space it complained about. Secure: the free space is checked against the declared sizes
    before unpacking; one line says how much is needed and how much is free; nothing is left."""
    src = tmp_path / "src"
    src.mkdir()
    path, _ = dumpbuild.build(src, b"\0" * (64 * MiB))
    key = _upload(s3, bucket, path)
    ran = run_cdh("get", key, "-o", str(small_disk), env=clean_env(**s3_server.agent_env(bucket)))
    assert ran.rc == FAILURE and len(_errors(ran)) == 1, (ran.rc, ran.stderr)
    assert "Errno" not in ran.stderr, ran.stderr
    assert _leftovers(small_disk) == []


# ---------------------------------------------------------------- files written


def test_the_download_never_follows_a_planted_symlink(tmp_path, s3_server, s3, bucket):
    """Attack: another user of a shared output directory (or a previous hostile dump) plants
    `<name>.zip.part` as a symlink to a file of the developer's; `cdh get` opens it with "wb", so the
    download truncates and overwrites that file. Secure: the part file is created with
    O_CREAT|O_EXCL|O_NOFOLLOW (or under an unguessable name); the victim and the link are untouched."""
    src = tmp_path / "src"
    src.mkdir()
    path, _ = dumpbuild.build(src, b"\x7fELF" + bytes(10_000))
    key = _upload(s3, bucket, path)
    out = tmp_path / "shared"
    out.mkdir()
    victim = tmp_path / "victim"
    victim.write_bytes(b"the developer's notes")
    link = out / (path.name + ".part")
    link.symlink_to(victim)
    ran = run_cdh("get", key, "-o", str(out), env=clean_env(**s3_server.agent_env(bucket)))
    assert victim.read_bytes() == b"the developer's notes"
    assert link.is_symlink() and os.readlink(link) == str(victim)
    assert ran.rc in (0, FAILURE) and "Traceback" not in ran.stderr, ran.stderr


def test_everything_written_is_private(tmp_path, s3_server, s3, bucket):
    """Attack: none needed: a core is a process's memory (keys, tokens, customer data), and `cdh get`
    writes the kept zip and every unpacked file 0644 under the usual umask, readable by every user of a
    shared machine. Secure: 0600 files (0700 directories) whatever the umask."""
    src = tmp_path / "src"
    src.mkdir()
    path, _ = dumpbuild.build(src, b"\x7fELF" + os.urandom(50_000))
    key = _upload(s3, bucket, path)
    out = tmp_path / "out"
    ran = run_cdh("get", key, "-o", str(out), "--keep-zip", env=clean_env(**s3_server.agent_env(bucket)),
                  umask=0o022)
    assert ran.rc == 0, ran.stderr
    wide = {str(p.relative_to(out)): oct(p.stat().st_mode & 0o777) for p in out.rglob("*")
            if p.stat().st_mode & 0o077 and p != out}
    assert wide == {}, f"readable by others: {wide}"


# ---------------------------------------------------------------- malformed cores and metadata


def _write_core(tmp_path: Path, name: str, data: bytes) -> Path:
    p = tmp_path / name
    p.write_bytes(data)
    return p


def _prstatus_notes() -> bytes:
    return note(b"CORE", NT_PRSTATUS, x86_prstatus())


CORES = {
    # PN_XNUM with 2^32-1 segments in section 0: 240 GB of program headers asked for in one read
    "xnum-huge-phnum": lambda: core_with_notes(_prstatus_notes(), xnum_count=0xFFFFFFFF),
    "short-siginfo": lambda: core_with_notes(_prstatus_notes() + note(b"CORE", NT_SIGINFO, b"\x0b\0")),
    "short-nt-file": lambda: core_with_notes(_prstatus_notes() + note(b"CORE", NT_FILE, b"\x01\0\0\0")),
}


@pytest.mark.parametrize("case", sorted(CORES))
def test_a_malformed_core_is_one_line(tmp_path, case):
    """Attack: a crafted core (a hostile bucket writer, or a process that corrupts its own notes) makes
    `cdh inspect` end in a traceback, or ask for 240 GB in one read (MemoryError). Secure: one line on
    stderr (or the problem listed in the summary) and a documented exit code; memory bounded by what
    the file holds."""
    core = _write_core(tmp_path, "core", CORES[case]())
    ran = run_cdh("inspect", str(core), env=clean_env())
    assert "Traceback" not in ran.stderr and len(ran.err_lines) <= 1, ran.stderr[-2000:]
    assert ran.rc in (0, FAILURE), ran.rc


def _dump_with(tmp_path: Path, **entries) -> Path:
    """A good dump whose named JSON entries are replaced by raw text."""
    path, _ = dumpbuild.build(tmp_path, b"\x7fELF" + bytes(100))
    name = path.name[:-4]
    _replace_entries(path, {f"{name}-{k.replace('_', '-')}.json": v.encode() for k, v in entries.items()})
    return path


DEEP = "[" * 200_000 + "]" * 200_000
METADATA = {
    "dump-info-is-a-list": {"dump_info": "[1, 2, 3]"},
    "dump-info-wrong-types": {"dump_info": json.dumps({"timestamp": "x", "signal": [11], "exe": {"a": 1},
                                                       "container_id": 12345, "real_pid": {"x": 1},
                                                       "truncated": "yes", "image": 7})},
    "dump-info-infinite-timestamp": {"dump_info": '{"timestamp": 1e999, "signal": 11}'},
    "dump-info-deep-nesting": {"dump_info": DEEP},
    "pod-info-items-not-a-list": {"pod_info": '{"items": 5}'},
    "pod-info-created-overflows": {"pod_info": '{"createdAt": "' + "9" * 40 + '"}'},
    "image-info-wrong-shape": {"0_image_info": '{"status": {"repoDigests": 5, "repoTags": "x"}}'},
}


@pytest.mark.parametrize("case", sorted(METADATA))
def test_malformed_dump_metadata_is_one_line(tmp_path, case):
    """Attack: a bucket writer (or a damaged upload) puts JSON of the wrong types, infinite numbers or
    200,000 levels of nesting in a dump's metadata entries; `cdh inspect` ends in a traceback
    (AttributeError, OverflowError, RecursionError, TypeError). Secure: the section is dropped and
    listed under Problems, or one line and a documented exit code."""
    path = _dump_with(tmp_path, **METADATA[case])
    for extra in ([], ["--json"]):
        ran = run_cdh("inspect", str(path), *extra, env=clean_env())
        assert "Traceback" not in ran.stderr and len(ran.err_lines) <= 1, ran.stderr[-2000:]
        assert ran.rc in (0, FAILURE), ran.rc


def test_mapping_lookup_is_linear(tmp_path, figures):
    """Attack: a 5 MB core with 60,000 mappings (as many PT_LOADs and NT_FILE entries): `cdh inspect`
    matches every mapping against every segment, 3.6e9 steps (did not finish in 90 s). Here 30,000
    mappings under a 20 CPU-second ceiling (SIGXCPU kills the quadratic version; a linear one needs
    about one second). Secure: sorted segments and a bisect, linear overall."""
    n = 30_000
    segments = [(0x10000000 + i * 0x2000, 0x1000, b"") for i in range(n)]
    mappings = [(0x10000000 + i * 0x2000, 0x10000000 + i * 0x2000 + 0x1000, 0, f"/lib/l{i}.so".encode())
                for i in range(n)]
    notes = _prstatus_notes() + note(b"CORE", NT_FILE, nt_file(mappings))
    core = _write_core(tmp_path, "core", core_with_notes(notes, segments))
    assert core.stat().st_size < 5 * MiB
    ran = run_cdh("inspect", str(core), env=clean_env(), cpu_s=20)  # soft 20 s (SIGXCPU), hard 25 s
    assert ran.rc == 0, f"rc {ran.rc} (-24 is SIGXCPU: the CPU ceiling was hit) {ran.stderr[-500:]}"
    figures.note(f"cdh inspect of a core with {n} mappings: {ran.cpu_s:.1f} CPU-s (ceiling 20)")
