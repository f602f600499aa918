"""``cdh inspect`` as text: the summary a developer reads before opening a debugger.

Nearly every string here came from the crashing workload (its log, argv, comm, mapped paths) or
from whoever wrote the object (dump-info, the image name): each output line passes
:func:`cdh.tools.fmt.shown` on its way out, so none of it can act on the terminal.
"""

from __future__ import annotations

from cdh.tools.fmt import human_size, shown

REGS_PER_LINE = 3


def render(s: dict, all_threads: bool = False) -> str:
    """The summary as text; the stack trace first (every thread's with ``all_threads``)."""
    lines = [f"dump   {s['name']}", f"source {s['source']}"]
    sections = (_crash, _pod, _core, _registers, _build_ids, _mappings, _logs, _debug, _problems)
    for body in (_trace(s, all_threads), *(section(s) for section in sections)):
        if body:
            lines.append("")
            lines.extend(body)
    return "\n".join(shown(line) for line in lines) + "\n"


def _trace(s: dict, all_threads: bool = False) -> list[str]:
    """First thing: the crash's cause (signature, top frame) and the crashing thread's frames."""
    st = s.get("stack")
    if not st:
        return ["Stack trace: none in this dump (made by a composer without stack traces, or with "
                "CDH_STACK_TRACE=false)"] if s.get("dump_info") else []
    sig = st.get("signature")
    frames = " | ".join(st.get("signature_frames") or [])
    out = [f"Signature {sig}  {frames}  (normal form v{st.get('signature_version')})" if sig else
           "Signature none (none of the program's own code was unwound)"]
    threads = st.get("threads") or []
    for t in threads if all_threads else threads[:1]:
        out.append(f"Thread {t.get('tid')}{', crashed' if t.get('crashed') else ''}  "
                   f"(unwound until: {t.get('stopped')})")
        out.extend(_frame_lines(t.get("frames") or []))
    if not all_threads and len(threads) > 1:
        out.append(f"  and {len(threads) - 1} other thread{'s' if len(threads) > 2 else ''}: "
                   "cdh inspect --threads, or --json")
    out.extend(f"  ! {e}" for e in st.get("errors") or [])
    return out


def _frame_lines(frames: list[dict]) -> list[str]:
    """``#n  pc  function+offset  module+offset`` (addr2line's input), aligned."""
    rows = []
    for f in frames:
        if f.get("signal_frame"):
            where = "<signal handler called>"
        elif f.get("function"):
            where = f"{f['function']}+{f.get('function_offset') or 0:#x}"
        else:
            where = "??"
        module = f.get("module")
        place = f"{module.rsplit('/', 1)[-1]}+{f['offset']}" if module and f.get("offset") else "-"
        how = "" if f.get("how") in (None, "first", "cfi") else f"  [{f.get('how')}]"
        rows.append((int(f["pc"], 16), where, place + how))
    width = min(48, max((len(w) for _, w, _ in rows), default=0))
    return [f"  #{i:<2} {pc:#018x}  {where:<{width}}  {place}" for i, (pc, where, place) in enumerate(rows)]


def _crash(s: dict) -> list[str]:
    c, core = s["crash"], s.get("core") or {}
    si = core.get("siginfo") or {}
    signo = si.get("signo") or c["signal"]  # the core's own siginfo is the authority
    out = ["Crash"]
    if c["time"]:
        out.append(f"  time      {c['time']}" + (f"   node {c['node']}" if c["node"] else ""))
    proc = core.get("process") or {}
    exe = c["path"] or c["exe"] or proc.get("fname")
    if exe:
        pids = ", ".join(p for p in (
            f"pid {c['pid']}" if c["pid"] is not None else "",
            f"host pid {c['host_pid']}" if c["host_pid"] is not None else "") if p)
        out.append(f"  process   {exe}" + (f"  ({pids})" if pids else ""))
    if proc.get("psargs"):
        out.append(f"  command   {proc['psargs']}")
    if signo is not None:
        name = si.get("name") or c["signal_name"]
        meaning = si.get("meaning") or c["signal_meaning"]
        out.append(f"  signal    {signo} {name}" + (f": {meaning}" if meaning else ""))
    if si.get("code_meaning"):
        detail = si["code_meaning"]
        if si.get("fault_address") is not None:
            detail += f", at address {si['fault_address']}"
        if si.get("sender_pid"):
            detail += f", from pid {si['sender_pid']} (uid {si['sender_uid']})"
        out.append(f"            {detail}")
    return out if len(out) > 1 else []


