"""What ``cdh inspect`` knows about one dump, as plain data (the ``--json`` output).

Everything is best effort: a missing or damaged entry costs that section, is
listed under ``problems``, and never hides the rest.
"""

from __future__ import annotations

import json
import os
import time

from cdh import ondisk, signals
from cdh.elfcore import PC, SP, Core, CoreError, read_core
from cdh.tools import debugger
from cdh.tools.buildid import mapped_elves
from cdh.tools.dumpzip import Dump, DumpError


def summarize(path: str, log_lines: int = 20) -> dict:
    """The summary of the dump at ``path`` (a zip, an unpacked directory, or a bare core)."""
    if _is_bare_core(path):
        return _summarize_core_file(path)
    with Dump(path) as dump:
        problems: list[str] = []
        info = _json(dump, ondisk.DUMP_INFO, problems) or {}
        out = {"source": os.path.abspath(path), "name": dump.name, "dump_info": info,
               "stack": _stack(info), "crash": _crash(info), "pod": _pod(dump, info, problems),
               "containers": _containers(dump, log_lines, problems)}
        core_entry = dump.entry(ondisk.CORE)
        if core_entry is None:
            problems.append("no core in this dump")
            out["core"] = None
        else:
            out["core"] = _core(dump, core_entry, info, problems)
        out["image"] = _image(info, out["containers"])
        core_signo = ((out["core"] or {}).get("siginfo") or {}).get("signo")
        said = ondisk.dump_int(info, "signal_number", "signal")
        if core_signo and said not in (None, core_signo):
            problems.append(f"dump-info says signal {said}, the core says {core_signo}")
        out["debug"] = _debug(out, dump, core_entry)
        out["problems"] = problems
        return out


def _is_bare_core(path: str) -> bool:
    if not os.path.isfile(path):
        return False
    with open(path, "rb") as f:
        return f.read(4) == b"\x7fELF"


def _summarize_core_file(path: str) -> dict:
    from cdh.tools.dumpzip import FileReader

    problems: list[str] = []
    reader = FileReader(path)
    try:
        core = _core_facts(reader.read_at, problems)
    finally:
        reader.close()
    core.update({"entry": None, "path": os.path.abspath(path), "size": os.path.getsize(path),
                 "compression": "file"})
    out = {"source": os.path.abspath(path), "name": os.path.basename(path), "dump_info": {},
           "stack": None, "crash": _crash({}), "pod": {}, "containers": [], "core": core, "image": None,
           "problems": problems}
    out["debug"] = _commands(out, out["source"])
    return out


def _json(dump: Dump, suffix: str, problems: list[str]):
    entry = dump.entry(suffix)
    if entry is None:
        return None
    try:
        return json.loads(dump.read_bytes(entry))
    except (ValueError, DumpError) as err:
        problems.append(f"{entry}: unreadable ({err})")
        return None


def _first(doc, *keys):
    """``doc[k1][k2]...`` through dicts, taking the first element of lists (crictl ≥1.31 arrays)."""
    for k in keys:
        if isinstance(doc, list):
            doc = doc[0] if doc else None
        if not isinstance(doc, dict):
            return None
        doc = doc.get(k)
    return doc


def _stack(info: dict) -> dict | None:
    """The composer's stack trace (dump-info ``signature``, ``top_frame``, ``stack``), or None when the
    dump has none (a composer before cdh's stack traces, or CDH_STACK_TRACE=false). A dump-info is
    read from a zip anyone who can write to the bucket may have made: every value is checked for the
    type the composer writes (cdh/ondisk.py STACK_FIELDS), and what is not that is left out."""
    stack = info.get("stack")
    if not isinstance(stack, dict):
        return None
    out = {k: v for k, v in stack.items() if k not in ("threads", "signature_frames", "errors")}
    out.update(signature=_text(info.get("signature")), top_frame=_text(info.get("top_frame")),
               signature_version=_int(stack.get("signature_version")),
               signature_frames=_texts(stack.get("signature_frames")), errors=_texts(stack.get("errors")),
               threads=[_thread(t) for t in _list(stack.get("threads")) if isinstance(t, dict)])
    return out


