"""`nox -s demo`: cdh end to end on this machine, the way a node runs it.

1. builds the zipapp and the bundled runtime (the scripts the Containerfile runs),
2. starts a local S3 server (moto_server) and a temporary HOST_DIR,
3. starts `cdh agent` on that runtime, as the DaemonSet's container does: it installs
   the composer into HOST_DIR and points kernel.core_pattern at it,
4. crashes a real process (SIGSEGV): the kernel pipes its core to the composer,
5. waits for the object in the bucket and the local zip to be gone,
6. shows it with `cdh ls`, `cdh get` and `cdh inspect`,
7. stops the agent (SIGTERM), which restores the previous core_pattern.

Needs root on Linux for the kernel part; without it, step 4 pipes a generated core
into the composer by hand instead (the rest is the same). Nothing outside the
temporary directory is changed, except core_pattern for the demo's duration.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from tests.support import kernel as kernel_support  # noqa: E402
from tests.support.agentproc import Proc, fake_sysctl_root, wait_until  # noqa: E402
from tests.support.s3server import S3Server, list_keys  # noqa: E402


def say(step: str, text: str = "") -> None:
    print(f"\n\033[1m== {step}\033[0m" if sys.stdout.isatty() else f"\n== {step}", flush=True)
    if text:
        print(text, flush=True)


def run(*cmd: str, env: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, env=env, check=check, capture_output=True, text=True)


def build(work: str) -> tuple[str, str]:
    say("1. Build the zipapp and the self-contained runtime (packaging/zipapp.py, packaging/pyruntime.py)")
    pyz, runtime = os.path.join(work, "build", "cdh.pyz"), os.path.join(work, "build", "runtime")
    run(sys.executable, os.path.join(REPO, "packaging", "zipapp.py"), "-o", pyz)
    print(run(sys.executable, os.path.join(REPO, "packaging", "pyruntime.py"), "--pyz", pyz,
              "--out", runtime).stdout.strip())
    # The image's entrypoint: the zipapp whose first line names the runtime's loader and python.
    entry = os.path.join(work, "build", "entry.pyz")
    subprocess.run([f"{runtime}/lib/ld.so", f"{runtime}/bin/python3", "-m", "cdh.agent.pyruntime",
                    runtime, entry], check=True, env={}, cwd="/")
    return entry, runtime


def agent_env(host_dir: str, s3: S3Server, bucket: str, fake_sysctl: str | None) -> dict:
    env = {"PATH": "/usr/bin:/bin", "CDH_HOST_DIR": host_dir, "CDH_NODE_NAME": "demo-node",
           "CDH_UNINSTALL_ON_STOP": "true", "CDH_METRICS_PORT": "0", "CDH_S3_KEY_PREFIX": "{node}/",
           "AWS_EC2_METADATA_DISABLED": "true", **s3.agent_env(bucket)}
    if fake_sysctl:
        env["CDH_TEST_SYSCTL_ROOT"] = fake_sysctl
    return env


def crash(host_dir: str, kernel: bool) -> None:
    if kernel:
        say("4. Crash a real process",
            "sleep 600 & kill -SEGV $!   (the kernel pipes its core into HOST_DIR/cdc)")
        victim = subprocess.Popen(["sleep", "600"])
        # Asleep (in nanosleep), not still in the dynamic loader: the trace then runs through libc to main.
        wait_until(lambda: _comm(victim.pid) == "sleep" and _state(victim.pid) == "S", 10, "sleep to sleep")
        victim.send_signal(signal.SIGSEGV)
        status = victim.wait()
        print(f"pid {victim.pid} ended with {signal.Signals(-status).name}")
        return
    say("4. No root here: pipe a generated core into the installed composer by hand")
    core = os.urandom(1 << 20) + bytes(4 << 20)
    cdc = os.path.join(host_dir, "cdc")
    subprocess.run([cdc, "-c=0", "-e=demo", "-p=1", "-P=1", "-s=11", f"-t={int(time.time())}",
                    "-h=demo", "-E=!demo"], input=core, check=True, env={}, cwd="/")
    print(f"{len(core)} bytes piped into {cdc}")


def _state(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return ""


def _comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return ""


def show(entry: str, env: dict, work: str) -> None:
    cdh = [entry]
    say("6. What a developer sees", "$ cdh ls")
    print(run(*cdh, "ls", env=env).stdout.rstrip())
    got = run(*cdh, "get", _newest_uuid(entry, env), "-o", os.path.join(work, "download"), env=env)
    print("\n$ cdh get <uuid> -o download/\n" + got.stdout.rstrip())
    unpacked = next(os.scandir(os.path.join(work, "download"))).path
    print("\n$ cdh inspect download/<name>\n" + run(*cdh, "inspect", unpacked, env=env).stdout.rstrip())


def _newest_uuid(entry: str, env: dict) -> str:
    import json

    return json.loads(run(entry, "ls", "--json", env=env).stdout)[0]["uuid"]


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = ap.parse_args(argv)
    why = kernel_support.unavailable()
    if why:
        print(f"note: the real kernel cannot be used here ({why}): the crash is simulated")
    with contextlib.ExitStack() as stack:
        saved = None if why else stack.enter_context(kernel_support.exclusive())
        work = tempfile.mkdtemp(prefix="cdh-demo-")
        if not args.keep:
            stack.callback(shutil.rmtree, work, True)
        return demo(work, saved, stack)


def demo(work: str, saved: dict | None, stack: contextlib.ExitStack) -> int:
    kernel = saved is not None
    entry, _runtime = build(work)
    say("2. A local S3 server and a temporary HOST_DIR")
    s3 = S3Server(os.path.join(work, "moto.log")).start()
    stack.callback(s3.stop)
    bucket = s3.create_bucket("cdh-demo")
    host_dir = os.path.join(work, "host")
    print(f"S3 endpoint {s3.url}, bucket {bucket}; HOST_DIR {host_dir}")
    sysctl_root = "/proc/sys" if kernel else fake_sysctl_root(os.path.join(work, "proc-sys"))
    env = agent_env(host_dir, s3, bucket, None if kernel else sysctl_root)
    say("3. Start the agent (as the DaemonSet's container runs it)", f"$ {entry} agent")
    agent = Proc(["agent"], env, os.path.join(work, "agent.log"), command=[entry])
    stack.callback(agent.stop)
    agent.wait_event("agent.started", timeout=60)
    print(f"kernel.core_pattern = {_read(sysctl_root, 'kernel/core_pattern')}")
    crash(host_dir, kernel)
    say("5. The agent uploads the zip, verifies the object, then deletes the local copy")
    done = agent.wait_event("upload.done", timeout=120)[0]
    wait_until(lambda: not any(n.endswith(".zip") for n in os.listdir(os.path.join(host_dir, "cores"))),
               30, "the local zip to be deleted")
    print(f"s3://{bucket}/{done['key']}  ({done['bytes']} bytes, verified)")
    print(f"objects in the bucket: {list_keys(s3.client(), bucket)}")
    show(entry, env, work)
    say("7. Stop the agent: SIGTERM restores the node")
    agent.signal(signal.SIGTERM)
    code = agent.wait(60)
    after = _read(sysctl_root, "kernel/core_pattern")
    print(f"agent exited {code}; kernel.core_pattern = {after}")
    ok = code == 0 and (not kernel or after == saved["kernel/core_pattern"])
    say("Done: crash → zip → verified object → ls/get/inspect, node restored" if ok else "FAILED")
    return 0 if ok else 1


def _read(root: str, name: str) -> str:
    with open(os.path.join(root, name)) as f:
        return f.read().strip()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