def _pod(s: dict) -> list[str]:
    p, image = s.get("pod") or {}, s.get("image") or {}
    out = ["Pod"]
    if p.get("name"):
        extra = ", ".join(x for x in (p.get("state") or "", f"ip {p['ip']}" if p.get("ip") else "") if x)
        out.append(f"  pod       {p.get('namespace')}/{p['name']}" + (f"  ({extra})" if extra else ""))
        if p.get("uid"):
            out.append(f"  uid       {p['uid']}")
    if p.get("container"):
        cid = (p.get("container_id") or "")[:13]
        found = f", found by {p['found_by']}" if p.get("found_by") else ""
        out.append(f"  container {p['container']}" + (f"  (id {cid}{found})" if cid else ""))
    if image.get("image"):
        out.append(f"  image     {image['image']}")
    if image.get("reference") and image["reference"] != image.get("image"):
        out.append(f"  pull      {image['reference']}")
    return out if len(out) > 1 else []


def _core(s: dict) -> list[str]:
    core = s.get("core")
    if not core:
        return []
    where = core.get("path") or core.get("entry")
    out = ["Core", f"  file      {where}  {human_size(core['size'])} ({core['compression']})"]
    if core.get("truncated"):
        out.append(f"  TRUNCATED {core.get('truncated_reason') or 'yes'}: the debugger may miss memory")
    if core.get("machine"):
        n = len(core.get("threads") or [])
        out.append(f"  machine   {core['machine']}, {n} thread{'s' if n != 1 else ''}")
    return out


def _registers(s: dict) -> list[str]:
    t = (s.get("core") or {}).get("crashing_thread")
    if not t:
        return []
    out = [f"Crashing thread {t['tid']}: pc {t['pc']}  sp {t['sp']}"]
    items = list(t["registers"].items())
    for i in range(0, len(items), REGS_PER_LINE):
        out.append("  " + "  ".join(f"{k:<8} {int(v, 16):#018x}" for k, v in items[i:i + REGS_PER_LINE]))
    return out


def _build_ids(s: dict) -> list[str]:
    ids = (s.get("core") or {}).get("build_ids") or []
    if not ids:
        return []
    paths = [shown(b["path"]) for b in ids]  # escaped before padding, so the columns line up
    width = max(map(len, paths))
    return ["Build IDs"] + [
        f"  {path:<{width}}  {b['build_id'] or '(not in the core)'}" + ("  main" if b["main"] else "")
        for path, b in zip(paths, ids, strict=True)]


def _mappings(s: dict) -> list[str]:
    maps = (s.get("core") or {}).get("mappings") or []
    if not maps:
        return []
    files: dict[str, list[dict]] = {}
    for m in maps:
        files.setdefault(m["path"], []).append(m)
    out = [f"Mapped files ({len(files)} files, {len(maps)} mappings)"]
    for path, ms in files.items():
        n = f"{len(ms)} map" + ("s" if len(ms) != 1 else "")
        out.append(f"  {ms[0]['start']}-{ms[-1]['end']}  {n:<7}  {path}")
    return out


def _logs(s: dict) -> list[str]:
    out = []
    for c in s.get("containers") or []:
        if c["log_tail"]:
            out.append(f"Log of container {c['index']} (last {len(c['log_tail'])} lines)")
            out.extend(f"  {line.expandtabs()}" for line in c["log_tail"])  # a Go trace's tabs, as spaces
    return out


def _debug(s: dict) -> list[str]:
    d = s.get("debug") or {}
    out = ["Open it"]
    if "unpack" in d:
        out.append(f"  $ {d['unpack']}")
    if "fetch" in d:
        out += ["  the executable and libraries are in the image; unpack its filesystem:",
                f"  $ {d['fetch']}", f"    or: {d['fetch_docker']}"]
    out += [f"  $ {d['gdb']}", f"  $ {d['lldb']}", "  with symbols from debuginfod (by build id):",
            f"  $ {d['debuginfod']}"]
    if "debuginfod_find" in d:
        out.append(f"  $ {d['debuginfod_find']}")
    return out


def _problems(s: dict) -> list[str]:
    return ["Problems"] + [f"  - {p}" for p in s["problems"]] if s.get("problems") else []