def _thread(t: dict) -> dict:
    frames = [_frame(f) for f in _list(t.get("frames")) if isinstance(f, dict) and _hex(f.get("pc"))]
    return {"tid": _int(t.get("tid")), "crashed": t.get("crashed") is True,
            "stopped": _text(t.get("stopped")), "frames": frames}


def _frame(f: dict) -> dict:
    return {"pc": f["pc"], "how": _text(f.get("how")), "module": _text(f.get("module")),
            "offset": f.get("offset") if _hex(f.get("offset")) else None,
            "function": _text(f.get("function")), "function_offset": _int(f.get("function_offset")),
            "signal_frame": f.get("signal_frame") is True}


def _int(v) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def _list(v) -> list:
    return v if isinstance(v, list) else []


def _text(v) -> str | None:
    return v if isinstance(v, str) else None


def _texts(v) -> list[str]:
    return [x for x in _list(v) if isinstance(x, str)]


def _hex(v) -> bool:
    """A frame's address as the composer writes it: ``0x...``, at most 64 bits."""
    return isinstance(v, str) and 3 <= len(v) <= 18 and v.startswith("0x") and all(
        c in "0123456789abcdefABCDEF" for c in v[2:])


def _crash(info: dict) -> dict:
    ts = ondisk.dump_int(info, "timestamp_s", "timestamp")
    signo = ondisk.dump_int(info, "signal_number", "signal")
    return {
        "time": _iso(ts), "timestamp": ts, "node": info.get("node_hostname"),
        "hostname": info.get("hostname"), "exe": info.get("exe"), "path": ondisk.dump_executable(info),
        "pid": ondisk.dump_int(info, "pid", "real_pid"), "host_pid": info.get("host_pid"),
        "signal": signo, "signal_name": signals.name(signo) if signo is not None else None,
        "signal_meaning": signals.meaning(signo), "cdh_version": info.get("cdh_version"),
    }


def _iso(ts) -> str | None:
    try:
        return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(float(ts)))
    except (TypeError, ValueError):
        return None


def _pod(dump: Dump, info: dict, problems: list[str]) -> dict:
    pod = _json(dump, ondisk.POD_INFO, problems) or {}
    if "items" in pod:  # the whole `crictl pods` output rather than one item
        pod = (pod["items"] or [{}])[0]
    runtime = _json(dump, ondisk.RUNTIME_INFO, problems) or {}
    created = _first(pod, "createdAt")
    return {
        "namespace": info.get("namespace") or _first(pod, "metadata", "namespace"),
        "name": info.get("podname") or _first(pod, "metadata", "name"),
        "uid": info.get("pod_uid") or _first(pod, "metadata", "uid"),
        "state": _first(pod, "state"),
        "created": _iso(int(created) / 1e9) if str(created or "").isdigit() else created,
        "labels": _first(pod, "labels") or {},
        "ip": _first(runtime, "status", "network", "ip"),
        "runtime_handler": _first(runtime, "status", "runtimeHandler"),
        "container": info.get("container"), "container_id": info.get("container_id"),
        "found_by": info.get("pod_found_by"),
    }


def _containers(dump: Dump, log_lines: int, problems: list[str]) -> list[dict]:
    out = []
    for i in dump.containers():
        image = _json(dump, ondisk.image_info_entry(i), problems) or {}
        status = _first(image, "status") or image
        out.append({
            "index": i,
            "image_id": _first(status, "id"),
            "repo_tags": _first(status, "repoTags") or [],
            "repo_digests": _first(status, "repoDigests") or [],
            "image_size": _first(status, "size"),
            "log": dump.entry(ondisk.log_entry(i)),
            "log_tail": _tail(dump, ondisk.log_entry(i), log_lines, problems),
        })
    return out


