"""A private containerd for the tests: Debian's containerd and runc, everything under one temp dir.

Its own root, state, sockets, runc root and CNI directories (the CRI plugin on, cgroupfs driver,
the ``native`` snapshotter: no overlay mounts to leak), so it never meets a containerd the
machine may run. Settings this machine needs, found by trying:

- ``restrict_oom_score_adj``: runc may not lower oom_score_adj here (kubelet asks -998 for
  sandboxes), so it is kept at containerd's own value;
- cgroups: v1 controllers plus a unified hierarchy mounted beside them work with runc's cgroupfs
  driver; pod cgroups ``/kubepods/<qos>/pod<uid>`` (besteffort, burstable; ``/kubepods/pod<uid>`` for
  guaranteed) are made by runc and removed by :meth:`Containerd.cleanup` (kubelet's job on a real node).
- network: started in a network namespace (tests/support/netns.py), its pods get addresses of
  their own there through CNI; otherwise pods share the machine's network (NODE).

Teardown never depends on the runtime being healthy: :meth:`cleanup` kills what is left of our
shims and containers by pid (found by their command line and our pod cgroups), unmounts what is
mounted under our directory and removes the pod cgroups and the directory.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time

from cdh.composer.cri.grpc import CriClient
from cdh.composer.cri.h2 import GrpcError

CGROUP_ROOT = "/sys/fs/cgroup"
TOOLS = ("containerd", "containerd-shim-runc-v2", "runc", "ctr")
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

CONFIG = """\
version = 2
root = "{base}/root"
state = "{base}/state"

[grpc]
  address = "{base}/containerd.sock"

[ttrpc]
  address = "{base}/containerd.sock.ttrpc"

[metrics]
  address = ""

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{pause}"
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  disable_apparmor = true
  restrict_oom_score_adj = true

[plugins."io.containerd.grpc.v1.cri".containerd]
  snapshotter = "native"
  default_runtime_name = "runc"

