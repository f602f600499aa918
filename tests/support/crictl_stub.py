"""A stand-in for crictl that answers like a real node (the shapes crictl >= 1.31 prints).

Installed as an executable named ``crictl`` (see tests/support/cri.py), it reads
``scenario.json`` beside itself: the node's pods, containers, images and logs,
and faults to inject. Every call is appended to ``calls.jsonl`` beside it.
Stdlib only; it runs under the composer with an almost empty environment.

Output follows crictl >= 1.31: list commands use lowerCamelCase keys with
int64 values as strings; inspect commands print ``{"info", "status"}`` with
sorted keys and 2-space indent. Errors go to stderr in the logfmt form crictl
uses on a pipe, with exit 1.

Faults (``scenario["faults"][command or "*"]``), ``mode`` one of:
``hang`` (sleep), ``slow`` (sleep ``seconds`` then answer), ``exit`` (print
``stderr``, exit ``code``), ``garbage`` (non-JSON on stdout, exit 0), ``empty``,
``huge`` (``mib`` MiB on stdout), ``truncated`` (the answer cut after ``bytes``), ``warn``
(extra warning lines, then answer).
``scenario["warn"]``: print the default-endpoint warning on every call, as an
unconfigured crictl does.
"""

import json
import os
import re
import resource
import sys
import time

HERE = os.path.dirname(os.path.realpath(__file__))
DEFAULT_ENDPOINT_WARNING = (
    "runtime connect using default endpoints: [unix:///run/containerd/containerd.sock "
    "unix:///run/crio/crio.sock unix:///var/run/cri-dockerd.sock]. As the default settings are "
    "now deprecated, you should set the endpoint instead.")
GLOBAL_WITH_VALUE = {"-c", "--config", "-r", "--runtime-endpoint", "-i", "--image-endpoint",
                     "-t", "--timeout"}
UNSET_TIME = "0001-01-01T00:00:00Z"


def logfmt(level, msg):
    ts = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return f'time="{ts}" level={level} msg="{msg}"'


def fail(msg, code=1):
    print(logfmt("fatal", msg.replace('"', '\\"')), file=sys.stderr)
    sys.exit(code)


def emit_list(obj):
    print(json.dumps(obj))


def emit_inspect(obj):
    print(json.dumps(obj, indent=2, sort_keys=True))


def split_args(argv):
    """(global flags, command, command args)."""
    flags, i = {}, 0
    while i < len(argv) and argv[i].startswith("-"):
        a = argv[i]
        if "=" in a:
            k, v = a.split("=", 1)
            flags[k] = v
            i += 1
        elif a in GLOBAL_WITH_VALUE:
            flags[a] = argv[i + 1] if i + 1 < len(argv) else ""
            i += 2
        else:
            flags[a] = True
            i += 1
    cmd = argv[i] if i < len(argv) else ""
    return flags, cmd, argv[i + 1:]


def options(args, with_value):
    """Command options: ``--x v``, ``--x=v``, ``-x v``; the rest are positionals."""
    opts, pos, i = {}, [], 0
    while i < len(args):
        a = args[i]
        if a.startswith("-") and "=" in a:
            k, v = a.split("=", 1)
            opts[k] = v
        elif a in with_value:
            opts[a] = args[i + 1] if i + 1 < len(args) else ""
            i += 1
        elif a.startswith("-"):
            opts[a] = True
        else:
            pos.append(a)
        i += 1
    return opts, pos


def by_id(items, ident):
    return [x for x in items if x["id"].startswith(ident)] if ident else []


def nano_to_rfc3339(ns):
    secs = int(ns) // 10**9
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{int(ns) % 10**9:09d}Z"


# ---------------------------------------------------------------- commands


def cmd_pods(node, args):
    opts, _ = options(args, {"--name", "--namespace", "--id", "-o", "--output", "--label"})
    items = list(node["pods"])
    if opts.get("--id"):
        items = by_id(items, opts["--id"])
    if opts.get("--name"):
        items = [p for p in items if re.search(opts["--name"], p["metadata"]["name"])]
    if opts.get("--namespace"):
        items = [p for p in items if re.search(opts["--namespace"], p["metadata"]["namespace"])]
    items.sort(key=lambda p: int(p["createdAt"]), reverse=True)
    emit_list({"items": items})