def _tail(dump: Dump, suffix: str, n: int, problems: list[str]) -> list[str]:
    entry = dump.entry(suffix)
    if entry is None or n <= 0:
        return []
    try:
        text = dump.read_bytes(entry).decode("utf-8", "replace")
    except DumpError as err:
        problems.append(f"{entry}: unreadable ({err})")
        return []
    return text.splitlines()[-n:]


def _core(dump: Dump, entry: str, info: dict, problems: list[str]) -> dict:
    out = {"entry": entry, "path": dump.local_path(entry), "size": dump.size(entry),
           "compression": dump.compression(entry), "truncated": bool(info.get("truncated")),
           "truncated_reason": info.get("truncated_reason")}
    reader = dump.reader(entry)
    try:
        out.update(_core_facts(reader.read_at, problems))
    except DumpError as err:
        problems.append(f"{entry}: {err}")
    finally:
        reader.close()
    return out


def _core_facts(read_at, problems: list[str]) -> dict:
    try:
        core = read_core(read_at)
    except CoreError as err:
        problems.append(f"core: {err}")
        return {}
    elves = mapped_elves(core, read_at)
    crashing = core.threads[0] if core.threads else None
    return {
        "machine": core.machine,
        "process": core.psinfo,
        "siginfo": _siginfo(core),
        "threads": [t.tid for t in core.threads],
        "crashing_thread": None if crashing is None else {
            "tid": crashing.tid, "signal": crashing.signal,
            "pc": f"{crashing.registers[PC[core.machine]]:#x}",
            "sp": f"{crashing.registers[SP[core.machine]]:#x}",
            "registers": {k: f"{v:#x}" for k, v in crashing.registers.items()}},
        "build_ids": [{"path": e.path, "build_id": e.build_id, "main": e.main, "base": f"{e.base:#x}"}
                      for e in elves],
        "mappings": _mappings(core),
    }


def _siginfo(core: Core) -> dict | None:
    si = core.siginfo
    if si is None:
        return None
    return {"signo": si.signo, "name": signals.name(si.signo), "meaning": signals.meaning(si.signo),
            "code": si.code, "code_meaning": signals.code_meaning(si.signo, si.code),
            "fault_address": None if si.addr is None else f"{si.addr:#x}",
            "sender_pid": si.sender_pid, "sender_uid": si.sender_uid}


def _mappings(core: Core) -> list[dict]:
    return [{"start": f"{m.start:#x}", "end": f"{m.end:#x}", "offset": f"{m.file_offset:#x}",
             "perms": core.perms_at(m.start), "path": m.path} for m in core.mappings]


def _image(info: dict, containers: list[dict]) -> dict | None:
    digests = [d for c in containers for d in c["repo_digests"]]
    ref = debugger.image_reference(info.get("image"), info.get("image_digest"), digests)
    if not ref and not info.get("image"):
        return None
    return {"image": info.get("image"), "digest": info.get("image_digest"), "reference": ref}


def _debug(out: dict, dump: Dump, core_entry: str | None) -> dict:
    core_path = (out["core"] or {}).get("path") or (
        f"{dump.name}/{core_entry}" if core_entry else f"{dump.name}/{dump.name}{ondisk.CORE}")
    cmds = _commands(out, core_path)
    if dump.root is None:
        cmds["unpack"] = f"cdh get {out['dump_info'].get('uuid') or dump.name}    # or: unzip the zip"
    return cmds


def _commands(out: dict, core_path: str) -> dict:
    core = out["core"] or {}
    main = next((b for b in core.get("build_ids", []) if b["main"]), None)
    # The mapped path is what the process really ran (container-relative); %E is the fallback.
    exe = (main or {}).get("path") or out["crash"].get("path")
    image = (out.get("image") or {}).get("reference")
    return debugger.commands(core_path, exe, image, core.get("machine", "x86_64"),
                             (main or {}).get("build_id"))
