"""Helpers for the hostile-input suites (tests/reliability/test_hostile_*.py): run cdh as a user or the
kernel would, under resource ceilings, and look at what it printed and wrote.

Everything here drives cdh from the outside (``python -m cdh``, the installed composer, files on disk),
so the tests keep working when modules move.

- :func:`run_cdh` runs one command with ceilings: address space, file size, CPU seconds. A ceiling
  turns "wrote 6 GiB" or "ran for minutes" into a clean, deterministic failure instead of a full disk
  or a hung CI job. It also reports how many bytes the process wrote (``/proc/self/io`` at exit).
- :func:`in_sandbox` runs a command in a private mount namespace whose ``/proc/sys`` is a fake tree
  and whose /var (home of the default HOST_DIR) is an empty tmpfs: ``cdh install``/``uninstall`` and the
  installed composer run for real without touching this machine's sysctls or directories (the
  composer, run as the kernel runs it, has no ``CDH_TEST_SYSCTL_ROOT``; the CLI is given it too).
- :func:`control_characters` finds what a terminal would act on in printed text.
"""

from __future__ import annotations

import json
import os
import re
import resource
import shutil
import struct
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from tests.support import synthcore

REPO = Path(__file__).resolve().parents[2]
GiB, MiB = 1 << 30, 1 << 20
# C0 controls but newline and tab, DEL, C1 controls (a terminal acts on ESC, CSI, OSC, BEL, CR, BS ...).
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\x80-\x9f]")
# Run under a ceiling, report the bytes written at exit: a tiny wrapper around `python -m cdh`.
_METER = (
    "import atexit, os, runpy, sys\n"
    "def _io():\n"
    "    out = os.environ.get('CDH_TEST_IO_REPORT')\n"
    "    if out:\n"
    "        with open('/proc/self/io') as f, open(out, 'w') as o:\n"
    "            o.write(f.read())\n"
    "atexit.register(_io)\n"
    "sys.argv = ['cdh', *sys.argv[1:]]\n"
    "runpy.run_module('cdh', run_name='__main__', alter_sys=True)\n"
)


@dataclass
class Ran:
    rc: int
    stdout: str
    stderr: str
    wrote_bytes: int | None   # wchar of the process (every byte it passed to write), None if it died
    cpu_s: float = 0.0        # user + system CPU seconds of the command

    @property
    def err_lines(self) -> list[str]:
        return [ln for ln in self.stderr.splitlines() if ln.strip()]


def clean_env(**settings: str) -> dict[str, str]:
    """A minimal environment (no CDH_*, IBM or AWS names from the developer's shell), plus ``settings``."""
    env = {k: os.environ[k] for k in ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "VIRTUAL_ENV")
           if k in os.environ}
    env["PYTHONPATH"] = str(REPO)
    env["AWS_EC2_METADATA_DISABLED"] = "true"
    env.update(settings)
    return env


def run_cdh(*args: str, env: dict[str, str], cwd: Path | str = "/", address_space: int = 2 * GiB,
            file_size: int | None = None, cpu_s: int | None = None, umask: int = 0o022,
            timeout: float = 300, io_report: Path | None = None) -> Ran:
    """``cdh ARGS`` in a child process under ceilings; see the module docstring."""
    def limits() -> None:
        os.umask(umask)
        resource.setrlimit(resource.RLIMIT_AS, (address_space, address_space))
        if file_size is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (file_size, file_size))
        if cpu_s is not None:
            resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s + 5))

    env = dict(env)
    if io_report is not None:
        env["CDH_TEST_IO_REPORT"] = str(io_report)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run([sys.executable, "-c", _METER, *args], env=env, cwd=cwd, capture_output=True,
                          timeout=timeout, preexec_fn=limits)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    wrote = None
    if io_report is not None and io_report.exists():
        fields = dict(line.split(": ") for line in io_report.read_text().splitlines())
        wrote = int(fields["wchar"])
    return Ran(proc.returncode, proc.stdout.decode("utf-8", "replace"),
               proc.stderr.decode("utf-8", "replace"), wrote, cpu)


def control_characters(text: str) -> list[str]:
    """Each control character a terminal would act on, with a little context, as repr()s."""
    return [repr(text[max(0, m.start() - 12):m.end() + 12]) for m in _CONTROL.finditer(text)]


# ---------------------------------------------------------------- a fake node root for install/uninstall


def fake_sysctls(root: Path, core_pattern: bytes = b"core") -> Path:
    """A /proc/sys tree with the three sysctls cdh sets (values as a fresh node has them)."""
    for name, value in (("kernel/core_pattern", core_pattern), ("kernel/core_pipe_limit", b"0"),
                        ("fs/suid_dumpable", b"0")):
        f = root / name
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(value + b"\n")
    return root


def sysctl(root: Path, name: str) -> bytes:
    return (root / name.replace(".", "/")).read_bytes().rstrip(b"\n")


