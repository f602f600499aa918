"""Facts about the crashing process from /proc/<P>, and its container id from its cgroup.

Read first, while the kernel still holds the dying process (it waits for us
as long as we keep stdin open and core_pipe_limit > 0). ``/proc/<P>`` is opened
once as a directory and every file is read through that handle, so all the
facts come from the same process even if the pid were reused later. Reads
are bounded: a process with a huge ``maps`` costs at most MAX_BYTES of it.
"""

from __future__ import annotations

import os
import re

FILES = ("cmdline", "status", "maps", "limits", "cgroup", "auxv")
SECRET_FILES = ("environ",)  # opt-in only: it may hold credentials
# botocore's environment credentials: the agent may be given its S3 keys this way too.
# The clouds' own secret variables that cdh does not read itself (their credential chains do).
CLOUD_SECRET_NAMES = {b"AWS_SECRET_ACCESS_KEY", b"AWS_SESSION_TOKEN", b"AWS_SECURITY_TOKEN",
                      b"AZURE_CLIENT_SECRET", b"AZURE_CLIENT_CERTIFICATE_PASSWORD", b"AZURE_PASSWORD"}
MAX_BYTES = {"maps": 4 << 20}
DEFAULT_MAX_BYTES = 1 << 20


class ProcFacts:
    """The files read (name → bytes), what failed, the container id found in the cgroup, and the
    /proc/<P> directory handle while the caller keeps it (:meth:`close` closes it)."""

    __slots__ = ("container_id", "dir_fd", "errors", "files")

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.errors: list[str] = []
        self.container_id: str | None = None
        self.dir_fd: int | None = None

    def close(self) -> None:
        if self.dir_fd is not None:
            os.close(self.dir_fd)
            self.dir_fd = None


def read_facts(proc_root: str, pid: int | None, include_environ: bool, keep_open: bool = False) -> ProcFacts:
    """The facts of /proc/<pid>. ``keep_open``: the directory handle stays in ``dir_fd`` for a later
    step that needs the still-held process (the stack trace opens its code files through it)."""
    facts = ProcFacts()
    if pid is None or pid <= 0:
        facts.errors.append("proc: no host pid (-P) given")
        return facts
    names = FILES + (SECRET_FILES if include_environ else ())
    dfd, error = _open_dir(proc_root, pid)
    if dfd is None:
        facts.errors.append(error)
        return facts
    try:
        facts.files, facts.errors = _read_from(dfd, names)
    finally:
        if keep_open:
            facts.dir_fd = dfd
        else:
            os.close(dfd)
    cgroup = facts.files.get("cgroup")
    if cgroup:
        facts.container_id = container_id(cgroup.decode("utf-8", "replace"))
    return facts


def read_files(proc_root: str, pid: int, names: tuple[str, ...],
               stop_at_error: bool = False) -> tuple[dict[str, bytes], list[str]]:
    """(files, errors): ``names`` of ``/proc/<pid>``, read through one handle on the directory, each
    bounded; ``environ`` redacted. ``stop_at_error``: the first failure ends the reading (IBM's way)."""
    dfd, error = _open_dir(proc_root, pid)
    if dfd is None:
        return {}, [error]
    try:
        return _read_from(dfd, names, stop_at_error)
    finally:
        os.close(dfd)


def _open_dir(proc_root: str, pid: int) -> tuple[int | None, str]:
    try:
        return os.open(os.path.join(proc_root, str(pid)), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC), ""
    except OSError as err:
        return None, f"proc: cannot open {proc_root}/{pid}: {err.strerror}"


def _read_from(dfd: int, names: tuple[str, ...],
               stop_at_error: bool = False) -> tuple[dict[str, bytes], list[str]]:
    files: dict[str, bytes] = {}
    errors: list[str] = []
    for name in names:
        try:
            files[name] = read_bounded(name, dfd, MAX_BYTES.get(name, DEFAULT_MAX_BYTES))
        except OSError as err:
            errors.append(f"proc: cannot read {name}: {err.strerror}")
            if stop_at_error:
                break
    if "environ" in files:
        files["environ"] = redact_environ(files["environ"])
    return files, errors


def redact_environ(data: bytes) -> bytes:
    """``NAME=value`` NUL-separated, with the values of cdh's own secret settings replaced.

    The agent holds the S3 keys in its environment (a Kubernetes Secret as env): when the agent
    itself crashes with environ capture on, its keys must not travel in the zip.
    """
    from cdh.config.table import SPECS

    names = {n.encode() for s in SPECS if s.secret for n in (s.name, *(a for a, _ in s.aliases), *s.also)}
    names |= CLOUD_SECRET_NAMES
    out = []
    for item in data.split(b"\0"):
        name, eq, _ = item.partition(b"=")
        out.append(name + b"=<redacted>" if eq and name in names else item)
    return b"\0".join(out)


def read_bounded(name: str, dir_fd: int, limit: int) -> bytes:
    fd = os.open(name, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW, dir_fd=dir_fd)
    try:
        parts, total = [], 0
        while total < limit:
            chunk = os.read(fd, min(65536, limit - total))
            if not chunk:
                break
            parts.append(chunk)
            total += len(chunk)
        return b"".join(parts)
    finally:
        os.close(fd)


# ---------------------------------------------------------------- cgroup → container id
# One pattern per runtime and cgroup driver (tests/unit/test_composer_proc.py holds a real path of
# each). Each is tried against one path component, from the last component backwards: the first hit
# is the innermost container (k3d nests /docker/<node>/kubepods/...; crun adds /container under CRI-O).

_LINE = re.compile(r"^(\d+):([^:]*):(.*)$")
_HEX64 = "([0-9a-f]{64})"
_COMPONENT_PATTERNS = (
    re.compile(rf"^cri-containerd-{_HEX64}\.scope$"),     # containerd, systemd driver
    re.compile(rf"^.*:(?:cri-containerd|crio|docker):{_HEX64}$"),  # systemd-style path on cgroupfs
    re.compile(rf"^crio-{_HEX64}(?:\.scope)?$"),           # CRI-O, systemd or cgroupfs (not crio-conmon-)
    re.compile(rf"^docker-{_HEX64}\.scope$"),              # docker / cri-dockerd, systemd driver
)
_BARE = re.compile(rf"^{_HEX64}$")                         # cgroupfs: .../pod<uid>/<id>, /docker/<id>
_BARE_PARENT = re.compile(r"^(pod[0-9a-f_-]+|docker)$")


def container_id(cgroup_text: str) -> str | None:
    """The container id in ``/proc/<pid>/cgroup`` text, or None (not in a container).

    The unified (``0::``) line is preferred; v1 hierarchies are tried in order after it.
    For a pause process this is the pod sandbox id; the caller tells them apart.
    """
    paths: list[str] = []
    for line in cgroup_text.splitlines():
        m = _LINE.match(line.strip())
        if m:
            if m.group(1) == "0" and not m.group(2):
                paths.insert(0, m.group(3))
            else:
                paths.append(m.group(3))
    for path in paths:
        found = _container_id_in_path(path)
        if found:
            return found
    return None


def _container_id_in_path(path: str) -> str | None:
    parts = [p for p in path.split("/") if p]
    for i in range(len(parts) - 1, -1, -1):
        part = parts[i]
        for pattern in _COMPONENT_PATTERNS:
            m = pattern.match(part)
            if m:
                return m.group(1)
        m = _BARE.match(part)
        if m and i > 0 and _BARE_PARENT.match(parts[i - 1]):
            return m.group(1)
    return None
