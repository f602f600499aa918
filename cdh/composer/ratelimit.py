"""Flood control: at most N cores per container in a sliding window (``CDH_RATE_LIMIT``, e.g. 5/10m).

A crash-looping pod must not fill the node. The decision is made before the core is streamed, from
facts the composer already has (no runtime call while the crasher is held):

- the container: the pod UID in the crasher's cgroup path, which stays the same when the kubelet
  restarts a crash-looping container (its container id does not), plus the executable's path, so
  two programs of one pod are counted apart; a container id when the cgroup names no pod (plain
  docker); the executable's path for a process outside any container.
- the state: ``HOST_DIR/ratelimit.json``, ``{key: [capture times]}``, read and rewritten under an
  exclusive flock (up to core_pipe_limit composers run at once), 0600, bounded to MAX_KEYS keys.

Only captures are recorded, so a skipped crash never extends the wait. Anything unreadable (a
corrupt state file, no HOST_DIR on a manual run) captures: when in doubt, keep the core.
Apport does the same with a function that returns a reason or None; so does :func:`check`.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import time

from cdh import fsutil, ondisk

MAX_KEYS = 1000
MAX_KEY_CHARS = 300
_POD_UID = re.compile(r"pod([0-9a-f]{8}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{12}"
                      r"|[0-9a-f]{32})(?:\.slice)?$")


def key_for(cgroup_text: str, container_id: str | None, pathname: str, exe_name: str) -> str:
    """What the limit counts by (see the module docstring)."""
    program = pathname or exe_name or "?"
    uid = pod_uid(cgroup_text)
    if uid:
        key = f"pod:{uid}:{program}"
    elif container_id:
        key = f"container:{container_id}:{program}"
    else:
        key = f"host:{program}"
    return key[:MAX_KEY_CHARS]


def pod_uid(cgroup_text: str) -> str | None:
    """The pod UID in a kubelet cgroup path (``…pod<uid>.slice/…`` or ``…/pod<uid>/…``), or None."""
    for line in cgroup_text.splitlines():
        path = line.split(":", 2)[-1]
        for part in reversed(path.split("/")):
            m = _POD_UID.search(part)
            if m:
                return m.group(1).replace("_", "-")
    return None


def check(host_dir: str | None, key: str, limit: tuple[int, float] | None,
          now: float | None = None) -> str | None:
    """Record a capture for ``key`` and return None, or return why the crash is skipped."""
    if limit is None or not host_dir:
        return None
    count, window = limit
    now = time.time() if now is None else now
    try:  # HOST_DIR checked, the file regular and ours (cdh/fsutil.py): else no state, and a capture
        dfd = fsutil.open_dir(host_dir)
    except OSError:
        return None
    try:
        fd = fsutil.open_regular(ondisk.RATE_LIMIT_STATE, os.O_RDWR | os.O_CREAT, dir_fd=dfd)
    except OSError:
        return None
    finally:
        os.close(dfd)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        state = _prune(_read(fd), now, window)
        recent = state.get(key, [])
        if len(recent) >= count:
            return (f"{len(recent)} cores of this container in the last {_span(window)} "
                    f"(CDH_RATE_LIMIT {count}/{_span(window)})")
        state[key] = [*recent, now]
        _write(fd, state)
        return None
    except OSError:
        return None
    finally:
        os.close(fd)  # releases the lock


def _read(fd: int) -> dict:
    chunks = []
    while chunk := os.pread(fd, 1 << 16, sum(map(len, chunks))):
        chunks.append(chunk)
    try:
        state = json.loads(b"".join(chunks) or b"{}")
    except ValueError:
        return {}  # corrupt (a composer killed mid-write): start over
    return state if isinstance(state, dict) else {}


def _prune(state: dict, now: float, window: float) -> dict:
    kept = {}
    for key, times in state.items():
        if isinstance(times, list):
            recent = [t for t in times if isinstance(t, int | float) and now - window < t <= now]
            if recent:
                kept[key] = recent
    return kept


def _write(fd: int, state: dict) -> None:
    if len(state) > MAX_KEYS:  # keep the keys seen most recently
        state = {k: state[k] for k in sorted(state, key=lambda k: state[k][-1], reverse=True)[:MAX_KEYS]}
    data = json.dumps(state, separators=(",", ":")).encode()
    os.ftruncate(fd, 0)
    view = memoryview(data)
    offset = 0
    while offset < len(data):
        offset += os.pwrite(fd, view[offset:], offset)
    os.fchmod(fd, 0o600)


def _span(seconds: float) -> str:
    for unit, size in (("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"
