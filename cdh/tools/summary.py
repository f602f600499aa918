"""What ``cdh inspect`` knows about one dump, as plain data (the ``--json`` output).

Everything is best effort: a missing or damaged entry costs that section, is
listed under ``problems``, and never hides the rest. Every JSON entry is the bucket
writer's (or a damaged upload's): each field is read through a typed accessor
(:func:`_text`, :func:`_int`, :func:`_texts`), so a list where a string belongs, an
infinite timestamp or 200,000 levels of nesting cost that field or that entry only.
"""

from __future__ import annotations

import json
import math
import os
import time

from cdh import ondisk, signals
from cdh.elfcore import PC, SP, Core, CoreError, read_core
from cdh.tools import debugger
from cdh.tools.buildid import mapped_elves
from cdh.tools.dumpzip import Dump, DumpError
from cdh.tools.fmt import has_control


def summarize(path: str, log_lines: int = 20) -> dict:
    """The summary of the dump at ``path`` (a zip, an unpacked directory, or a bare core)."""
    if _is_bare_core(path):
        return _summarize_core_file(path)
    with Dump(path) as dump:
        problems: list[str] = []
        info = _object(dump, ondisk.DUMP_INFO, problems)
        out = {"source": os.path.abspath(path), "name": dump.name, "dump_info": info,
               "stack": _stack(info), "crash": _crash(info), "pod": _pod(dump, info, problems),
               "containers": _containers(dump, log_lines, problems), "problems": problems}
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
    try:  # Infinity, NaN and 1e999 become null: --json stays JSON that jq reads
        return json.loads(dump.read_bytes(entry), parse_float=_finite, parse_constant=lambda _: None)
    except (ValueError, DumpError) as err:
        problems.append(f"{entry}: unreadable ({err})")
    except RecursionError:
        problems.append(f"{entry}: unreadable (nested too deeply)")
    return None


def _finite(text: str) -> float | None:
    v = float(text)
    return v if math.isfinite(v) else None


def _object(dump: Dump, suffix: str, problems: list[str]) -> dict:
    """A JSON entry that must be an object: {} (and a problem) when it is anything else."""
    doc = _json(dump, suffix, problems)
    if doc is not None and not isinstance(doc, dict):
        problems.append(f"{dump.entry(suffix)}: not a JSON object; ignored")
    return doc if isinstance(doc, dict) else {}


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
               signature_version=_text(stack.get("signature_version")),
               signature_frames=_texts(stack.get("signature_frames")), errors=_texts(stack.get("errors")),
               threads=[_thread(t) for t in _list(stack.get("threads")) if isinstance(t, dict)])
    return out


def _thread(t: dict) -> dict:
    frames = [_frame(f) for f in _list(t.get("frames")) if isinstance(f, dict) and _hex(f.get("pc"))]
    return _known({"tid": _int(t.get("tid")), "crashed": _bool(t.get("crashed")),
                   "stopped": _text(t.get("stopped")), "frames": frames})


def _frame(f: dict) -> dict:
    """The frame's fields of the composer's types; absent (unknown) as in dump-info when not."""
    return _known({"pc": f["pc"], "how": _text(f.get("how")), "module": _text(f.get("module")),
                   "offset": f.get("offset") if _hex(f.get("offset")) else None,
                   "function": _text(f.get("function")), "function_offset": _int(f.get("function_offset")),
                   "signal_frame": _bool(f.get("signal_frame"))})


def _known(d: dict) -> dict:
    return {k: v for k, v in d.items() if v is not None}


def _bool(v) -> bool | None:
    return v if isinstance(v, bool) else None


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
        "time": _iso(ts), "timestamp": ts, "node": _text(info.get("node_hostname")),
        "hostname": _text(info.get("hostname")), "exe": _text(info.get("exe")),
        "path": ondisk.dump_executable(info),
        "pid": ondisk.dump_int(info, "pid", "real_pid"), "host_pid": _int(info.get("host_pid")),
        "signal": signo, "signal_name": signals.name(signo) if signo is not None else None,
        "signal_meaning": signals.meaning(signo), "cdh_version": _text(info.get("cdh_version")),
    }