[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"

[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
  SystemdCgroup = false
  BinaryName = "{runc}"
  Root = "{base}/runc"

[plugins."io.containerd.grpc.v1.cri".cni]
  bin_dir = "{base}/cni/bin"
  conf_dir = "{base}/cni/conf"

[plugins."io.containerd.internal.v1.opt"]
  path = "{base}/opt"
"""


def missing_tools() -> list[str]:
    found = [t for t in TOOLS if shutil.which(t, path=PATH) is None]
    return found + ([] if _is_static("/bin/busybox") else ["a static /bin/busybox (busybox-static)"])


def _is_static(path: str) -> bool:
    """An ELF executable without an interpreter (PT_INTERP): it runs alone in an image."""
    try:
        with open(path, "rb") as f:
            head = f.read(64)
            if head[:4] != b"\x7fELF" or head[4] != 2:  # 64-bit only: what Debian ships here
                return False
            phoff = int.from_bytes(head[32:40], "little")
            phentsize, phnum = int.from_bytes(head[54:56], "little"), int.from_bytes(head[56:58], "little")
            f.seek(phoff)
            table = f.read(phentsize * phnum)
    except OSError:
        return False
    return all(int.from_bytes(table[i:i + 4], "little") != 3 for i in range(0, len(table), phentsize))


class Containerd:
    def __init__(self, base: str, pause_image: str, network=None) -> None:
        """``network``: a tests.support.netns.NodeNetwork to run in (pods then get CNI addresses)."""
        self.base = base
        self.network = network
        self.sock = os.path.join(base, "containerd.sock")
        self.log_path = os.path.join(base, "containerd.log")
        self.pause_image = pause_image
        self.proc: subprocess.Popen | None = None
        self.pod_uids: set[str] = set()  # their cgroups are ours to remove
        # The shims keep their sockets in /run/containerd/s whatever the config says.
        self.made_run_dir = not os.path.exists("/run/containerd")
        for sub in ("root", "state", "runc", "cni/bin", "cni/conf", "opt"):
            os.makedirs(os.path.join(base, sub), exist_ok=True)
        with open(os.path.join(base, "config.toml"), "w") as f:
            f.write(CONFIG.format(base=base, pause=pause_image, runc=shutil.which("runc", path=PATH)))
        if network is not None:
            os.makedirs(os.path.join(base, "cni", "ipam"))
            network.cni(os.path.join(base, "cni", "bin"), os.path.join(base, "cni", "conf"),
                        os.path.join(base, "cni", "ipam"))

    @property
    def endpoint(self) -> str:
        return f"unix://{self.sock}"

    def client(self, timeout: float = 30) -> CriClient:
        return CriClient(self.sock, timeout)

    def start(self, timeout: float = 60) -> None:
        argv = ["containerd", "--config", os.path.join(self.base, "config.toml")]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                argv if self.network is None else self.network.command(argv), stdout=log,
                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
                env={"PATH": PATH, "HOME": self.base})
        client = self.client(timeout=2)
        deadline = time.monotonic() + timeout
        try:
            while True:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"containerd exited with {self.proc.returncode}:\n{self.log_tail()}")
                try:
                    client.version()
                    return
                except GrpcError:
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"containerd did not answer in {timeout}s:\n"
                                           f"{self.log_tail()}") from None
                    time.sleep(0.05)
        finally:
            client.close()

    def stop(self, timeout: float = 30) -> None:
        """SIGTERM, then SIGKILL; shims and containers live on (they do on a real node too)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def import_image(self, archive: str, repo: str) -> None:
        """As a pull leaves it: the tag and the repo@digest reference, unpacked for our snapshotter."""
        subprocess.run(["ctr", "-a", self.sock, "-n", "k8s.io", "images", "import", "--base-name", repo,
                        "--digests", "--snapshotter", "native", archive], check=True, capture_output=True,
                       env={"PATH": PATH}, timeout=120)

    def log_tail(self, n: int = 40) -> str:
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return "(no containerd log)"

    # ------------------------------------------------------------ teardown, whatever state we are in

    def cleanup(self) -> list[str]:
        """Kill what is left, unmount, remove pod cgroups and our directory. What went wrong, if anything."""
        problems = []
        self.stop()
        for pid in self._leftover_pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self._wait_gone(self._leftover_pids, 10, problems)
        for mount in self._mounts():
            done = subprocess.run(["umount", "-l", mount], capture_output=True, text=True)
            if done.returncode != 0:
                problems.append(f"umount {mount}: {done.stderr.strip()}")
        for uid in self.pod_uids:
            self._remove_pod_cgroups(uid, problems)
        shutil.rmtree(self.base, ignore_errors=True)
        if self.made_run_dir:
            for d in ("/run/containerd/s", "/run/containerd"):
                try:
                    os.rmdir(d)
                except OSError:
                    pass
        return problems

    def _leftover_pids(self) -> set[int]:
        """Our shims (their command line names our socket) and every process in our pod cgroups."""
        pids = set()
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    if self.base.encode() in f.read():
                        pids.add(int(entry))
            except OSError:
                continue
        for uid in self.pod_uids:
            for d in _pod_cgroup_dirs(uid):
                for root, _dirs, files in os.walk(d):
                    if "cgroup.procs" in files:
                        try:
                            with open(os.path.join(root, "cgroup.procs")) as f:
                                pids.update(int(p) for p in f.read().split())
                        except OSError:
                            pass
        pids.discard(os.getpid())
        return pids

    def _mounts(self) -> list[str]:
        found = []
        with open("/proc/self/mountinfo") as f:
            for line in f:
                point = line.split()[4].replace("\\040", " ")
                if point == self.base or point.startswith(self.base + "/"):
                    found.append(point)
        return sorted(found, key=len, reverse=True)

    @staticmethod
    def _wait_gone(pids_now, timeout: float, problems: list[str]) -> None:
        deadline = time.monotonic() + timeout
        while pids_now():
            if time.monotonic() > deadline:
                problems.append(f"processes still alive after SIGKILL: {sorted(pids_now())}")
                return
            time.sleep(0.05)

    @staticmethod
    def _remove_pod_cgroups(uid: str, problems: list[str]) -> None:
        for d in _pod_cgroup_dirs(uid):
            for root, dirs, _files in os.walk(d, topdown=False):
                for name in dirs:
                    _rmdir(os.path.join(root, name), problems)
            _rmdir(d, problems)
            for parent in (os.path.dirname(d), os.path.dirname(os.path.dirname(d))):  # QoS class, kubepods
                try:
                    os.rmdir(parent)
                except OSError:
                    pass  # still used by another pod of ours, or not ours


QOS_PARENTS = (("kubepods", "besteffort"), ("kubepods", "burstable"), ("kubepods",))


def _pod_cgroup_dirs(uid: str) -> list[str]:
    """Where runc made the pod's cgroups, in every hierarchy, for each QoS class a pod may have."""
    out = []
    for hierarchy in os.listdir(CGROUP_ROOT):
        for parent in QOS_PARENTS:
            d = os.path.join(CGROUP_ROOT, hierarchy, *parent, f"pod{uid}")
            if os.path.isdir(d):
                out.append(d)
    return out


def _rmdir(path: str, problems: list[str]) -> None:
    try:
        os.rmdir(path)
    except FileNotFoundError:
        pass
    except OSError as err:
        problems.append(f"rmdir {path}: {err.strerror}")
