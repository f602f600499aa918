"""``<name>-dump-info.json`` and the other small zip entries (IBM names, real JSON).

dump-info keeps IBM's field names (``uuid, dump_file, timestamp, hostname,
exe, real_pid, signal, node_hostname, path``) and adds what IBM lacked. Values
are typed: ints are ints, unknown is null. The agent reads ``namespace,
podname, container, signal, uuid, exe, node_hostname, timestamp``.
"""

from __future__ import annotations

import json

from cdh import __version__, ondisk


def dumps(obj: object) -> bytes:
    """Pretty JSON. stdlib json: orjson costs ~14 ms of imports per crash (see cdh.jsonline)."""
    return (json.dumps(obj, indent=2, ensure_ascii=False, default=str) + "\n").encode()


def dump_info(*, uuid: str, name: str, kargs, node: str, meta, core_size: int, compression: str,
              truncated_reason: str | None, errors: list[str]) -> dict:
    return {
        # IBM's fields
        "uuid": uuid,
        "dump_file": name + ondisk.CORE,
        "timestamp": kargs.timestamp,
        "hostname": kargs.hostname,
        "exe": kargs.exe_name,
        "real_pid": kargs.pid,
        "signal": kargs.signal,
        "node_hostname": node,
        "path": kargs.pathname,
        # cdh's
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
    for fname, data in proc_files.items():
        entries.append((f"{name}{ondisk.PROC_DIR}/{fname}", data))
    return entries
