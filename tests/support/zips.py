"""Zips shaped like the composer's: ``CORE_DIR/<name>.zip`` with a dump-info entry and a core.

Written as ``.<name>.zip.part`` and renamed into place, as the composer does,
so an inotify watcher sees exactly what it sees in production.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import uuid as uuidlib
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

CHUNK = 1 << 20


@dataclass
class DumpZip:
    path: str
    name: str               # without .zip
    size: int               # bytes of the zip on disk
    sha256: str             # of the zip on disk, computed before any upload
    info: dict = field(default_factory=dict)

    @property
    def filename(self) -> str:
        return os.path.basename(self.path)


def dump_info(name: str, **overrides) -> dict:
    """A dump-info.json like the composer writes (IBM fields as strings, typed values, the pod);
    a ``timestamp`` override is given as a number: both forms follow it."""
    now = int(overrides.pop("timestamp", time.time()))
    info = {
        "uuid": str(uuidlib.uuid4()),
        "dump_file": f"{name}.core",
        "timestamp": str(now),
        "hostname": "web-7d4b9c-x2x9q",
        "exe": "segfaulter",
        "real_pid": "1",
        "signal": "11",
        "node_hostname": "node-a",
        "path": "!usr!local!bin!segfaulter",
        "pid": 1,
        "signal_number": 11,
        "timestamp_s": now,
        "executable": "/usr/local/bin/segfaulter",
        "namespace": "shop",
        "podname": "web-7d4b9c-x2x9q",
        "container": "web",
    }
    info.update(overrides)
    return info


def make_zip(core_dir, core_bytes: int = 4096, *, name: str | None = None, seed: int = 0,
             info: dict | None = None, **info_overrides) -> DumpZip:
    """Write a finished zip holding a core of ``core_bytes`` (incompressible, stored).

    The core is a repeated random MiB, so a 1 GiB zip is quick to write yet has
    no runs a transport could compress away.
    """
    core_dir = os.fspath(core_dir)
    uid = str(uuidlib.uuid4())
    name = name or f"{uid}-dump-{int(time.time())}-web-segfaulter-1-11"
    info = info or dump_info(name, uuid=uid, **info_overrides)
    final = os.path.join(core_dir, f"{name}.zip")
    part = os.path.join(core_dir, f".{name}.zip.part")
    block = hashlib.shake_256(f"{seed}-{name}".encode()).digest(CHUNK)
    with zipfile.ZipFile(part, "w", allowZip64=True) as zf:
        zf.writestr(f"{name}-dump-info.json", json.dumps(info))
        with zf.open(zipfile.ZipInfo(f"{name}.core"), "w", force_zip64=True) as core:
            left = core_bytes
            while left > 0:
                n = min(left, CHUNK)
                core.write(block[:n])
                left -= n
    digest = file_sha256(part)
    os.rename(part, final)
    return DumpZip(path=final, name=name, size=os.path.getsize(final), sha256=digest, info=info)


def make_broken_zip(core_dir, name: str = "broken-dump", *, without_info: bool = False) -> str:
    """A ``.zip`` the agent must refuse: garbage bytes, or a valid zip without dump-info."""
    path = os.path.join(os.fspath(core_dir), f"{name}.zip")
    if without_info:
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr(f"{name}.core", b"\0" * 100)
    else:
        with open(path, "wb") as f:
            f.write(b"PK\x03\x04 this is not a zip")
    return path


def file_sha256(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def next_zip(settings, seen: set[str], timeout: float = 60) -> Path:
    """The next zip a composer finishes in ``settings``' CORE_DIR (none in ``seen``, which it joins), once
    no ``.part`` is left; on timeout, the composer's log in the message."""
    core_dir = Path(settings.core_dir)
    deadline = time.monotonic() + timeout
    while True:
        new = [p for p in core_dir.glob("*.zip") if p.name not in seen] if core_dir.exists() else []
        if new and not list(core_dir.glob(".*.part")):
            assert len(new) == 1, new
            seen.add(new[0].name)
            return new[0]
        if time.monotonic() > deadline:
            log = Path(settings.host_dir, "composer.log")
            raise AssertionError(f"no zip in {core_dir} after {timeout}s; composer log:\n"
                                 + (log.read_text() if log.exists() else "(none)"))
        time.sleep(0.05)


def zips_left(core_dir) -> list[str]:
    """The finished zips in CORE_DIR (what the agent would still upload), sorted."""
    from cdh import ondisk

    return sorted(n for n in os.listdir(core_dir) if ondisk.is_finished_zip(n))
