"""The composer's runtime in HOST_DIR: copy it in, point cdc at it, remove old ones safely.

A runtime laid out by packaging/pyruntime.py (the image's /opt/cdh/runtime) lists in runtime.json
the part the composer uses ("host_files"). Install copies that part to HOST_DIR/runtime/<id>/
(a temp directory, renamed when complete) and writes HOST_DIR/cdc: the zipapp whose first line
runs the bundled loader on the bundled interpreter, so nothing of the host is needed::

    #!HOST_DIR/runtime/<id>/lib/ld.so HOST_DIR/runtime/<id>/bin/python3

Upgrades while crashes are in flight: <id> is a content hash, so a new runtime never overwrites
files a running composer uses; cdc is replaced by rename. An old runtime is first *retired* (a
marker with the time), and removed only when (1) it was retired at least ``grace_s`` ago, which
covers a composer the kernel started just before cdc changed and that has not yet locked, (2) the
installer gets an exclusive flock on its lock file (every composer holds a shared one for its whole
run: packaging/_cdh_runtime.py), and (3) no process visible here executes its loader.

HOST_DIR/runtime is reached as cdh/fsutil.py's ``open_dir`` says: a symlink there (or a directory
someone else could write) is refused, never followed, chmodded or pruned through; an entry in it
that is not a real directory is left alone.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import shutil
import time

from cdh import fsutil, ondisk
from cdh.ondisk import RUNTIME_LOCK, RUNTIME_MANIFEST, SHEBANG_MAX_NEW, SHEBANG_MAX_OLD

RETIRED = "retired"  # in a runtime: the time an upgrade retired it (the marker's mtime)
RETIRE_GRACE_S = 60.0
ABANDONED_S = 3600.0  # a temp directory this old is no installer's work in progress


class RuntimeInstallError(Exception):
    """The runtime cannot be installed; the message says why (host.HostError wraps it)."""


def running_runtime() -> str | None:
    """The runtime this process runs on (the image's), or None in a development checkout."""
    try:
        import _cdh_runtime  # only on sys.path under a laid-out runtime
    except ImportError:
        return None
    return _cdh_runtime.ROOT


def read_manifest(source: str) -> dict:
    try:
        with open(os.path.join(source, RUNTIME_MANIFEST), encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError) as err:
        raise RuntimeInstallError(f"no usable runtime at {source} ({err}); set CDH_RUNTIME_DIR "
                                  "to a directory laid out by packaging/pyruntime.py") from None


def root(host_dir: str) -> str:
    return ondisk.HostDir(host_dir).runtimes


def shebang(target: str, manifest: dict) -> bytes:
    return f"#!{target}/{manifest['loader_path']} {target}/{manifest['interpreter']}\n".encode()


def shebang_max(release: str | None = None) -> int:
    """How long a first line this kernel reads whole (including the newline)."""
    parts = (release or os.uname().release).split(".")
    try:
        version = (int(parts[0]), int("".join(c for c in parts[1] if c.isdigit()) or 0))
    except (IndexError, ValueError):
        return SHEBANG_MAX_OLD
    return SHEBANG_MAX_NEW if version >= (5, 1) else SHEBANG_MAX_OLD


def install(host_dir: str, source: str, composer_path: str, grace_s: float = RETIRE_GRACE_S) -> list[str]:
    """Copy the runtime's host part, write cdc pointing at it, retire and prune the others."""
    manifest = read_manifest(source)
    target = os.path.join(root(host_dir), manifest["id"])
    line = shebang(target, manifest)
    if len(line) > shebang_max():
        raise RuntimeInstallError(
            f"cdc's first line would be {len(line)} bytes, more than this kernel reads "
            f"({shebang_max()}): use a shorter CDH_HOST_DIR (now {host_dir!r})")
    try:
        fsutil.check_dir(root(host_dir), create=True)
    except fsutil.UnsafePath as err:
        raise RuntimeInstallError(f"{err}: HOST_DIR/runtime must be a directory of root's") from None
    done = []
    if not os.path.isfile(os.path.join(target, RUNTIME_MANIFEST)):
        copy_host_part(source, manifest, target)
        done.append(f"runtime {manifest['id']} installed at {target} "
                    f"({manifest['host_bytes'] / 2**20:.1f} MiB, python {manifest['python']})")
    else:
        done.append(f"runtime {manifest['id']} already at {target}")
    write_zipapp(composer_path, target, manifest, os.path.join(source, manifest["pyz"]))
    done.append(f"composer installed at {composer_path} (runs on runtime {manifest['id']})")
    return done + prune(host_dir, keep=manifest["id"], grace_s=grace_s)


def copy_host_part(source: str, manifest: dict, target: str) -> None:
    """Copy into a temp directory beside the target, fsync, rename: complete or absent."""
    tmp = os.path.join(os.path.dirname(target), f".{manifest['id']}.tmp.{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    for rel in [*manifest["host_files"], RUNTIME_MANIFEST]:  # the manifest last: it marks a complete copy
        dst = os.path.join(tmp, rel)
        os.makedirs(os.path.dirname(dst), mode=0o755, exist_ok=True)
        shutil.copy2(os.path.join(source, rel), dst)
        with open(dst, "rb") as f:
            os.fsync(f.fileno())
    for directory, _dirs, _files in os.walk(tmp):
        fsutil.fsync_dir(directory)
    os.chmod(tmp, 0o755)
    try:
        os.rename(tmp, target)
    except OSError as err:  # another installer (`cdh install` by hand) got there first
        shutil.rmtree(tmp, ignore_errors=True)
        if err.errno not in (errno.EEXIST, errno.ENOTEMPTY):
            raise
    fsutil.fsync_dir(os.path.dirname(target))


def write_zipapp(dest: str, target: str, manifest: dict, pyz: str, mode: int = 0o700) -> None:
    """Write the zipapp ``pyz`` to ``dest`` (atomically) with a first line running it on the runtime
    at ``target``: HOST_DIR/cdc here; /opt/cdh/cdh.pyz in the image (packaging/Containerfile)."""
    fsutil.write_if_changed(dest, shebang(target, manifest) + zipapp_body(pyz), mode=mode)


def write_image_entry(runtime_dir: str, dest: str, target: str | None = None) -> None:
    """The image's executable zipapp: ``python -m cdh.agent.pyruntime RUNTIME DEST [TARGET]`` (the
    Containerfile; packaging/build_image.py, whose runtime is built elsewhere and lives at TARGET,
    /opt/cdh/runtime, in the image)."""
    manifest = read_manifest(runtime_dir)
    pyz = os.path.join(runtime_dir, manifest["pyz"])
    write_zipapp(dest, target or runtime_dir, manifest, pyz, mode=0o755)


def zipapp_body(pyz: str) -> bytes:
    """The zipapp without its first line (its archive offsets count from the archive's start)."""
    with open(pyz, "rb") as f:
        first = f.readline()
        if not first.startswith(b"#!"):
            raise RuntimeInstallError(f"{pyz} does not start with a #! line: not a cdh zipapp")
        return f.read()


def _remove_if_unused(path: str, name: str) -> str:
    """Remove the runtime unless a composer uses it; the exclusive lock is held throughout."""
    try:
        fd = os.open(os.path.join(path, RUNTIME_LOCK), os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        fd = None
    try:
        if fd is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return f"runtime {name} kept: a composer holds its lock"
        pids = executing(path)
        if pids:
            return f"runtime {name} kept: process {pids[0]} runs its loader"
        gone = os.path.join(os.path.dirname(path), f".{name}.removing.{os.getpid()}")
        os.rename(path, gone)  # atomic: never a half-removed runtime under its own name
        shutil.rmtree(gone, ignore_errors=True)
        return f"runtime {name} removed"
    finally:
        if fd is not None:
            os.close(fd)


def executing(path: str) -> list[int]:
    """PIDs whose executable (the loader, for a composer) lies under ``path``."""
    prefix = os.path.realpath(path) + os.sep
    pids = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                exe = os.readlink(f"/proc/{name}/exe")
            except OSError:
                continue
            if exe.startswith(prefix):
                pids.append(int(name))
    return pids


def prune(host_dir: str, keep: str | None, grace_s: float = RETIRE_GRACE_S) -> list[str]:
    """Retire every runtime but ``keep``; remove the retired ones nothing uses any more."""
    top = root(host_dir)
    try:
        fd = fsutil.open_dir(top)
    except FileNotFoundError:
        return []
    except fsutil.UnsafePath as err:
        return [f"{err}: left alone, nothing under it pruned"]
    try:
        with os.scandir(fd) as entries:  # the checked directory itself, not whatever the path names now
            names = sorted(e.name for e in entries if e.is_dir(follow_symlinks=False))
    finally:
        os.close(fd)
    done = []
    for name in names:
        path = os.path.join(top, name)
        if name == keep:
            continue
        if name.startswith("."):  # an interrupted copy or removal (or another installer's, right now)
            if _abandoned(path, name):
                shutil.rmtree(path, ignore_errors=True)
            continue
        done.append(_retire_or_remove(path, name, grace_s))
    return done


def _retire_or_remove(path: str, name: str, grace_s: float) -> str:
    marker = os.path.join(path, RETIRED)
    try:
        age = time.time() - os.stat(marker).st_mtime
    except FileNotFoundError:
        open(marker, "w").close()
        age = 0.0
    if age < grace_s:
        return f"runtime {name} retired; removed after {grace_s:.0f}s when unused"
    return _remove_if_unused(path, name)


def _abandoned(path: str, name: str) -> bool:
    """Its installer is gone, or it is an hour old (the pid may be another namespace's)."""
    pid = name.rsplit(".", 1)[-1]
    try:
        old = time.time() - os.stat(path).st_mtime > ABANDONED_S
    except FileNotFoundError:
        return False
    return old or not (pid.isdigit() and os.path.exists(f"/proc/{pid}"))


def remove_all(host_dir: str) -> list[str]:
    """Uninstall: remove every runtime nothing uses; the directory goes when empty."""
    done = prune(host_dir, keep=None, grace_s=0.0)
    try:
        os.rmdir(root(host_dir))
        done.append(f"removed {root(host_dir)}")
    except OSError:
        pass
    return done


if __name__ == "__main__":  # the image's /opt/cdh/cdh.pyz (packaging/Containerfile, build_image.py)
    import sys

    write_image_entry(*sys.argv[1:4])
