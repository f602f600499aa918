"""Did every zip arrive exactly once and intact? The accounting behind "bytes lost".

A zip is *expected* when the composer finished it (its ``compose.done`` line names it and its
size) or when a test wrote it. It arrived *intact* when exactly one object in the bucket has its
name, with its size, and either its SHA-256 (when the test hashed the zip before any agent could
take it) or, for zips the agent took before we could hash them, a zip whose every entry passes
its CRC and whose core entry is as long as dump-info says. Anything else counts as lost bytes.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import zipfile
from dataclasses import dataclass, field

from cdh.keys import zip_name_of
from tests.support.s3server import list_keys


@dataclass
class Expected:
    name: str                 # the zip's file name
    size: int
    sha256: str | None = None


@dataclass
class Delivery:
    intact: int = 0
    lost_bytes: int = 0
    problems: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return f"{self.intact} intact, {self.lost_bytes} bytes lost: " + "; ".join(self.problems[:10])


def from_composer(done_lines: list[dict]) -> list[Expected]:
    return [Expected(d["zip"], d["zip_size"]) for d in done_lines if d.get("zip")]


def from_zips(zips) -> list[Expected]:
    """tests.support.zips.DumpZip objects (hashed when written)."""
    return [Expected(z.filename, z.size, z.sha256) for z in zips]


def hashed(paths) -> list[Expected]:
    """Zips on disk, hashed now (before an agent may take them)."""
    out = []
    for p in paths:
        with open(p, "rb") as f:
            data = f.read()
        out.append(Expected(os.path.basename(p), len(data), hashlib.sha256(data).hexdigest()))
    return out


def check(s3, bucket: str, expected: list[Expected]) -> Delivery:
    keys = list_keys(s3, bucket)
    by_name: dict[str, list[str]] = {}
    for key in keys:
        by_name.setdefault(zip_name_of(key), []).append(key)
    result = Delivery()
    for exp in expected:
        found = by_name.get(exp.name, [])
        problem = _problem(s3, bucket, exp, found)
        if problem:
            result.lost_bytes += exp.size
            result.problems.append(f"{exp.name}: {problem}")
        else:
            result.intact += 1
    return result


def _problem(s3, bucket: str, exp: Expected, keys: list[str]) -> str | None:
    if len(keys) != 1:
        return f"{len(keys)} objects"
    data = s3.get_object(Bucket=bucket, Key=keys[0])["Body"].read()
    if len(data) != exp.size:
        return f"{len(data)} bytes in the bucket, {exp.size} on the node"
    if exp.sha256 is not None:
        return None if hashlib.sha256(data).hexdigest() == exp.sha256 else "different bytes"
    return zip_problem(data)


def zip_problem(data: bytes) -> str | None:
    """Why ``data`` is not a whole composer zip, or None."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            bad = zf.testzip()
            if bad:
                return f"entry {bad} fails its CRC"
            (info_name,) = [n for n in zf.namelist() if n.endswith("-dump-info.json")]
            info = json.loads(zf.read(info_name))
            core = [i for i in zf.infolist() if i.filename.endswith(".core")]
            if core and core[0].file_size != info["core_size"]:
                return f"core entry {core[0].file_size} bytes, dump-info says {info['core_size']}"
    except (zipfile.BadZipFile, ValueError, KeyError) as err:
        return f"not a whole zip: {err}"
    return None


class DeletionWatch:
    """Watches CORE_DIR while an agent works: whenever a zip disappears, its object must already be
    in the bucket, whole (a zip deleted before its object is confirmed is a loss, even if a retry
    later succeeds). Checks the store directly, not through any fault proxy."""

    def __init__(self, s3, bucket: str, core_dir, expected: list[Expected], prefix: str = "") -> None:
        import threading

        self.s3, self.bucket, self.core_dir, self.prefix = s3, bucket, str(core_dir), prefix
        self.sizes = {e.name: e.size for e in expected}
        self.seen: set[str] = set()
        self.early: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="deletion-watch")

    def __enter__(self) -> DeletionWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        present = set(self.sizes)
        while not self._stop.wait(0.02):
            try:
                now = {n for n in os.listdir(self.core_dir) if n in self.sizes}
            except OSError:
                continue
            for name in present - now:
                self._check(name)
            present = now

    def _check(self, name: str) -> None:
        self.seen.add(name)
        try:
            # The key holds the crash's time and facts before the zip's name (cdh/keys.py's layouts).
            key = next((k for k in list_keys(self.s3, self.bucket, self.prefix) if zip_name_of(k) == name),
                       self.prefix + name)
            head = self.s3.head_object(Bucket=self.bucket, Key=key)
        except Exception as err:
            self.early.append(f"{name}: deleted before its object existed ({err})")
            return
        if head["ContentLength"] != self.sizes[name]:
            self.early.append(f"{name}: deleted while the object had {head['ContentLength']} bytes")
