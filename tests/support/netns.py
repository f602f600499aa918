"""A network namespace standing for a node's network, so pods get addresses of their own and nothing
of it touches the machine's network.

:class:`NodeNetwork` makes the namespace (``ip netns add``), a bridge in it with a /24 and the gateway
address, and the CNI configuration (Debian's containernetworking-plugins: bridge, host-local) that a
containerd started inside it (:meth:`NodeNetwork.command`, through ``nsenter --net``) uses for its pods:
each pod sandbox gets its own network namespace with an address on that bridge. Servers the pods
reach (S3, the API server) listen on the gateway address inside the namespace: a process is started
there with :meth:`command`; a socket of this process is made there by a thread that entered it
(:meth:`call`, ``setns(2)`` applies to the calling thread only). Removing the namespace removes the
bridge, its veths and every address with it.
"""

from __future__ import annotations

import concurrent.futures
import ctypes
import json
import os
import shutil
import subprocess
import uuid

CLONE_NEWNET = 0x40000000
PLUGINS_DIRS = ("/usr/lib/cni", "/opt/cni/bin")
PLUGINS = ("bridge", "host-local", "loopback")
SUBNET = "10.231.0"  # inside the namespace only: it can meet no address of the machine


def plugins_dir() -> str | None:
    return next((d for d in PLUGINS_DIRS if all(os.path.exists(os.path.join(d, p)) for p in PLUGINS)), None)


def missing() -> list[str]:
    out = [t for t in ("ip", "nsenter") if shutil.which(t) is None]
    if plugins_dir() is None:
        out.append("the CNI plugins bridge, host-local, loopback (containernetworking-plugins)")
    return out


def enter(path: str) -> None:
    """Move the calling thread into the network namespace at ``path``."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns {path}: {os.strerror(err)}")
    finally:
        os.close(fd)


class NodeNetwork:
    def __init__(self) -> None:
        self.name = "cdhn-" + uuid.uuid4().hex[:8]
        self.path = f"/run/netns/{self.name}"
        self.bridge = "cdhbr" + uuid.uuid4().hex[:6]
        self.gateway = f"{SUBNET}.1"
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None

    def create(self) -> NodeNetwork:
        subprocess.run(["ip", "netns", "add", self.name], check=True, capture_output=True)
        for cmd in (["link", "set", "lo", "up"], ["link", "add", self.bridge, "type", "bridge"],
                    ["addr", "add", f"{self.gateway}/24", "dev", self.bridge],
                    ["link", "set", self.bridge, "up"]):
            subprocess.run(["ip", "-n", self.name, *cmd], check=True, capture_output=True)
        self._pool = concurrent.futures.ThreadPoolExecutor(1, initializer=enter, initargs=(self.path,))
        return self

    def cni(self, bin_dir: str, conf_dir: str, state_dir: str) -> None:
        """Plugins linked into ``bin_dir``; a conflist for the bridge (no masquerade, no iptables)."""
        for name in PLUGINS:
            os.symlink(os.path.join(plugins_dir(), name), os.path.join(bin_dir, name))
        conf = {"cniVersion": "0.4.0", "name": self.bridge, "plugins": [{
            "type": "bridge", "bridge": self.bridge, "isGateway": True, "ipMasq": False, "hairpinMode": True,
            "ipam": {"type": "host-local", "dataDir": state_dir,
                     "ranges": [[{"subnet": f"{SUBNET}.0/24", "gateway": self.gateway}]]}}]}
        with open(os.path.join(conf_dir, "10-cdh.conflist"), "w") as f:
            json.dump(conf, f)

    def command(self, argv: list[str]) -> list[str]:
        """``argv`` run inside the namespace (network only: the mounts stay the machine's)."""
        return ["nsenter", f"--net={self.path}", "--", *argv]

    def call(self, fn, *args, **kw):
        """``fn(*args, **kw)`` on a thread that lives in the namespace (sockets it makes stay there)."""
        assert self._pool is not None
        return self._pool.submit(fn, *args, **kw).result()

    def remove(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True)
