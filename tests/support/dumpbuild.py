"""Dump zips in the composer's format, built around a core for tests of ls/get/inspect.

The layout and JSON shapes follow cdh/ondisk.py and README "Composer": what
the composer writes on a node with containerd. The core is any bytes (a real
core from ``crashes.crash`` for inspect tests). ``compression="zstd"`` writes
the core as zip method 93, which the stdlib cannot write: the entry is written
stored and its header fields rewritten in place.
"""

from __future__ import annotations

import json
import os
import struct
import time
import uuid as uuidlib
import zipfile
import zlib
from pathlib import Path

DEFAULT_LOG = ["starting app v1.2.3", "listening on :8080", "handling request 42", "about to crash"]


def dump_info(**over) -> dict:
    """A dump-info.json with every field the composer writes; ``over`` replaces any (``timestamp``,
    ``signal``, ``real_pid`` and ``path`` as numbers and a '/' path: both forms are written)."""
    ts = int(over.pop("timestamp", time.time()))
    sig, pid = int(over.pop("signal", 11)), int(over.pop("real_pid", 1))
    exe_path = over.pop("path", "/usr/bin/app")
    info = {
        "uuid": str(uuidlib.uuid4()), "dump_file": "", "timestamp": str(ts), "hostname": "web-0",
        "exe": "app", "real_pid": str(pid), "signal": str(sig), "node_hostname": "node-1",
        "path": exe_path.replace("/", "!"), "pid": pid, "signal_number": sig, "timestamp_s": ts,
        "executable": exe_path, "host_pid": 4242, "namespace": "default", "podname": "web-0",
        "pod_uid": "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0", "container": "app",
        "container_id": "a" * 64, "image": "registry.example.com/team/app:1.2.3",
        "image_digest": "registry.example.com/team/app@sha256:" + "b" * 64, "core_size": 0,
        "compression": "deflate", "truncated": False, "truncated_reason": None,
        "pod_found_by": "cgroup", "metadata_errors": [], "cdh_version": "0.1.0",
    }
    info.update(over)
    return info


def zip_name(info: dict) -> str:
    """The default name template: {uuid}-dump-{timestamp}-{hostname}-{exe_name}-{pid}-{signal}."""
    return (f"{info['uuid']}-dump-{info['timestamp']}-{info['hostname']}-{info['exe']}-"
            f"{info['real_pid']}-{info['signal']}")


def crictl_docs(info: dict) -> dict[str, dict]:
    """pod-info (a `crictl pods` item), runtime-info (inspectp), ps-info, image-info (inspecti)."""
    pod_id = "c" * 64
    labels = {"app": info["podname"], "io.kubernetes.pod.name": info["podname"],
              "io.kubernetes.pod.namespace": info["namespace"], "io.kubernetes.pod.uid": info["pod_uid"]}
    meta = {"name": info["podname"], "uid": info["pod_uid"], "namespace": info["namespace"], "attempt": 0}
    repo = info["image"].rsplit(":", 1)[0]
    return {
        "pod-info": {"id": pod_id, "metadata": meta, "state": "SANDBOX_READY",
                     "createdAt": "1718000000123456789", "labels": labels,
                     "annotations": {"kubernetes.io/config.source": "api"}, "runtimeHandler": ""},
        "runtime-info": {"info": {"pid": 100}, "status": {
            "annotations": {}, "createdAt": "2024-06-10T06:13:20.123456789Z", "id": pod_id, "labels": labels,
            "metadata": {"attempt": 0, "name": info["podname"], "namespace": info["namespace"],
                         "uid": info["pod_uid"]},
            "network": {"additionalIps": [], "ip": "10.244.1.5"}, "runtimeHandler": "",
            "state": "SANDBOX_READY"}},
        "ps-info": {"containers": [{
            "id": info["container_id"], "podSandboxId": pod_id,
            "metadata": {"name": info["container"], "attempt": 0},
            "image": {"image": "sha256:" + "d" * 64, "annotations": {}}, "imageRef": "sha256:" + "d" * 64,
            "state": "CONTAINER_RUNNING", "createdAt": "1718000001500000000", "labels": {},
            "annotations": {}}]},
        "0-image-info": {"info": {}, "status": {
            "id": "sha256:" + "d" * 64, "repoTags": [info["image"]],
            "repoDigests": [f"{repo}@sha256:" + "b" * 64], "size": "72195292",
            "uid": {"value": "0"}, "username": "", "pinned": False}},
    }


def build(out_dir: Path, core: bytes | Path, compression: str = "deflate", log: list[str] | None = None,
          proc: dict[str, bytes] | None = None, **info_over) -> tuple[Path, dict]:
    """Write ``<name>.zip`` into ``out_dir``; return (path, dump-info)."""
    data = core.read_bytes() if isinstance(core, Path) else core
    info = dump_info(compression=compression, core_size=len(data), **info_over)
    name = zip_name(info)
    info["dump_file"] = f"{name}.core"
    path = out_dir / f"{name}.zip"
    method = {"deflate": zipfile.ZIP_DEFLATED, "stored": zipfile.ZIP_STORED, "zstd": zipfile.ZIP_STORED}
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(f"{name}-dump-info.json", json.dumps(info, indent=2))
        core_bytes = _zstd(data) if compression == "zstd" else data
        zf.writestr(zipfile.ZipInfo(f"{name}.core", _dos_time()), core_bytes, method[compression])
        for role, doc in crictl_docs(info).items():
            if role.endswith("image-info") and not info["image"]:
                continue  # a host process, or the runtime did not answer
            zf.writestr(f"{name}-{role}.json", json.dumps(doc, indent=2))
        zf.writestr(f"{name}-0.log", "\n".join(DEFAULT_LOG if log is None else log) + "\n")
        for fname, content in (proc or {"cmdline": b"/usr/bin/app\0", "status": b"Name:\tapp\n"}).items():
            zf.writestr(f"{name}-proc/{fname}", content)
    if compression == "zstd":
        _mark_zstd(path, f"{name}.core", zlib.crc32(data), len(data))
    return path, info


def _dos_time() -> tuple[int, ...]:
    return time.gmtime()[:6]


def _zstd(data: bytes) -> bytes:
    import zstandard

    return zstandard.ZstdCompressor(level=3).compress(data)


def _mark_zstd(path: Path, entry: str, crc: int, size: int) -> None:
    """Turn a stored entry holding zstd bytes into a method-93 entry."""
    patch_entry(path, entry, method=93, crc=crc, size=size)


def patch_entry(path: Path, entry: str, method: int | None = None, crc: int | None = None,
                size: int | None = None) -> None:
    """Rewrite an entry's method, CRC-32 or uncompressed size in its local and central headers."""
    with zipfile.ZipFile(path) as zf:
        local = zf.getinfo(entry).header_offset
    raw = bytearray(path.read_bytes())
    assert raw[local:local + 4] == b"PK\x03\x04"
    central = raw.find(b"PK\x01\x02")
    while central >= 0 and raw[central + 46:central + 46 + len(entry)] != entry.encode():
        central = raw.find(b"PK\x01\x02", central + 4)
    assert central >= 0, "central directory record not found"
    # (field, offset in the local header, offset in the central record, format)
    fields = ((method, 8, 10, "<H"), (crc, 14, 16, "<I"), (size, 22, 24, "<I"))
    for value, at_local, at_central, fmt in fields:
        if value is not None:
            struct.pack_into(fmt, raw, local + at_local, value)
            struct.pack_into(fmt, raw, central + at_central, value)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(bytes(raw))
    os.replace(tmp, path)
