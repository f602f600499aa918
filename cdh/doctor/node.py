"""The node's checks: sysctls, the installed composer and its runtime, a dry-run capture, the container
runtime (its CRI socket, else crictl, as the composer asks), CORE_DIR."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
import zipfile

from cdh import config, ondisk
from cdh.composer.cri.crictl import find_crictl
from cdh.doctor import FAIL, PASS, SKIP, Check, Node, Options
from cdh.sysctl import Sysctl, is_ours

FAKE_CORE = b"\x7fELF cdh doctor: not a real core\n" * 64
DRY_RUN_TIMEOUT_S = 60.0
RESTART = "restart the agent pod (it installs the composer and sets the sysctls at start)"


def run_all(settings: config.Settings, node: Node, opts: Options, env_problem: str | None) -> list[Check]:
    sysctl = Sysctl.here()
    composer = check_composer(settings, node)
    checks = [check_core_pattern(settings, node, sysctl), check_pipe_limit(sysctl), composer,
              check_runtime(settings, node), check_composer_env(settings, node, env_problem)]
    if composer.status == PASS:
        checks.append(dry_run(settings, node))
    else:
        checks.append(Check("capture", SKIP, "no usable composer to run", "fix the composer first"))
    checks += [check_cri(settings, node), check_core_dir(settings, node, opts.min_free_bytes)]
    return checks


# ---------------------------------------------------------------- sysctls


def check_core_pattern(settings: config.Settings, node: Node, sysctl: Sysctl) -> Check:
    try:
        pattern = sysctl.read("kernel.core_pattern")
    except OSError as err:
        return Check("core_pattern", FAIL, f"cannot read it: {err.strerror}", "run as root")
    cdc = ondisk.HostDir(settings.host_dir).composer
    if is_ours(pattern, settings.host_dir):
        if not os.access(node.path(cdc), os.X_OK):
            return Check("core_pattern", FAIL, f"{pattern!r} pipes into {cdc}, which is missing or not "
                         "executable: every crash is lost", RESTART)
        return Check("core_pattern", PASS, pattern)
    hint = RESTART
    if pattern.startswith("|") and pattern.split()[0].endswith("/cdc"):
        hint = f"it pipes into another HOST_DIR: set CDH_HOST_DIR={os.path.dirname(pattern.split()[0][1:])}"
    return Check("core_pattern", FAIL, f"{pattern!r} does not pipe into {cdc}: no crash is captured", hint)


def check_pipe_limit(sysctl: Sysctl) -> Check:
    try:
        value = sysctl.read("kernel.core_pipe_limit")
    except OSError as err:
        return Check("core_pipe_limit", FAIL, f"cannot read it: {err.strerror}", "run as root")
    if value.strip().isdigit() and int(value) > 0:
        return Check("core_pipe_limit", PASS, value)
    return Check("core_pipe_limit", FAIL, f"{value}: the kernel does not wait for the composer, so the "
                 "crashed process's /proc (pod and container facts) may be gone",
                 f"{RESTART}, or: echo 128 > /proc/sys/kernel/core_pipe_limit")


# ---------------------------------------------------------------- the composer and its runtime


def first_line(path: str) -> list[str]:
    """The words of a script's ``#!`` line (empty when there is none)."""
    with open(path, "rb") as f:
        line = f.readline(ondisk.SHEBANG_MAX_NEW).decode(errors="replace")
    return line[2:].split() if line.startswith("#!") else []


def check_composer(settings: config.Settings, node: Node) -> Check:
    cdc = ondisk.HostDir(settings.host_dir).composer
    here = node.path(cdc)
    if not os.path.isfile(here):
        return Check("composer", FAIL, f"{cdc} is missing", RESTART + "; or run `cdh install` on the node")
    if not os.access(here, os.X_OK):
        return Check("composer", FAIL, f"{cdc} is not executable", RESTART)
    words = first_line(here)
    if not words:
        return Check("composer", FAIL, f"{cdc} has no #! line", RESTART)
    missing = [w for w in words if w.startswith("/") and not os.access(node.path(w), os.X_OK)]
    if missing:
        return Check("composer", FAIL, f"{cdc}'s first line names {', '.join(missing)}, which is not there "
                     "or not executable", RESTART + " (it reinstalls the runtime)")
    return Check("composer", PASS, f"{cdc} runs {' '.join(words)}")


def check_runtime(settings: config.Settings, node: Node) -> Check:
    cdc = ondisk.HostDir(settings.host_dir).composer
    try:
        words = first_line(node.path(cdc))
    except OSError:
        return Check("runtime", SKIP, f"{cdc} is missing")
    host_dir = ondisk.HostDir(settings.host_dir)
    rid = host_dir.runtime_id("#!" + words[0]) if words else None
    if rid is None:
        return Check("runtime", SKIP, f"{cdc} does not run on a bundled runtime (a development install)")
    target = os.path.join(host_dir.runtimes, rid)
    try:
        with open(node.path(os.path.join(target, ondisk.RUNTIME_MANIFEST)), encoding="utf-8") as f:
            manifest = json.load(f)
    except (OSError, ValueError) as err:
        return Check("runtime", FAIL, f"{target}/{ondisk.RUNTIME_MANIFEST} is unreadable: {err}", RESTART)
    lost = [rel for rel in manifest.get("host_files", []) if not os.path.exists(node.path(f"{target}/{rel}"))]
    if lost:
        return Check("runtime", FAIL, f"runtime {rid} lacks {len(lost)} files (first: {lost[0]})",
                     f"remove {target} and {RESTART}")
    return Check("runtime", PASS, f"{target}: {len(manifest.get('host_files', []))} files, "
                 f"python {manifest.get('python', '?')}")


