"""What the composer says about a crash besides the core, in IBM's shapes and real JSON: dump-info,
the zip's other small entries, and the event file's record.

dump-info keeps IBM's nine fields exactly as IBM's composer wrote them: strings, the kernel's
values as given (``real_pid`` "4", ``signal`` "10", ``timestamp`` "1588462466", ``path`` with the
kernel's ``!``), so a consumer written against IBM's files (a struct of strings) keeps working. What
IBM lacked follows in fields of its own, typed (ints are ints, unknown is null): cdh/ondisk.py lists
them, the contract the agent and the tools read (they read numbers with ondisk.dump_int).

The event record keeps IBM's fields and types (all strings but ``image_list`` and ``labels``),
plus podname, container, node and zip; it is one line of compact JSON, as IBM's.

The crash's stack trace comes last in dump-info (``signature``, ``top_frame``, ``stack``); the event
record carries its signature and top frame too.
"""

from __future__ import annotations

import json

from cdh import __version__, ondisk

LABEL_PREFIX = "info.coredump"


def dumps(obj: object) -> bytes:
    """Pretty JSON, with the stdlib's json: orjson's imports cost every crash (see cdh.jsonline)."""
    return (json.dumps(obj, indent=2, ensure_ascii=False, default=str) + "\n").encode()


def event_line(obj: object) -> bytes:
    """One line of compact JSON (an event file: IBM's was compact; a line per event for `cat` sidecars)."""
    return (json.dumps(obj, ensure_ascii=False, separators=(",", ":"), default=str) + "\n").encode()


def dump_info(*, uuid: str, name: str, kargs, node: str, meta, core_size: int, compression: str,
              truncated_reason: str | None, errors: list[str], trace=None) -> dict:
    """``trace``: cdh/stack/trace.py's Trace, or None (CDH_STACK_TRACE off, or it failed)."""
    given = kargs.given
    return {
        # IBM's fields, as IBM's composer wrote them: strings, as the kernel gave them
        "uuid": uuid,
        "dump_file": name + ondisk.CORE,
        "timestamp": given.get("timestamp", ""),
        "hostname": kargs.hostname,
        "exe": kargs.exe_name,
        "real_pid": given.get("pid", ""),
        "signal": given.get("signal", ""),
        "node_hostname": node,
        "path": given.get("pathname", ""),
        # cdh's
        "pid": kargs.pid,
        "signal_number": kargs.signal,
        "timestamp_s": kargs.timestamp,
        "executable": kargs.pathname,
        "host_pid": kargs.host_pid,
        "namespace": meta.namespace,
        "podname": meta.podname,
        "pod_uid": meta.pod_uid,
        "container": meta.container,
        "container_id": meta.container_id,
        "restart_count": meta.restart_count,
        "pod_id": meta.pod_id,
        "image": meta.image,
        "image_digest": meta.image_digest,
        "core_size": core_size,
        "compression": compression,
        "truncated": truncated_reason is not None,
        "truncated_reason": truncated_reason,
        "pod_found_by": meta.pod_found_by,
        "metadata_source": meta.source,
        "metadata_errors": list(dict.fromkeys(errors)),
        "cdh_version": __version__,
        # the crash's cause (README "Stack traces and signatures"): what listings group by, then the frames
        "signature": trace.signature if trace else None,
        "top_frame": trace.top_frame if trace else None,
        "stack": trace.stack if trace else None,
    }


def metadata_entries(name: str, meta, proc_files: dict[str, bytes]) -> list[tuple[str, bytes]]:
    """(entry name, bytes) for everything after the core, in IBM's order; absent facts are left out."""
    entries: list[tuple[str, bytes]] = []
    for suffix, obj in ((ondisk.POD_INFO, meta.pod_item), (ondisk.RUNTIME_INFO, meta.runtime_info),
                        (ondisk.PS_INFO, meta.ps_info)):
        if obj is not None:
            entries.append((name + suffix, dumps(obj)))
    for i, c in enumerate(meta.containers):
        if c.log is not None:
            entries.append((name + ondisk.log_entry(i), c.log))
        if c.image_info is not None:
            entries.append((name + ondisk.image_info_entry(i), dumps(c.image_info)))
        for fname, data in (c.proc or {}).items():
            entries.append((f"{name}{ondisk.container_proc_dir(i)}/{fname}", data))
    for fname, data in proc_files.items():
        entries.append((f"{name}{ondisk.PROC_DIR}/{fname}", data))
    return entries


def event_record(info: dict, kargs, meta, zip_name: str) -> dict:
    """IBM's event fields with IBM's types (strings; ``image_list`` one digest per container, ``""``
    where its image is unknown; ``namespace`` "unknown" when unknown), plus podname, container, node,
    zip, signature and top_frame (null when there is none)."""
    labels = {k: str(v) for k, v in (meta.labels or {}).items() if k.startswith(LABEL_PREFIX)}
    images = []
    for c in meta.containers:
        digests = (c.image_info or {}).get("repoDigests") or []
        images.append(str(digests[0]) if digests else "")
    given = kargs.given
    return {
        "image_list": images,
        "key": zip_name,
        "exe_path": given.get("pathname", ""),
        "labels": labels,
        "limit_size": kargs.limit_size,
        "exe_name": kargs.exe_name,
        "pid": given.get("pid", ""),
        "signal": given.get("signal", ""),
        "timestamp": given.get("timestamp", ""),
        "hostname": kargs.hostname,
        "namespace": meta.namespace or "unknown",
        "uuid": info["uuid"],
        "podname": meta.podname,
        "container": meta.container,
        "node": info["node_hostname"],
        "zip": zip_name,
        "signature": info.get("signature"),
        "top_frame": info.get("top_frame"),
    }