def cmd_inspectp(node, args):
    _, pos = options(args, {"-o", "--output"})
    found = by_id(node["pods"], pos[0] if pos else "")
    if not found:
        ident = pos[0] if pos else ""
        fail(f'getting the pod sandbox status for "{ident}": rpc error: code = NotFound desc = '
             f'an error occurred when try to find sandbox "{ident}": not found')
    p = found[0]
    status = {
        "annotations": p["annotations"], "createdAt": nano_to_rfc3339(p["createdAt"]), "id": p["id"],
        "labels": p["labels"],
        "linux": {"namespaces": {"options": {"ipc": "POD", "network": "POD", "pid": "CONTAINER",
                                             "targetId": ""}}},
        "metadata": p["metadata"], "network": {"additionalIps": [], "ip": "10.244.1.5"},
        "runtimeHandler": "", "state": p["state"],
    }
    info = {"image": "registry.k8s.io/pause:3.9", "pid": 4242, "processStatus": "running",
            "runtimeType": "io.containerd.runc.v2", "snapshotter": "overlayfs"}
    emit_inspect({"info": info, "status": status})


def cmd_inspect(node, args):
    _, pos = options(args, {"-o", "--output"})
    ident = pos[0] if pos else ""
    found = by_id(node["containers"], ident)
    if not found:
        if node.get("inspect_missing") == "empty":
            print("No IDs provided or nothing found per filter", file=sys.stderr)
            sys.exit(0)
        fail(f'getting the status of the container "{ident}": rpc error: code = NotFound desc = '
             f'an error occurred when try to find container "{ident}": not found')
    c = found[0]
    pod = by_id(node["pods"], c["podSandboxId"])[0]
    image = next((i for i in node["images"] if i["id"] == c["imageRef"]), None)
    repo_ref = image["repoDigests"][0] if image and image["repoDigests"] else c["imageRef"]
    tag = image["repoTags"][0] if image and image["repoTags"] else c["image"]["image"]
    status = {
        "annotations": {"io.kubernetes.container.restartCount": "0"},
        "createdAt": nano_to_rfc3339(c["createdAt"]), "startedAt": nano_to_rfc3339(c["createdAt"]),
        "finishedAt": UNSET_TIME, "exitCode": 0, "id": c["id"],
        "image": {"annotations": {}, "image": tag}, "imageId": c["imageRef"], "imageRef": repo_ref,
        "labels": c["labels"],
        "logPath": f"/var/log/pods/{pod['metadata']['namespace']}_{pod['metadata']['name']}_"
                   f"{pod['metadata']['uid']}/{c['metadata']['name']}/0.log",
        "message": "", "metadata": c["metadata"], "mounts": [], "reason": "", "state": c["state"],
    }
    pid = c.get("pid", 4243)  # the container's main process (a scenario may name it)
    info = {"config": {"metadata": {"name": c["metadata"]["name"]}}, "pid": pid, "removing": False,
            "runtimeType": "io.containerd.runc.v2", "sandboxID": c["podSandboxId"],
            "snapshotKey": c["id"], "snapshotter": "overlayfs"}
    if node.get("runtime") == "cri-o":
        info = {"pid": pid, "privileged": False, "sandboxID": c["podSandboxId"]}
    if node.get("inspect_without_sandbox"):
        info.pop("sandboxID", None)
    emit_inspect({"info": info, "status": status})


def cmd_ps(node, args):
    opts, _ = options(args, {"-p", "--pod", "--id", "-o", "--output", "--name", "--label"})
    items = list(node["containers"])
    if not (opts.get("-a") or opts.get("--all")):
        items = [c for c in items if c["state"] == "CONTAINER_RUNNING"]
    pod = opts.get("-p") or opts.get("--pod")
    if pod:
        items = [c for c in items if c["podSandboxId"].startswith(pod)]
    if opts.get("--id"):
        items = by_id(items, opts["--id"])
    items.sort(key=lambda c: int(c["createdAt"]), reverse=True)
    emit_list({"containers": items})