def _iso(ts: float | None) -> str | None:
    try:
        return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ts)) if ts is not None else None
    except (ValueError, OverflowError, OSError):  # out of time_t's range
        return None


def _pod(dump: Dump, info: dict, problems: list[str]) -> dict:
    pod = _object(dump, ondisk.POD_INFO, problems)
    if "items" in pod:  # the whole `crictl pods` output rather than one item
        items = pod["items"]
        pod = items[0] if isinstance(items, list) and items and isinstance(items[0], dict) else {}
    runtime = _object(dump, ondisk.RUNTIME_INFO, problems)
    created = _first(pod, "createdAt")
    if isinstance(created, str) and created.isascii() and created.isdigit():
        created = _iso(int(created) / 1e9) if len(created) < 30 else None
    labels = _first(pod, "labels")
    return {
        "namespace": _text(info.get("namespace")) or _text(_first(pod, "metadata", "namespace")),
        "name": _text(info.get("podname")) or _text(_first(pod, "metadata", "name")),
        "uid": _text(info.get("pod_uid")) or _text(_first(pod, "metadata", "uid")),
        "state": _text(_first(pod, "state")),
        "created": _text(created),
        "labels": {k: v for k, v in labels.items() if isinstance(v, str)} if isinstance(labels, dict) else {},
        "ip": _text(_first(runtime, "status", "network", "ip")),
        "runtime_handler": _text(_first(runtime, "status", "runtimeHandler")),
        "container": _text(info.get("container")), "container_id": _text(info.get("container_id")),
        "found_by": _text(info.get("pod_found_by")),
    }


def _containers(dump: Dump, log_lines: int, problems: list[str]) -> list[dict]:
    out = []
    for i in dump.containers():
        image = _object(dump, ondisk.image_info_entry(i), problems)
        status = _first(image, "status") or image
        size = _first(status, "size")
        out.append({
            "index": i,
            "image_id": _text(_first(status, "id")),
            "repo_tags": _texts(_first(status, "repoTags")),
            "repo_digests": _texts(_first(status, "repoDigests")),
            "image_size": size if isinstance(size, str | int) and not isinstance(size, bool) else None,
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
           "compression": dump.compression(entry), "truncated": info.get("truncated") is True,
           "truncated_reason": _text(info.get("truncated_reason"))}
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
    problems.extend(f"core: {p}" for p in core.problems)
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
    image, digest = _text(info.get("image")), _text(info.get("image_digest"))
    ref = debugger.image_reference(image, digest, digests)
    if not ref and not image:
        return None
    return {"image": image, "digest": digest, "reference": ref}


def _debug(out: dict, dump: Dump, core_entry: str | None) -> dict:
    core_path = (out["core"] or {}).get("path") or (
        f"{dump.name}/{core_entry}" if core_entry else f"{dump.name}/{dump.name}{ondisk.CORE}")
    cmds = _commands(out, core_path)
    if dump.root is None:
        cmds["unpack"] = f"cdh get {_text(out['dump_info'].get('uuid')) or dump.name}    # or: unzip the zip"
    return cmds


def _commands(out: dict, core_path: str) -> dict:
    core = out["core"] or {}
    main = next((b for b in core.get("build_ids", []) if b["main"]), None)
    # The mapped path is what the process really ran (container-relative); %E is the fallback.
    exe = (main or {}).get("path") or out["crash"].get("path")
    image = (out.get("image") or {}).get("reference")
    odd = [what for what, v in (("the executable's path", exe), ("the image name", image),
                                ("the core's path", core_path)) if has_control(v)]
    if odd:  # shown escaped: what a copy-paste runs is what is shown, and it will not find the file
        out["problems"].append(f"{' and '.join(odd)} hold control characters (shown escaped in the commands)")
    return debugger.commands(core_path, exe, image, core.get("machine", "x86_64"),
                             (main or {}).get("build_id"))
