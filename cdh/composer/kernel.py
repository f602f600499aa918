"""The kernel's core_pattern specifiers, as ``-X=value`` arguments (see core(5)).

``|cdc -c=%c -e=%e -p=%p -P=%P -s=%s -t=%t -h=%h -E=%E [-d=DIR]``

Tolerant on purpose: a missing flag is None, an unknown one is ignored, and
on kernels before 5.3 (which split the expanded pattern on spaces) a word
that is not a flag is glued back onto the previous value. The kernel writes
``!`` for ``/`` in ``%E``; ``pathname`` turns it back, ``given`` keeps every
value exactly as it came (dump-info's IBM fields are those strings).

IBM's composer took the same letters through clap, so its other forms work
too (IBM's tests run ``cdc -c 1000000000 -e node ...``): ``-X value``, ``-Xvalue``,
the long names (``--pid=4``, ``--pid 4``), and IBM's ``-T/--timeout``,
``-D/--disable-compression`` and ``--test-threads``, which IBM parsed and never used.
"""

from __future__ import annotations

import os
import time

# flag → attribute
FLAGS = {
    "c": "limit_size",   # %c  core size soft limit (RLIMIT_CORE) of the crasher
    "e": "exe_name",     # %e  comm of the crashing thread (anything the process chose)
    "p": "pid",          # %p  pid in the crasher's pid namespace
    "P": "host_pid",     # %P  pid in the initial namespace: the one /proc shows us
    "s": "signal",       # %s  signal number
    "t": "timestamp",    # %t  seconds since the epoch
    "h": "hostname",     # %h  uname nodename of the crasher (the pod's hostname)
    "E": "pathname",     # %E  executable path, '/' written as '!'
    "d": "core_dir",     # not a specifier: CORE_DIR (IBM passed it; cdh reads composer.env)
}
LONG_NAMES = {"limit-size": "c", "exe-name": "e", "pid": "p", "signal": "s", "timestamp": "t",
              "dir": "d", "hostname": "h", "pathname": "E", "timeout": "T", "test-threads": "",
              "disable-compression": "D"}
UNUSED_WITH_VALUE = {"T", ""}  # IBM's -T/--timeout and --test-threads: parsed, unused, as by IBM
UNUSED_FLAGS = {"D"}           # IBM's -D/--disable-compression
INT_FIELDS = ("pid", "host_pid", "signal", "timestamp")

USAGE = ("usage: cdh compose -c=LIMIT -e=EXE -p=PID -P=HOST_PID -s=SIGNAL -t=TIME -h=HOSTNAME "
         "-E=PATH [-d=CORE_DIR] < core")


class KernelArgs:
    """What the kernel told us about the crash. Strings as given, ints parsed (None if absent/bad)."""

    __slots__ = ("core_dir", "exe_name", "given", "host_pid", "hostname", "ignored", "limit_size",
                 "pathname", "pid", "signal", "timestamp", "timestamp_given")

    def __init__(self, raw: dict[str, str], ignored: list[str]) -> None:
        self.given = raw  # attribute → the value exactly as the kernel gave it (%E with its '!')
        self.limit_size = raw.get("limit_size", "")
        self.exe_name = raw.get("exe_name", "")
        self.hostname = raw.get("hostname", "")
        self.pathname = raw.get("pathname", "").replace("!", "/")
        self.core_dir = os.path.abspath(raw["core_dir"]) if raw.get("core_dir") else None
        self.pid = _int(raw.get("pid"))
        self.host_pid = _int(raw.get("host_pid"))
        self.signal = _int(raw.get("signal"))
        ts = _int(raw.get("timestamp"))
        self.timestamp_given = ts is not None
        self.timestamp = ts if ts is not None else int(time.time())
        self.ignored = ignored  # arguments we did not understand, for the log

    def summary(self) -> dict:
        return {"host_pid": self.host_pid, "pid": self.pid, "exe": self.exe_name,
                "signal": self.signal, "hostname": self.hostname, "path": self.pathname}


def parse(args: list[str]) -> KernelArgs:
    raw: dict[str, str] = {}
    ignored: list[str] = []
    last: str | None = None
    i = 0
    while i < len(args):
        arg = _text(args[i])
        i += 1
        letter, value = _flag(arg)
        if letter in UNUSED_FLAGS:
            last = None
        elif letter is not None:
            if value is None:  # `-c 1000`: the value is the next word
                value = _text(args[i]) if i < len(args) else ""
                i += 1
            attr = FLAGS.get(letter)
            last = attr
            if attr is not None:
                raw[attr] = value
        elif last is not None and not arg.startswith("-"):
            raw[last] += " " + arg  # pre-5.3 kernels split "%e" of "my prog" into two words
        else:
            ignored.append(arg[:100])
    return KernelArgs(raw, ignored)


def _text(arg: str) -> str:
    """``arg`` as valid Unicode: bytes that are not UTF-8 become ``\\xNN``.

    A process chooses its comm (%e) and hostname (%h) byte by byte, and the kernel cuts comm at
    15 bytes, often inside a UTF-8 character; Python hands such bytes over as lone surrogates,
    which no encoder takes: the log line, dump-info and the zip would all fail to be written.
    """
    try:
        arg.encode()
        return arg
    except UnicodeEncodeError:
        return arg.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _flag(arg: str) -> tuple[str | None, str | None]:
    """(letter, value) of a flag argument: value None when it is the next word; (None, None) when
    ``arg`` is not one of ours."""
    if not arg.startswith("-") or arg == "-":
        return None, None
    key, eq, value = arg.partition("=")
    if key.startswith("--"):
        name = key[2:]
        letter = LONG_NAMES.get(name, name if name in FLAGS else None)  # `--p=9` too
    else:
        letter = key[1:2]
        if len(key) > 2 and not eq and letter in FLAGS:  # `-c1000`
            return letter, arg[2:]
        if len(key) != 2:
            return None, None
    if letter is None or not (letter in FLAGS or letter in UNUSED_WITH_VALUE or letter in UNUSED_FLAGS):
        return None, None
    if letter in UNUSED_FLAGS:
        return letter, ""
    return letter, value if eq else None


def _int(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return int(value.strip())
    except ValueError:
        return None