def check_composer_env(settings: config.Settings, node: Node, problem: str | None) -> Check:
    path = ondisk.HostDir(settings.host_dir).composer_env
    if problem:
        return Check("composer_env", FAIL, problem, "fix the value in cdh.env and reload, or " + RESTART)
    if not os.path.isfile(node.path(path)):
        return Check("composer_env", FAIL, f"{path} is missing: the composer uses its defaults "
                     "(CORE_DIR, compression, log level)", RESTART)
    return Check("composer_env", PASS, f"{path} (CORE_DIR {settings.core_dir})")


def dry_run(settings: config.Settings, node: Node) -> Check:
    """Run cdc as the kernel would, on a fake core, into a temporary HOST_DIR of its own: in HOST_DIR,
    or in HOST_DIR/state where HOST_DIR is read-only (the DaemonSet's unprivileged uploader)."""
    layout = ondisk.HostDir(settings.host_dir)
    try:
        scratch = tempfile.mkdtemp(prefix=".doctor-", dir=node.path(layout.path))
        parent = layout.path
    except OSError:
        try:
            scratch = tempfile.mkdtemp(prefix=".doctor-", dir=node.path(layout.state))
        except OSError as err:
            return Check("capture", FAIL, f"no writable place for a test capture in {layout.path}: {err}",
                         "run `cdh doctor` where HOST_DIR or HOST_DIR/state is writable")
        parent = layout.state
    inside = os.path.join(parent, os.path.basename(scratch))  # the same directory, seen by cdc
    try:
        return _dry_run(settings, node, scratch, inside)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _dry_run(settings: config.Settings, node: Node, scratch: str, inside: str) -> Check:
    pid = os.getpid()
    argv = [ondisk.HostDir(settings.host_dir).composer, "-c=0", "-e=cdh-doctor", f"-p={pid}", f"-P={pid}",
            "-s=11", f"-t={int(time.time())}", f"-h={os.uname().nodename}", "-E=!cdh-doctor"]
    # composer.env is read as on a crash; these win over it: a private log and core directory, no CRI.
    env = {"CDH_HOST_DIR": inside, "CDH_CORE_DIR": f"{inside}/cores", "CDH_IGNORE_CRI": "true",
           "CDH_CORE_EVENTS": "false"}
    os.makedirs(os.path.join(scratch, "cores"))
    try:
        proc = run_on_node(node, argv, env, FAKE_CORE, DRY_RUN_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as err:
        return Check("capture", FAIL, f"cdc did not run: {err}", RESTART)
    zips = [n for n in os.listdir(os.path.join(scratch, "cores")) if ondisk.is_finished_zip(n)]
    problem = _zip_problem(os.path.join(scratch, "cores", zips[0])) if len(zips) == 1 else \
        f"{len(zips)} zips written"
    errors = _log_errors(ondisk.HostDir(scratch).composer_log)
    if proc.returncode != 0 or problem or errors:
        stderr = proc.stderr.decode(errors="replace").strip()[-300:]
        said = "; ".join(x for x in (*errors[:1], stderr, problem) if x)
        return Check("capture", FAIL, f"cdc exit {proc.returncode}: {said}", "see the error; " + RESTART)
    return Check("capture", PASS, f"cdc captured a {len(FAKE_CORE)}-byte test core into a valid zip")


def _zip_problem(path: str) -> str | None:
    try:
        with zipfile.ZipFile(path) as zf:
            bad = zf.testzip()
            cores = [n for n in zf.namelist() if n.endswith(ondisk.CORE)]
            infos = [n for n in zf.namelist() if n.endswith(ondisk.DUMP_INFO)]
            if bad or len(cores) != 1 or len(infos) != 1:
                return f"the zip is not what the composer writes (bad entry {bad}, entries {zf.namelist()})"
            if zf.read(cores[0]) != FAKE_CORE:
                return "the core in the zip differs from the one sent"
            json.loads(zf.read(infos[0]))
    except (OSError, ValueError, zipfile.BadZipFile) as err:
        return f"the zip cannot be read: {err}"
    return None


def _log_errors(path: str) -> list[str]:
    try:
        with open(path, encoding="utf-8") as f:
            lines = [json.loads(line) for line in f if line.strip()]
    except (OSError, ValueError):
        return []
    return [f"{ln.get('event')}: {ln.get('error', '')}" for ln in lines if ln.get("level") == "error"]


def run_on_node(node: Node, argv: list[str], env: dict[str, str], stdin: bytes | None,
                timeout: float) -> subprocess.CompletedProcess:
    """Run a program of the node: chrooted into the host's root when we look at it from elsewhere."""
    def enter() -> None:
        os.chroot(node.root)
        os.chdir("/")

    return subprocess.run(argv, input=stdin, env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", **env},
                          capture_output=True, timeout=timeout, cwd="/",
                          preexec_fn=None if node.root == "/" else enter)  # runs before any thread exists


# ---------------------------------------------------------------- crictl and CORE_DIR


def check_cri(settings: config.Settings, node: Node) -> Check:
    """As the composer finds the runtime (cdh.composer.cri.sources): its CRI socket, else crictl."""
    if settings.ignore_cri:
        return Check("cri", SKIP, "CDH_IGNORE_CRI is set: zips carry no pod metadata")
    from cdh.composer.cri import grpc
    from cdh.composer.cri.h2 import GrpcError

    try:
        hint = [grpc.socket_path(settings.cri_endpoint_hint)] if settings.cri_endpoint_hint else []
        sockets = ([grpc.socket_path(settings.cri_endpoint)] if settings.cri_endpoint
                   else [p for p in (*hint, *grpc.DEFAULT_SOCKETS) if os.path.exists(node.path(p))])
    except ValueError as err:
        return Check("cri", FAIL, str(err), "set CDH_CRI_ENDPOINT=unix:///run/containerd/containerd.sock")
    reasons = []
    for path in dict.fromkeys(sockets):
        client = grpc.CriClient(node.path(path), settings.cri_timeout_s)
        try:
            client.version()
            pods = len(client.list_pod_sandboxes()["items"])
        except (GrpcError, OSError) as err:
            reasons.append(f"unix://{path}: {err}")
            continue
        finally:
            client.close()
        return Check("cri", PASS, f"unix://{path} answers ({client.runtime}): {pods} pods on this node")
    crictl = check_crictl(settings, node)
    tried = "; ".join(reasons) or "no CRI socket found"
    return Check("cri", crictl.status, f"{tried}; {crictl.detail}", crictl.hint)


def check_crictl(settings: config.Settings, node: Node) -> Check:
    """The composer's fallback when no CRI socket answers."""
    refused: list[str] = []
    found = find_crictl(tuple(node.path(p) for p in settings.crictl_path), refused)
    if found is None:
        looked = ":".join(settings.crictl_path) + "".join(f"; {why}" for why in refused)
        return Check("crictl", FAIL, f"no crictl in CDH_CRICTL_PATH ({looked}): "
                     "zips will lack pod, container and image facts",
                     "set CDH_CRI_ENDPOINT to the runtime's socket, or install crictl on the node "
                     "(owned by root, writable by root only)")
    exe = found if node.root == "/" else "/" + os.path.relpath(found, node.root)
    argv = [exe]
    if os.path.isfile(node.path(ondisk.HostDir(settings.host_dir).crictl_config)):
        argv += ["-c", ondisk.HostDir(settings.host_dir).crictl_config]
    if settings.cri_endpoint:
        argv += ["-r", settings.cri_endpoint]
    try:
        proc = run_on_node(node, [*argv, "pods", "-o", "json"], {"HOME": "/"}, None, settings.cri_timeout_s)
        pods = json.loads(proc.stdout).get("items") if proc.returncode == 0 else None
    except subprocess.TimeoutExpired:
        return Check("crictl", FAIL, f"{exe} pods: no answer within {settings.cri_timeout_s:g}s",
                     "check the runtime (systemctl status containerd) and CDH_CRI_ENDPOINT")
    except (OSError, ValueError, AttributeError) as err:
        return Check("crictl", FAIL, f"{exe} pods: {err}", "check crictl and CDH_CRI_ENDPOINT")
    if pods is None:
        said = proc.stderr.decode(errors="replace").strip().splitlines()
        return Check("crictl", FAIL, f"{exe} pods: exit {proc.returncode}: {said[-1] if said else ''}",
                     "set CDH_CRI_ENDPOINT (unix:///run/containerd/containerd.sock, unix:///run/crio/crio.sock)")
    return Check("crictl", PASS, f"{exe} answers: {len(pods)} pods on this node")


def check_core_dir(settings: config.Settings, node: Node, min_free: int) -> Check:
    here = node.path(settings.core_dir)
    if not os.path.isdir(here):
        return Check("core_dir", FAIL, f"{settings.core_dir} does not exist", RESTART)
    if not os.access(here, os.W_OK):
        return Check("core_dir", FAIL, f"{settings.core_dir} is not writable", "run as root")
    vfs = os.statvfs(here)
    free = vfs.f_bavail * vfs.f_frsize
    detail = f"{settings.core_dir}: {_size(free)} free of {_size(vfs.f_blocks * vfs.f_frsize)}"
    if free < min_free:
        return Check("core_dir", FAIL, f"{detail}, under {_size(min_free)}: big cores will be cut short",
                     "free space on that filesystem, or point CDH_CORE_DIR at a larger one")
    return Check("core_dir", PASS, detail)


def _size(n: int) -> str:
    for unit, name in ((1 << 40, "TiB"), (1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")):
        if n >= unit:
            return f"{n / unit:.1f} {name}"
    return f"{n} bytes"