def cmd_logs(node, args):
    opts, pos = options(args, {"--tail", "--since", "--limit-bytes"})
    ident = pos[0] if pos else ""
    found = by_id(node["containers"], ident)
    if not found:
        fail(f'rpc error: code = NotFound desc = an error occurred when try to find container '
             f'"{ident}": not found')
    lines = node["logs"].get(found[0]["id"], [])  # [stream, text]
    if opts.get("--tail") not in (None, True):
        n = int(opts["--tail"])
        lines = lines[-n:] if n >= 0 else lines
    for stream, text in lines:
        out = sys.stdout if stream == "stdout" else sys.stderr
        out.write(text + "\n")
        out.flush()


def find_image(node, ref):
    for i in node["images"]:
        if ref in (i["id"], i["id"].split(":")[-1]) or ref in i["repoTags"] or ref in i["repoDigests"]:
            return i
    return None


def cmd_inspecti(node, args):
    _, pos = options(args, {"-o", "--output"})
    ref = pos[0] if pos else ""
    image = find_image(node, ref)
    if image is None:
        fail(f'no such image "{ref}" present')
    emit_inspect({"info": {"imageSpec": {"config": {"Env": ["PATH=/usr/bin"]}}}, "status": image})


def cmd_images(node, args):
    emit_list({"images": node["images"]})


COMMANDS = {"pods": cmd_pods, "inspectp": cmd_inspectp, "inspect": cmd_inspect, "ps": cmd_ps,
            "logs": cmd_logs, "inspecti": cmd_inspecti, "images": cmd_images, "img": cmd_images}


def apply_fault(fault):
    """Run a fault; returns only when the normal answer should follow."""
    mode = fault.get("mode")
    if mode == "hang":
        time.sleep(3600)
    elif mode == "slow":
        time.sleep(float(fault.get("seconds", 1)))
    elif mode == "exit":
        print(fault.get("stderr", logfmt("fatal", "rpc error: code = Unavailable desc = connection "
                                          "error")), file=sys.stderr)
        sys.exit(int(fault.get("code", 1)))
    elif mode == "garbage":
        print("\x00\x01 this is not json {{{ " + fault.get("text", ""))
        sys.exit(0)
    elif mode == "empty":
        sys.exit(0)
    elif mode == "huge":
        chunk = "[" * 65536
        for _ in range(int(fault.get("mib", 64)) * 16):
            sys.stdout.write(chunk)
        sys.exit(0)
    elif mode == "truncated":  # the answer cut after ``bytes`` bytes, exit 0 (a crictl killed mid-write)
        import atexit
        import io

        real, sys.stdout = sys.stdout, io.StringIO()
        atexit.register(lambda: real.write(sys.stdout.getvalue()[:int(fault.get("bytes", 100))]))
    elif mode == "warn":
        for _ in range(int(fault.get("lines", 3))):
            print(logfmt("warning", "something odd but harmless"), file=sys.stderr)


def main(argv):
    with open(os.path.join(HERE, "scenario.json")) as f:
        node = json.load(f)
    flags, cmd, args = split_args(argv)
    with open(os.path.join(HERE, "calls.jsonl"), "a") as f:
        f.write(json.dumps({"argv": argv, "cmd": cmd, "flags": flags, "env": dict(os.environ),
                            "rlimit_core": resource.getrlimit(resource.RLIMIT_CORE),
                            "stdin": os.readlink("/proc/self/fd/0")}) + "\n")
    if node.get("warn"):
        print(logfmt("warning", DEFAULT_ENDPOINT_WARNING), file=sys.stderr)
    faults = node.get("faults", {})
    for key in (cmd, "*"):
        if key in faults:
            apply_fault(faults[key])
            break
    if cmd not in COMMANDS:
        fail(f'No help topic for \'{cmd}\'')
    COMMANDS[cmd](node, args)


if __name__ == "__main__":
    main(sys.argv[1:])
