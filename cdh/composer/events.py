"""Event files: one JSON per finished zip, ``EVENT_DIR/<uuid>-event.json`` (IBM's format plus more).

Written atomically (a temp file created with O_EXCL|O_NOFOLLOW through a
handle on the directory, fsynced, renamed over the final name), so a
consumer sees a whole file or none, and a symlink planted in the directory
is never followed: rename replaces the link itself.
"""

from __future__ import annotations

import os

from cdh import fsutil, ondisk
from cdh.composer.dumpinfo import dumps

LABEL_PREFIX = "info.coredump"


def event_record(info: dict, kargs, meta, zip_name: str) -> dict:
    """IBM's event fields (strings, as IBM wrote them) plus podname, container, node and zip."""
    labels = {k: str(v) for k, v in (meta.labels or {}).items() if k.startswith(LABEL_PREFIX)}
    images = []
    for c in meta.containers:
        digests = (c.image_info or {}).get("repoDigests") or []
        if digests:
            images.append(str(digests[0]))
    return {
        "image_list": images,
        "key": zip_name,
        "exe_path": kargs.pathname,
        "labels": labels,
        "limit_size": kargs.limit_size,
        "exe_name": kargs.exe_name,
        "pid": _text(kargs.pid),
        "signal": _text(kargs.signal),
        "timestamp": _text(kargs.timestamp),
        "hostname": kargs.hostname,
        "namespace": meta.namespace,
        "uuid": info["uuid"],
        "podname": meta.podname,
        "container": meta.container,
        "node": info["node_hostname"],
        "zip": zip_name,
    }


def write_event(event_dir: str, record: dict) -> str:
    """Write the event; returns its path. Raises OSError (the caller logs it; the zip stays)."""
    fsutil.makedirs_private(event_dir)
    dfd = os.open(event_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        name = ondisk.event_file_name(record['uuid'])
        tmp = f".{name}.{os.getpid()}.{os.urandom(4).hex()}.tmp"  # unguessable: cannot be pre-planted
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o600, dir_fd=dfd)
        try:
            data = dumps(record)
            while data:
                data = data[os.write(fd, data):]
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            os.unlink(tmp, dir_fd=dfd)
            raise
        os.close(fd)
        os.rename(tmp, name, src_dir_fd=dfd, dst_dir_fd=dfd)
        os.fsync(dfd)
        return os.path.join(event_dir, name)
    finally:
        os.close(dfd)


def _text(v) -> str:
    return "" if v is None else str(v)
