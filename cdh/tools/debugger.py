"""The exact commands that open a dump in gdb or lldb, with the binary from its image.

The core alone has no symbols: the debugger needs the executable and libraries
the process ran, which live in the container image. The commands unpack the
image's filesystem into ``rootfs/`` and point the debugger's sysroot at it, so
every library is the one the process had mapped. The build ids let debuginfod
servers supply debug symbols for distribution packages.
"""

from __future__ import annotations

import platform
import shlex

DEBUGINFOD_URLS = "https://debuginfod.elfutils.org/"  # federates Debian, Ubuntu, Fedora, Arch, ...
ROOTFS = "rootfs"


def image_reference(image: str | None, digest: str | None, repo_digests: list[str]) -> str | None:
    """The most exact reference to pull: repo@sha256 where we know it, else the tag."""
    if digest and "@" in digest:
        return _strip_runtime_scheme(digest)
    if digest and digest.startswith("sha256:") and image and "@" not in image:
        return f"{_repository(image)}@{digest}"
    usable = [d for d in repo_digests if "@" in d and not d.startswith("@")]
    if usable:
        return _strip_runtime_scheme(usable[0])
    return image or None


def _strip_runtime_scheme(ref: str) -> str:
    return ref.split("://", 1)[1] if "://" in ref else ref  # cri-dockerd: docker-pullable://repo@sha


def _repository(image: str) -> str:
    last = image.rsplit("/", 1)[-1]
    return image.rsplit(":", 1)[0] if ":" in last else image


def commands(core_path: str, exe_path: str | None, image: str | None, machine: str,
             build_id: str | None) -> dict[str, str]:
    """Shell lines to open the core: fetch (when there is an image), gdb, lldb, debuginfod."""
    q = shlex.quote
    gdb = "gdb" if _same_machine(machine) else "gdb-multiarch"
    exe = f"{ROOTFS}{exe_path}" if image and exe_path else exe_path
    files = [exe, core_path] if exe else [core_path]
    sysroot = ["-ex", f"set sysroot {ROOTFS}"] if image else []
    out: dict[str, str] = {}
    if image:
        out["fetch"] = f"mkdir -p {ROOTFS} && crane export {q(image)} - | tar -xf - -C {ROOTFS}"
        out["fetch_docker"] = f"docker export $(docker create {q(image)}) | tar -xf - -C {ROOTFS}"
    out["gdb"] = shlex.join([gdb, "-q", *sysroot, *files])
    if image:
        target = f"target create --core {q(core_path)}" + (f" {q(exe)}" if exe else "")
        out["lldb"] = shlex.join(["lldb", "-o", f"platform select --sysroot {ROOTFS} remote-linux",
                                  "-o", target])
    else:
        out["lldb"] = shlex.join(["lldb", "--core", core_path, *([exe] if exe else [])])
    out["debuginfod"] = f"DEBUGINFOD_URLS={q(DEBUGINFOD_URLS)} " + shlex.join(
        [gdb, "-q", "-ex", "set debuginfod enabled on", *sysroot, *files])
    if build_id:
        out["debuginfod_find"] = f"DEBUGINFOD_URLS={q(DEBUGINFOD_URLS)} debuginfod-find debuginfo {build_id}"
    return out


def _same_machine(machine: str) -> bool:
    local = platform.machine().lower()
    return {"amd64": "x86_64", "arm64": "aarch64"}.get(local, local) == machine
