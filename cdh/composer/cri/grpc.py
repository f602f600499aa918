"""Ask the container runtime itself: a CRI v1 client over gRPC on the runtime's unix socket.

The composer asks for one container (``ContainerStatus``, verbose: its ``info`` has the
sandbox id, pid and more), its pod (``PodSandboxStatus``, ``ListPodSandbox`` by id), the
pod's containers (``ListContainers``) and their images (``ImageStatus``). Answers are
returned shaped like crictl's JSON (``inspect``, ``inspectp``, ``pods``, ``ps``,
``inspecti``), so the zip entries read the same whichever way they were fetched, and
IBM's consumers keep working.

Finding the runtime (:func:`candidates`; cdh.composer.cri.sources asks each for ``Version``):
``CDH_CRI_ENDPOINT`` (``unix:///path`` or a path) when set, otherwise ``CDH_CRI_ENDPOINT_HINT``
(IBM's ``CRIO_ENDPOINT``) first, then each of :data:`DEFAULT_SOCKETS` that is a socket. A socket
that answers ``Unimplemented`` (docker's own containerd, CRI plugin off) is passed over.

Why hand-written: the host runtime holds only what the composer imports, and the ready-made
stacks cost far more on disk and in import time (grpcio + protobuf, or h2 + hpack + hyperframe,
which bring logging, typing and dataclasses); the README's "How the composer finds container
metadata" has the measurements.

A unary gRPC call is a small, fixed part of HTTP/2 (one stream, no push, no priorities),
HPACK decoding is checked against RFC 7541's examples and the ``hpack`` package, and the
codec against a real containerd (tests/runtime).
"""

from __future__ import annotations

import os
import stat
import time
from json import loads as _loads  # not orjson: its imports cost more than it saves (cdh.jsonline)

from cdh.composer.cri import api, protowire
from cdh.composer.cri.h2 import DEADLINE_EXCEEDED, INTERNAL, NOT_FOUND, Channel, GrpcError

# crictl's defaults first (containerd, CRI-O, cri-dockerd), then k3s; /var/run is /run on most
# hosts (the same socket is asked once), not on all.
DEFAULT_SOCKETS = (
    "/run/containerd/containerd.sock", "/run/crio/crio.sock", "/run/k3s/containerd/containerd.sock",
    "/run/cri-dockerd.sock", "/var/run/containerd/containerd.sock", "/var/run/crio/crio.sock",
    "/var/run/k3s/containerd/containerd.sock", "/var/run/cri-dockerd.sock",
)
UNSET_TIME = "0001-01-01T00:00:00Z"  # how crictl (>= 1.31) prints a zero timestamp


def socket_path(endpoint: str) -> str:
    """``unix:///run/x.sock``, ``unix:/run/x.sock`` or ``/run/x.sock`` → ``/run/x.sock``."""
    path = endpoint.strip()
    if path.startswith("unix://"):
        path = path[len("unix://"):]
    elif path.startswith("unix:"):
        path = path[len("unix:"):]
    if not path.startswith("/"):
        raise ValueError(f"CDH_CRI_ENDPOINT={endpoint!r}: only unix sockets are supported "
                         "(unix:///path/to/socket)")
    return path


def candidates(endpoint: str, hint: str = "") -> list[str]:
    """Sockets to try, in order: the configured one only (``CDH_CRI_ENDPOINT``); or the hint
    (``CDH_CRI_ENDPOINT_HINT``, IBM's CRIO_ENDPOINT) when it is a socket, then each existing
    default, each socket once."""
    if endpoint:
        return [socket_path(endpoint)]
    try:
        first = (socket_path(hint),) if hint else ()
    except ValueError:
        first = ()  # only a hint (IBM's chart sets containerd's socket everywhere): the usual ones follow
    found, seen = [], set()
    for path in (*first, *DEFAULT_SOCKETS):
        try:
            st = os.stat(path)
        except OSError:
            continue
        if stat.S_ISSOCK(st.st_mode) and (st.st_dev, st.st_ino) not in seen:
            seen.add((st.st_dev, st.st_ino))
            found.append(path)
    return found


