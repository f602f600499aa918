"""OCI image archives made here from Debian's busybox-static: no registry is reachable.

``build(path, name, entrypoint)`` writes an OCI image layout as one tar (what ``ctr images import``
reads) holding one uncompressed layer: ``/bin/busybox`` and the applet links the tests use. Each
archive is byte-for-byte reproducible (fixed mtimes, owners and order), so an image's digests are
known before it is imported and the tests can check the runtime reports exactly them.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile

BUSYBOX = "/bin/busybox"
APPLETS = ("sh", "sleep", "cat", "echo", "kill", "ls", "seq", "true", "false", "printf", "test", "[")
PAUSE = "cdh.test/pause:3.9"  # the images the suite builds (tests/runtime/conftest.py ``images``)
CRASHERS = ("cdh.test/crasher:1", "cdh.test/crasher:2")
MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"
CONFIG_TYPE = "application/vnd.oci.image.config.v1+json"
LAYER_TYPE = "application/vnd.oci.image.layer.v1.tar"


class Image:
    """What the tests check against: the name and the digests the runtime must report."""

    def __init__(self, name: str, archive: str, manifest_digest: str, config_digest: str) -> None:
        self.name = name                        # e.g. cdh.test/crasher:1
        self.archive = archive
        self.manifest_digest = manifest_digest  # the repo digest: name@<this>
        self.config_digest = config_digest      # the image id

    @property
    def repo_digest(self) -> str:
        return self.name.rsplit(":", 1)[0] + "@" + self.manifest_digest


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _info(name: str, **kw) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    for key, value in kw.items():
        setattr(info, key, value)
    return info


def _layer(name: str) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for d in ("bin", "tmp", "proc", "sys", "dev", "etc"):
            tar.addfile(_info(d, type=tarfile.DIRTYPE, mode=0o1777 if d == "tmp" else 0o755))
        with open(BUSYBOX, "rb") as f:
            data = f.read()
        tar.addfile(_info("bin/busybox", size=len(data), mode=0o755), io.BytesIO(data))
        for applet in APPLETS:
            tar.addfile(_info(f"bin/{applet}", type=tarfile.SYMTYPE, linkname="busybox", mode=0o777))
        # etc/image: each name its own content, so its own digests
        for path, data in (("etc/passwd", b"root:x:0:0:root:/:/bin/sh\n"), ("etc/image", name.encode())):
            tar.addfile(_info(path, size=len(data), mode=0o644), io.BytesIO(data))
    return buf.getvalue()


def _blob(tar: tarfile.TarFile, data: bytes) -> dict:
    digest = _sha(data)
    tar.addfile(_info(f"blobs/sha256/{digest[7:]}", size=len(data), mode=0o644), io.BytesIO(data))
    return {"digest": digest, "size": len(data)}


def build(directory: str, name: str, entrypoint: list[str]) -> Image:
    """Write ``<directory>/<repo>.tar`` for image ``name`` (``registry/repo:tag``)."""
    layer = _layer(name)
    config = json.dumps({
        "architecture": _arch(), "os": "linux",
        "config": {"Entrypoint": entrypoint, "Env": ["PATH=/bin"], "WorkingDir": "/"},
        "rootfs": {"type": "layers", "diff_ids": [_sha(layer)]},
    }, sort_keys=True).encode()
    archive = os.path.join(directory, name.rsplit("/", 1)[-1].replace(":", "_") + ".tar")
    with tarfile.open(archive, "w", format=tarfile.PAX_FORMAT) as tar:
        tar.addfile(_info("blobs", type=tarfile.DIRTYPE, mode=0o755))
        tar.addfile(_info("blobs/sha256", type=tarfile.DIRTYPE, mode=0o755))
        layer_desc = {"mediaType": LAYER_TYPE, **_blob(tar, layer)}
        config_desc = {"mediaType": CONFIG_TYPE, **_blob(tar, config)}
        manifest = json.dumps({"schemaVersion": 2, "mediaType": MANIFEST_TYPE, "config": config_desc,
                               "layers": [layer_desc]}, sort_keys=True).encode()
        manifest_desc = {"mediaType": MANIFEST_TYPE, **_blob(tar, manifest),
                         "annotations": {"io.containerd.image.name": name,
                                         "org.opencontainers.image.ref.name": name.rsplit(":", 1)[1]}}
        for fname, obj in (("oci-layout", {"imageLayoutVersion": "1.0.0"}),
                           ("index.json", {"schemaVersion": 2, "manifests": [manifest_desc]})):
            data = json.dumps(obj, sort_keys=True).encode()
            tar.addfile(_info(fname, size=len(data), mode=0o644), io.BytesIO(data))
    return Image(name, archive, manifest_desc["digest"], config_desc["digest"])


def _arch() -> str:
    machine = os.uname().machine
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)
