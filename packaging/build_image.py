"""Write the cdh agent image, FROM scratch, as one tar: `nox -s image`, or

    python packaging/build_image.py --runtime DIR [-o dist/cdh-image.tar] [--name localhost/cdh]

No registry and no container engine: the image's files are the runtime that packaging/pyruntime.py laid
out (DIR, whose cdh.pyz is the zipapp) at /opt/cdh/runtime, /opt/cdh/cdh.pyz (that zipapp with a first
line running it on /opt/cdh/runtime, written by cdh.agent.pyruntime, the code that writes HOST_DIR/cdc),
/tmp and a minimal /etc: what the Containerfile's last stage holds. The archive is at once

  - an OCI image layout (oci-layout, index.json, blobs/sha256/...): `skopeo copy oci-archive:`,
    `ctr images import`, `podman load`, and
  - a docker-archive (manifest.json with RepoTags): `docker load`, `skopeo copy docker-archive:`,

as `docker save` (25+) writes it. Reproducible: entries sorted, mtime 0, root:root, modes normalised
(0755 directories and executables, 0644 the rest; /tmp 1777), gzip without name or time; the same
runtime, labels and zlib give the same digest. Three layers, each with its parent directories:

  1. runtime: the interpreter, its libraries and the standard library (changes with Python or glibc);
  2. wheels:  the zipapp's third-party site-packages (changes with packaging/constraints.txt);
  3. cdh:     cdh's own modules, runtime.json, the zipapp, the entrypoint (changes every release).

A node upgrading cdh alone pulls layer 3, not the whole image (layer mtimes are 0, not the commit's,
so layers 1 and 2 keep their digests across releases).

`--rootfs DIR` writes the same members as one directory tree per layer (DIR/runtime, DIR/wheels,
DIR/cdh) for the Containerfile's last stage to COPY: the two paths ship the same files.

Needs no cdh imports: the entrypoint is written by the laid-out runtime itself.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import tomllib

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PREFIX = "opt/cdh"
RUNTIME = f"{PREFIX}/runtime"
ENTRY = f"{PREFIX}/cdh.pyz"
# What the uncompressed layers may weigh (README "Packaging" states it; a packaging test holds it).
# 96 until the Azure and Google credential libraries came (README "Dependencies": +37 MiB measured).
SIZE_BUDGET_MIB = 128
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
LAYER_TYPES = {"gzip": "application/vnd.oci.image.layer.v1.tar+gzip",
               "none": "application/vnd.oci.image.layer.v1.tar"}
LAYERS = ("runtime", "wheels", "cdh")
# The kernel never reads these: a root and a nobody for tools that look a user up (getpass, id).
PASSWD = b"root:x:0:0:root:/:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n"
GROUP = b"root:x:0:\nnogroup:x:65534:\n"
SKELETON_DIRS = {"etc": 0o755, "opt": 0o755, PREFIX: 0o755, "tmp": 0o1777}
# No shell or tools in the image: PATH only lets `kubectl exec <pod> -- cdh.pyz ...` find the entrypoint.
ENV = [f"PATH=/{PREFIX}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8"]


# ------------------------------------------------------------------ what goes in which layer

def layer_of(rel: str) -> str:
    """The layer a path under the runtime belongs to (see the module docstring)."""
    parts = rel.split("/")
    if parts[0] != "site-packages":
        return "runtime" if parts[0] in ("bin", "lib") else "cdh"
    top = parts[1]
    if top == "__pycache__":  # site-packages/__pycache__ holds _cdh_runtime's byte-code alone
        return "cdh" if parts[-1].startswith("_cdh_runtime.") else "wheels"
    return "cdh" if top in ("cdh", "_cdh_runtime.py") or top.startswith("cdh-") else "wheels"


def plan(runtime_dir: str, entry: bytes) -> dict[str, list[tuple]]:
    """Layer name → members (archive path, kind, mode, source file or bytes or link target)."""
    layers: dict[str, list[tuple]] = {name: [] for name in LAYERS}
    for root, dirs, files in os.walk(runtime_dir):
        dirs.sort()
        for name in sorted(files) + [d for d in dirs if os.path.islink(os.path.join(root, d))]:
            path = os.path.join(root, name)
            rel = os.path.relpath(path, runtime_dir)
            layers[layer_of(rel)].append(member(f"{RUNTIME}/{rel}", path))
    layers["runtime"] += [("etc/passwd", "file", 0o644, PASSWD), ("etc/group", "file", 0o644, GROUP)]
    layers["cdh"].append((ENTRY, "file", 0o755, entry))
    return {name: with_parents(members) for name, members in layers.items()}


def member(arcname: str, path: str) -> tuple:
    if os.path.islink(path):
        return (arcname, "symlink", 0o777, os.readlink(path))
    if not os.path.isfile(path):
        sys.exit(f"packaging/build_image.py: {path} is neither a file nor a link")
    return (arcname, "file", 0o755 if os.stat(path).st_mode & 0o111 else 0o644, path)


def with_parents(members: list[tuple]) -> list[tuple]:
    """Every parent directory as an entry of its own (same metadata in every layer), sorted."""
    dirs = {}
    for arcname, *_ in members:
        parts = arcname.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            d = "/".join(parts[:i])
            dirs[d] = (d, "dir", SKELETON_DIRS.get(d, 0o755), None)
    for d, mode in SKELETON_DIRS.items():
        dirs.setdefault(d, (d, "dir", mode, None))
    return sorted([*dirs.values(), *members], key=lambda m: m[0])


# ------------------------------------------------------------------ tar and gzip, reproducibly

def tarinfo(arcname: str, kind: str, mode: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(arcname)
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    info.mode = mode
    info.type = {"file": tarfile.REGTYPE, "dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE}[kind]
    return info


def write_layer(members: list[tuple], out) -> None:
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for arcname, kind, mode, source in members:
            info = tarinfo(arcname, kind, mode)
            if kind == "symlink":
                info.linkname = source
                tar.addfile(info)
            elif kind == "dir":
                tar.addfile(info)
            elif isinstance(source, bytes):
                info.size = len(source)
                tar.addfile(info, io.BytesIO(source))
            else:
                info.size = os.path.getsize(source)
                with open(source, "rb") as f:
                    tar.addfile(info, f)


class HashingWriter:
    """A write-only file that hashes and counts what passes through it."""

    def __init__(self, f) -> None:
        self.f, self.sha, self.size = f, hashlib.sha256(), 0

    def write(self, data: bytes) -> int:
        self.sha.update(data)
        self.size += len(data)
        return self.f.write(data)

    def tell(self) -> int:
        return self.size

    def flush(self) -> None:
        self.f.flush()

    @property
    def digest(self) -> str:
        return "sha256:" + self.sha.hexdigest()


def build_layer(members: list[tuple], path: str, compression: str, level: int) -> dict:
    """Write one layer blob at ``path``; its descriptor and diff_id (digest of the plain tar)."""
    with open(path, "wb") as f:
        blob = HashingWriter(f)
        if compression == "gzip":
            # No file name, mtime 0: the gzip header holds nothing of the build. The deflate stream
            # is zlib's, so the same zlib (not only the same input) gives the same bytes.
            with gzip.GzipFile(filename="", mode="wb", fileobj=blob, mtime=0, compresslevel=level) as gz:
                plain = HashingWriter(gz)
                write_layer(members, plain)
        else:
            plain = blob
            write_layer(members, plain)
    return {"mediaType": LAYER_TYPES[compression], "digest": blob.digest, "size": blob.size,
            "diff_id": plain.digest, "plain_size": plain.size}


# ------------------------------------------------------------------ image metadata

def image_config(meta: dict, layers: list[dict]) -> dict:
    return {
        "architecture": meta["arch"], "os": "linux", "created": meta["created"],
        "config": {"Entrypoint": [f"/{ENTRY}"], "Cmd": ["agent"], "Env": ENV,
                   "User": "0:0", "WorkingDir": "/", "Labels": meta["labels"]},
        "rootfs": {"type": "layers", "diff_ids": [layer["diff_id"] for layer in layers]},
        "history": [{"created": meta["created"], "created_by": f"packaging/build_image.py: {name} layer"}
                    for name in LAYERS],
    }


def labels(version: str, revision: str, source: str, created: str) -> dict[str, str]:
    return {
        "org.opencontainers.image.title": "cdh",
        "org.opencontainers.image.description": "cdh agent: captures crash core dumps on Kubernetes nodes "
                                                "and uploads them to object storage",
        "org.opencontainers.image.licenses": "Apache-2.0",
        "org.opencontainers.image.source": source,
        "org.opencontainers.image.version": version,
        "org.opencontainers.image.revision": revision,
        "org.opencontainers.image.created": created,
    }


def project_facts(repo: str) -> dict:
    """Version and source URL from pyproject.toml; revision and time from git (SOURCE_DATE_EPOCH wins
    for the time; no git: revision ``unknown``, time 0)."""
    with open(os.path.join(repo, "pyproject.toml"), "rb") as f:
        project = tomllib.load(f)["project"]

    def git(*args: str) -> str:
        try:
            done = subprocess.run(["git", "-C", repo, *args], capture_output=True, text=True)
        except FileNotFoundError:
            return ""
        return done.stdout.strip() if done.returncode == 0 else ""

    revision = git("rev-parse", "HEAD") or "unknown"
    if revision != "unknown" and git("status", "--porcelain", "--untracked-files=no"):
        revision += "-dirty"
    epoch = int(os.environ.get("SOURCE_DATE_EPOCH") or git("log", "-1", "--format=%ct") or 0)
    return {"version": project["version"], "revision": revision, "epoch": epoch,
            "source": project.get("urls", {}).get("Source", "")}


# ------------------------------------------------------------------ the entrypoint

def entry_bytes(runtime_dir: str) -> bytes:
    """/opt/cdh/cdh.pyz, written by cdh.agent.pyruntime (the code that writes HOST_DIR/cdc) run on the
    runtime itself, with the first line naming the runtime where the image has it."""
    interpreter = [os.path.join(runtime_dir, "lib", "ld.so"), os.path.join(runtime_dir, "bin", "python3")]
    with tempfile.TemporaryDirectory(prefix="cdh-entry-") as tmp:
        out = os.path.join(tmp, "cdh.pyz")
        done = subprocess.run([*interpreter, "-m", "cdh.agent.pyruntime", runtime_dir, out, f"/{RUNTIME}"],
                              capture_output=True, env={}, cwd="/")
        if done.returncode != 0:
            sys.exit("packaging/build_image.py: the runtime could not write the entrypoint:\n"
                     + done.stderr.decode(errors="replace"))
        with open(out, "rb") as f:
            return f.read()


# ------------------------------------------------------------------ the archive

def add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarinfo(name, "file", 0o644)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def dumps(obj) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def blob(digest: str) -> str:
    return f"blobs/sha256/{digest[7:]}"


def build(runtime_dir: str, output: str, name: str, meta: dict, compression: str, level: int) -> dict:
    tag = meta["version"]
    runtime_dir = os.path.abspath(runtime_dir)
    members = plan(runtime_dir, entry_bytes(runtime_dir))
    scratch = os.path.dirname(os.path.abspath(output))
    with tempfile.TemporaryDirectory(prefix="cdh-image-", dir=scratch) as tmp:
        layers = [build_layer(members[n], os.path.join(tmp, n), compression, level) for n in LAYERS]
        config = dumps(image_config(meta, layers))
        manifest = dumps({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": sha(config), "size": len(config)},
            "layers": [{k: layer[k] for k in ("mediaType", "digest", "size")} for layer in layers],
            "annotations": meta["labels"],
        })
        digest = sha(manifest)
        # What `docker save` (25+) writes: the tag as ref.name, the full name for containerd.
        index = dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [{
            "mediaType": OCI_MANIFEST, "digest": digest, "size": len(manifest),
            "annotations": {"io.containerd.image.name": f"{name}:{tag}",
                            "org.opencontainers.image.ref.name": tag}}]})
        docker = dumps([{"Config": blob(sha(config)), "RepoTags": [f"{name}:{tag}"],
                         "Layers": [blob(layer["digest"]) for layer in layers]}])
        blobs: dict[str, bytes | str] = {blob(sha(config)): config, blob(digest): manifest}
        for n, layer in zip(LAYERS, layers, strict=True):
            blobs[blob(layer["digest"])] = os.path.join(tmp, n)
        write_archive(output, blobs, {"oci-layout": dumps({"imageLayoutVersion": "1.0.0"}),
                                      "index.json": index, "manifest.json": docker})
    return {"name": name, "tag": tag, "digest": digest, "config": sha(config), "layers": layers,
            "archive_bytes": os.path.getsize(output)}


def write_archive(output: str, blobs: dict, files: dict[str, bytes]) -> None:
    tmp = output + ".tmp"
    with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
        for d in ("blobs", "blobs/sha256"):
            tar.addfile(tarinfo(d, "dir", 0o755))
        for path in sorted(blobs):
            if isinstance(blobs[path], bytes):
                add_bytes(tar, path, blobs[path])
            else:
                info = tarinfo(path, "file", 0o644)
                info.size = os.path.getsize(blobs[path])
                with open(blobs[path], "rb") as f:
                    tar.addfile(info, f)
        for path in sorted(files):
            add_bytes(tar, path, files[path])
    os.replace(tmp, output)


def write_rootfs(runtime_dir: str, out: str) -> None:
    """The same members as a directory tree per layer (OUT/<layer>/...), for the Containerfile's last
    stage to COPY: ``COPY --from=build /layers/runtime/ /`` etc. Same paths, bytes and modes."""
    runtime_dir = os.path.abspath(runtime_dir)
    for layer, members in plan(runtime_dir, entry_bytes(runtime_dir)).items():
        top = os.path.join(out, layer)
        os.makedirs(top, exist_ok=True)
        for arcname, kind, mode, source in members:
            path = os.path.join(top, arcname)
            if kind == "dir":
                os.makedirs(path, exist_ok=True)
            elif kind == "symlink":
                os.symlink(source, path)
            elif isinstance(source, bytes):
                with open(path, "wb") as f:
                    f.write(source)
            else:
                shutil.copyfile(source, path)
            if kind != "symlink":
                os.chmod(path, mode)
        for arcname, *_ in reversed(members):  # children first: writing one changes its directory's mtime
            os.utime(os.path.join(top, arcname), (0, 0), follow_symlinks=False)


def machine_arch(runtime_dir: str) -> str:
    with open(os.path.join(runtime_dir, "runtime.json")) as f:
        machine = json.load(f)["machine"]
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)


def report(out: dict, output: str, revision: str) -> None:
    mib = 2**20
    plain = sum(layer["plain_size"] for layer in out["layers"])
    print(f"image   {out['name']}:{out['tag']}")
    print(f"digest  {out['digest']}")
    print(f"archive {output} ({out['archive_bytes'] / mib:.1f} MiB compressed)")
    print(f"size    {plain / mib:.1f} MiB uncompressed, budget {SIZE_BUDGET_MIB} MiB (README \"Packaging\")")
    for name, layer in zip(LAYERS, out["layers"], strict=True):
        print(f"  layer {name:8} {layer['size'] / mib:5.1f} MiB  ({layer['plain_size'] / mib:.1f} MiB tar)  "
              f"{layer['digest']}")
    if revision.endswith("-dirty"):
        print("warning: uncommitted changes; the revision label says -dirty", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runtime", required=True, help="a runtime laid out by packaging/pyruntime.py")
    parser.add_argument("-o", "--output", default=os.path.join(REPO, "dist", "cdh-image.tar"))
    parser.add_argument("--name", default="localhost/cdh", help="repository (the tag is the version)")
    parser.add_argument("--source", help="org.opencontainers.image.source (default: pyproject's "
                                         "[project.urls] Source)")
    parser.add_argument("--compression", choices=sorted(LAYER_TYPES), default="gzip")
    parser.add_argument("--level", type=int, default=6, help="gzip level (9: 0.2 MiB smaller, 3x the CPU)")
    parser.add_argument("--rootfs", metavar="DIR", help="write the layers as directory trees (Containerfile)")
    ns = parser.parse_args(argv)
    if ns.rootfs:
        write_rootfs(ns.runtime, ns.rootfs)
        return 0
    facts = project_facts(REPO)
    source = ns.source or facts["source"]
    if not source:
        sys.exit("packaging/build_image.py: no source URL: add [project.urls] Source to pyproject.toml "
                 "or pass --source")
    created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(facts["epoch"]))
    meta = {"version": facts["version"], "arch": machine_arch(ns.runtime), "created": created,
            "labels": labels(facts["version"], facts["revision"], source, created)}
    os.makedirs(os.path.dirname(os.path.abspath(ns.output)), exist_ok=True)
    out = build(ns.runtime, ns.output, ns.name, meta, ns.compression, ns.level)
    report(out, ns.output, facts["revision"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