def sandbox_unavailable() -> str | None:
    if os.geteuid() != 0:
        return "not root"
    for tool in ("unshare", "mount"):
        if shutil.which(tool) is None:
            return f"no {tool}"
    probe = subprocess.run(["unshare", "--mount", "true"], capture_output=True, text=True)
    return None if probe.returncode == 0 else f"cannot make a mount namespace: {probe.stderr.strip()}"


def in_sandbox(argv: list[str], sysctl_root: Path, env: dict[str, str], timeout: float = 120,
               input: bytes | None = None) -> subprocess.CompletedProcess:
    """Run ``argv`` with /proc/sys bound to ``sysctl_root`` and an empty tmpfs on /var (so the default
    HOST_DIR, /var/mnt/core-dump-handler, is a scratch directory), in a private mount namespace that
    is gone when the command ends."""
    shell = ("mount -t tmpfs -o size=64m cdh-test /var && mkdir /var/mnt && "
             f'mount --bind "{sysctl_root}" /proc/sys && exec "$@"')
    env = {**env, "CDH_TEST_SYSCTL_ROOT": str(sysctl_root)}
    return subprocess.run(["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", shell, "sh",
                           *argv], env=env, capture_output=True, timeout=timeout, input=input)


def cdh_in_sandbox(*args: str, sysctl_root: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return in_sandbox([sys.executable, "-m", "cdh", *args], sysctl_root, env)


# ---------------------------------------------------------------- crafted cores


def note(name: bytes, ntype: int, desc: bytes) -> bytes:
    return synthcore._note(name, ntype, desc)


def core_with_notes(notes: bytes, segments: list[tuple[int, int, bytes]] = (), machine: str = "x86_64",
                    phnum: int | None = None, xnum_count: int | None = None) -> bytes:
    """An ELF core: one PT_NOTE holding ``notes``, a PT_LOAD per (vaddr, memsz, bytes) segment.

    ``phnum`` overrides e_phnum; ``xnum_count`` writes PN_XNUM and that count in section header 0.
    """
    phdrs, data = layout(notes, segments)
    shoff = 64 + len(phdrs) + len(data) if xnum_count is not None else 0
    e_phnum = 0xFFFF if xnum_count is not None else (1 + len(segments) if phnum is None else phnum)
    ehdr = b"\x7fELF" + bytes([2, 1, 1]) + b"\0" * 9 + struct.pack(
        "<HHIQQQIHHHHHH", 4, synthcore.EM[machine], 1, 0, 64, shoff, 0, 64, 56, e_phnum,
        64 if xnum_count is not None else 0, 1 if xnum_count is not None else 0, 0)
    core = ehdr + phdrs + data
    if xnum_count is not None:
        core += struct.pack("<IIQQQQIIQQ", 0, 0, 0, 0, 0, 0, 0, xnum_count, 0, 0)
    return core


def layout(notes: bytes, segments) -> tuple[bytes, bytes]:
    """(program headers, what follows them) of a core whose 64-byte ELF header comes first: one
    PT_NOTE holding ``notes``, then a PT_LOAD per (vaddr, memsz, bytes) segment, bytes in order."""
    data_at = 64 + 56 * (1 + len(segments))
    body_at = data_at + len(notes)
    phdrs = [struct.pack("<IIQQQQQQ", 4, 0, data_at, 0, 0, len(notes), 0, 1)]
    body = b""
    for vaddr, memsz, page in segments:
        phdrs.append(struct.pack("<IIQQQQQQ", 1, 5, body_at + len(body), vaddr, 0, len(page), memsz, 4096))
        body += page
    return b"".join(phdrs), notes + body


def prpsinfo(fname: bytes, psargs: bytes) -> bytes:
    """NT_PRPSINFO (136 bytes on 64-bit): state, uid, gid, pid, ppid, ..., fname[16], psargs[80]."""
    head = bytes(16) + struct.pack("<IIii", 0, 0, 4242, 1) + bytes(8)
    return head + fname[:15].ljust(16, b"\0") + psargs[:79].ljust(80, b"\0")


def x86_prstatus(tid: int = 4242, signo: int = 11) -> bytes:
    return synthcore.prstatus("x86_64", tid, signo, [0x1000 + i for i in range(27)])


def nt_file(mappings: list[tuple[int, int, int, bytes]], page: int = 4096) -> bytes:
    """NT_FILE desc: (start, end, offset in bytes, path) per mapping."""
    table = b"".join(struct.pack("<QQQ", s, e, off // page) for s, e, off, _ in mappings)
    return struct.pack("<QQ", len(mappings), page) + table + b"".join(p + b"\0" for *_, p in mappings)


def write_json_lines(path: Path, objs: list[dict]) -> None:
    path.write_text("".join(json.dumps(o) + "\n" for o in objs))