class CriClient:
    """CRI calls on one socket, each bounded by ``timeout_s`` and the run's ``deadline``."""

    def __init__(self, path: str, timeout_s: float, deadline: float | None = None) -> None:
        self.path = path
        self.timeout_s = timeout_s
        self.deadline = deadline  # time.monotonic() after which no call starts
        self.channel = Channel(path)
        self.calls = 0
        self.runtime = ""  # "containerd 1.6.20" once Version answered

    def close(self) -> None:
        self.channel.close()

    def call(self, method: str, request: protowire.Message, body: dict, response: protowire.Message,
             timeout: float | None = None) -> dict:
        """One unary call; raises GrpcError (DeadlineExceeded when no time is left)."""
        limit = self.timeout_s if timeout is None else min(timeout, self.timeout_s)
        if self.deadline is not None:
            limit = min(limit, self.deadline - time.monotonic())
        if limit <= 0:
            raise GrpcError(DEADLINE_EXCEEDED, "no time left for this call")
        self.calls += 1
        raw = self.channel.unary(method, protowire.encode(request, body), limit)
        try:
            return protowire.decode(response, raw)
        except protowire.WireError as err:
            raise GrpcError(INTERNAL, f"{method.rsplit('/', 1)[-1]}: undecodable response: {err}") from None

    # ------------------------------------------------------------ the composer's questions

    def version(self, timeout: float | None = None) -> dict:
        out = self.call(api.RUNTIME_SERVICE + "Version", api.VersionRequest, {"version": "v1"},
                        api.VersionResponse, timeout)
        self.runtime = f"{out['runtimeName']} {out['runtimeVersion']}".strip()
        return out

    def container_status(self, container_id: str, timeout: float | None = None) -> dict:
        """``crictl inspect ID``: ``{"info": {...}, "status": {...}}``."""
        out = self.call(api.RUNTIME_SERVICE + "ContainerStatus", api.ContainerStatusRequest,
                        {"containerId": container_id, "verbose": True}, api.ContainerStatusResponse,
                        timeout)
        status = out.get("status")
        if status is None:
            raise GrpcError(NOT_FOUND, f"container {container_id!r}: the runtime gave no status")
        _rfc3339(status, "createdAt", "startedAt", "finishedAt")
        return _inspect_shape(status, out["info"])

    def pod_sandbox_status(self, pod_id: str, timeout: float | None = None) -> dict:
        """``crictl inspectp ID``: ``{"info": {...}, "status": {...}}``."""
        out = self.call(api.RUNTIME_SERVICE + "PodSandboxStatus", api.PodSandboxStatusRequest,
                        {"podSandboxId": pod_id, "verbose": True}, api.PodSandboxStatusResponse, timeout)
        status = out.get("status")
        if status is None:
            raise GrpcError(NOT_FOUND, f"pod sandbox {pod_id!r}: the runtime gave no status")
        _rfc3339(status, "createdAt")
        return _inspect_shape(status, out["info"])

    def pod_sandbox(self, pod_id: str, timeout: float | None = None) -> dict:
        """The ``crictl pods --id ID -o json`` item of exactly this pod."""
        out = self.call(api.RUNTIME_SERVICE + "ListPodSandbox", api.ListPodSandboxRequest,
                        {"filter": {"id": pod_id}}, api.ListPodSandboxResponse, timeout)
        for item in out["items"]:
            if item.get("id") == pod_id:
                return item
        raise GrpcError(NOT_FOUND, f"pod sandbox {pod_id!r} is not listed")

    def list_pod_sandboxes(self, labels: dict[str, str] | None = None, timeout: float | None = None) -> dict:
        """``crictl pods -o json`` (``--label k=v`` for ``labels``): pod sandboxes, newest first."""
        request = {"filter": {"labelSelector": labels}} if labels else {}
        out = self.call(api.RUNTIME_SERVICE + "ListPodSandbox", api.ListPodSandboxRequest, request,
                        api.ListPodSandboxResponse, timeout)
        out["items"].sort(key=lambda p: int(p.get("createdAt") or 0), reverse=True)
        return out

    def list_containers(self, pod_id: str | None, container_id: str | None = None,
                        timeout: float | None = None) -> dict:
        """``crictl ps -a -p POD -o json`` (or ``--id ID``): containers in any state, newest first."""
        wanted = {"podSandboxId": pod_id, "id": container_id}
        out = self.call(api.RUNTIME_SERVICE + "ListContainers", api.ListContainersRequest,
                        {"filter": {k: v for k, v in wanted.items() if v}}, api.ListContainersResponse,
                        timeout)
        out["containers"].sort(key=lambda c: int(c.get("createdAt") or 0), reverse=True)
        return out

    def image_status(self, image: str, timeout: float | None = None) -> dict:
        """``crictl inspecti IMAGE``: ``{"info": {...}, "status": <Image>}``."""
        out = self.call(api.IMAGE_SERVICE + "ImageStatus", api.ImageStatusRequest,
                        {"image": {"image": image}, "verbose": True}, api.ImageStatusResponse, timeout)
        if out.get("image") is None:
            raise GrpcError(NOT_FOUND, f"no such image {image!r} present")
        return _inspect_shape(out["image"], out["info"])


def _inspect_shape(status: dict, info: dict[str, str]) -> dict:
    """crictl's inspect output: ``status`` beside each verbose info entry, parsed when it is JSON.

    containerd and CRI-O put everything under one key, ``info``: ``{"info": {...}, "status": ...}``.
    """
    out: dict = {"status": status}
    for key, value in info.items():
        try:
            out[key] = _loads(value)
        except ValueError:
            out[key] = value
    return dict(sorted(out.items()))


def _rfc3339(obj: dict, *keys: str) -> None:
    """Nanoseconds since the epoch (decimal strings) → RFC 3339 with nanoseconds, as crictl prints."""
    for key in keys:
        if key in obj:
            obj[key] = rfc3339_nano(int(obj[key]))


def rfc3339_nano(ns: int) -> str:
    if ns <= 0:
        return UNSET_TIME
    seconds, frac = divmod(ns, 1_000_000_000)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    return stamp + (f".{frac:09d}".rstrip("0") if frac else "") + "Z"
