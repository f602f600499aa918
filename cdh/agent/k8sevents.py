"""Kubernetes Events on the crashed pod: ``CoreDumpCaptured``, then ``CoreDumpUploaded``.

So a crash shows where an SRE already looks: ``kubectl describe pod`` and
``kubectl get events``. Posted to the API server with the pod's service account
(``KUBERNETES_SERVICE_HOST``/``_PORT``, the token and CA under
/var/run/secrets/kubernetes.io/serviceaccount/; the token is read again for every
request: the kubelet rotates it).

events.k8s.io/v1, not core/v1: it is the API the Kubernetes project points new
reporters at (GA since 1.19; cdh's manifests need 1.29+), and its required
fields say who reported what: ``reportingController`` cdh-agent,
``reportingInstance`` the node's agent, ``action`` Capture/Upload. Both APIs store
the same objects, so ``kubectl describe pod`` lists them like the kubelet's.
Each core gets its own Events (names derive from the dump's uuid, so a restart that
posts again gets 409 AlreadyExists, taken as done): nothing to aggregate, so RBAC
is ``create`` on ``events.k8s.io/events`` and nothing else.

Never in the upload's way: :meth:`EventPoster.post` only queues (bounded, dropping
when full); one sender task posts with a timeout. No API server (not in a cluster,
no token) disables Events with one warning; an API server that does not answer,
or refuses, costs one warning per outage and kind of refusal, then debug lines.
"""

from __future__ import annotations

import asyncio
import os
import re
import ssl
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cdh import __version__, ondisk, signals

if TYPE_CHECKING:
    import aiohttp

    from cdh.agent.log import Log

SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
TEST_SERVICE_ACCOUNT_VAR = "CDH_TEST_SERVICEACCOUNT_DIR"  # tests point it at a temp dir
API_PATH = "/apis/events.k8s.io/v1/namespaces/{namespace}/events"
CONTROLLER = "cdh-agent"
QUEUE_MAX = 256
TIMEOUT_S = 10.0
NAME_MAX, NOTE_MAX, INSTANCE_MAX = 253, 1024, 128
_NOT_DNS = re.compile(r"[^a-z0-9.-]+")


@dataclass(frozen=True)
class InCluster:
    url: str          # https://host:port
    token_path: str
    ca_path: str

    @classmethod
    def discover(cls, env: dict[str, str]) -> InCluster | str:
        """Where the API server is, or why there is none to talk to."""
        host, port = env.get("KUBERNETES_SERVICE_HOST", ""), env.get("KUBERNETES_SERVICE_PORT", "")
        if not host or not port:
            return "KUBERNETES_SERVICE_HOST/PORT are not set (not running in a pod)"
        sa_dir = env.get(TEST_SERVICE_ACCOUNT_VAR) or SERVICE_ACCOUNT_DIR
        token, ca = os.path.join(sa_dir, "token"), os.path.join(sa_dir, "ca.crt")
        for path in (token, ca):
            if not os.path.isfile(path):
                return f"{path} is missing (automountServiceAccountToken is false?)"
        return cls(f"https://{'[' + host + ']' if ':' in host else host}:{port}", token, ca)


# ---------------------------------------------------------------- the Events


def micro_time(t: float) -> str:
    """A MicroTime (RFC 3339, microseconds, UTC)."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t * 1e6) % 1000000:06d}Z"


def event_name(pod: str, uuid: str, step: str) -> str:
    """``<pod>.<uuid>.<step>``: a DNS subdomain, unique per core and step, at most 253 characters."""
    tail = f"{_dns(uuid) or 'core'}.{step}"
    head = _dns(pod)[: NAME_MAX - len(tail) - 1].strip(".-")
    return f"{head}.{tail}" if head else tail


def _dns(value: str) -> str:
    return _NOT_DNS.sub("-", str(value).lower()).strip(".-")


def crash_words(info: dict) -> str:
    sig = ondisk.dump_int(info, "signal_number", "signal")
    sig_text = f"signal {sig} ({signals.name(sig)})" if sig is not None else "an unknown signal"
    where = f" in container {info['container']}" if info.get("container") else ""
    pid = ondisk.dump_int(info, "pid", "real_pid")
    exe, pid = info.get("exe") or "a process", "?" if pid is None else pid
    return f"{exe} (pid {pid}){where} crashed with {sig_text}"


def cause_words(info: dict) -> str:
    """`` at <top frame> (signature <signature>)``: the crash's cause (README "Stack traces and
    signatures"), or nothing when the composer could not sign it."""
    sig, top = info.get("signature"), info.get("top_frame")
    if not sig:
        return ""
    return f" at {top} (signature {sig})" if top else f" (signature {sig})"


def captured(info: dict, node: str, zip_name: str, size: int, now: float) -> dict | None:
    note = (f"{crash_words(info)}{cause_words(info)}; core dump captured on node {node}: {zip_name} "
            f"({size} bytes)")
    return _event(info, node, "CoreDumpCaptured", "Capture", "Warning", note, now)


def uploaded(info: dict, node: str, url: str, kind: str, size: int, now: float) -> dict | None:
    """``kind``: the destination's (s3, gs, azblob), in the note and an annotation."""
    note = (f"Core dump uploaded to {url} ({kind}, {size} bytes); fetch it with "
            f"`cdh get {info.get('uuid', '')}`")
    event = _event(info, node, "CoreDumpUploaded", "Upload", "Normal", note, now)
    if event is not None:
        event["metadata"]["annotations"]["cdh.io/object-url"] = url
        event["metadata"]["annotations"]["cdh.io/destination-kind"] = kind
    return event


def _event(info: dict, node: str, reason: str, action: str, kind: str, note: str, now: float) -> dict | None:
    """An events.k8s.io/v1 Event regarding the crashed pod; None when the crash was not in a pod."""
    namespace, pod = info.get("namespace"), info.get("podname")
    if not namespace or not pod:
        return None
    regarding = {"apiVersion": "v1", "kind": "Pod", "namespace": namespace, "name": pod}
    if info.get("pod_uid"):
        regarding["uid"] = info["pod_uid"]
    if info.get("container"):
        regarding["fieldPath"] = f"spec.containers{{{info['container']}}}"
    uuid = str(info.get("uuid") or "")
    annotations = {"cdh.io/uuid": uuid}
    if info.get("signature"):
        annotations["cdh.io/signature"] = str(info["signature"])
    return {
        "apiVersion": "events.k8s.io/v1",
        "kind": "Event",
        "metadata": {"name": event_name(pod, uuid, reason.removeprefix("CoreDump").lower()),
                     "namespace": namespace, "annotations": annotations},
        "eventTime": micro_time(now),
        "reportingController": CONTROLLER,
        "reportingInstance": f"{CONTROLLER}-{node}"[:INSTANCE_MAX],
        "action": action,
        "reason": reason,
        "regarding": regarding,
        "note": note if len(note) <= NOTE_MAX else note[: NOTE_MAX - 3] + "...",
        "type": kind,
    }


# ---------------------------------------------------------------- posting


class EventPoster:
    def __init__(self, log: Log) -> None:
        self.log = log
        self.cluster: InCluster | None = None
        self.queue: asyncio.Queue[dict] = asyncio.Queue(QUEUE_MAX)
        self._session: aiohttp.ClientSession | None = None
        self._sender: asyncio.Task | None = None
        self._warned: set[str] = set()  # kinds of failure already warned about in this outage

    @property
    def enabled(self) -> bool:
        return self._sender is not None

    async def start(self, env: dict[str, str] | None = None) -> None:
        import aiohttp

        found = InCluster.discover(dict(os.environ if env is None else env))
        if isinstance(found, InCluster):
            try:
                context = ssl.create_default_context(cafile=found.ca_path)
            except (OSError, ssl.SSLError) as err:
                found = f"{found.ca_path} is not a usable CA bundle: {err}"
        if isinstance(found, str):
            self.log.warning("k8s_events.disabled", reason=found,
                             hint="CDH_K8S_EVENTS needs the pod's service account token and the API server")
            return
        self.cluster = found
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=context, limit=2),
            timeout=aiohttp.ClientTimeout(total=TIMEOUT_S))
        self._sender = asyncio.create_task(self._send_all(), name="k8s-events")
        self.log.info("k8s_events.enabled", api_server=found.url)

    async def stop(self) -> None:
        if self._sender is not None:
            self._sender.cancel()
            await asyncio.gather(self._sender, return_exceptions=True)
            self._sender = None
        if self._session is not None:
            await self._session.close()
            self._session = None
        left = self.queue.qsize()
        if left:
            self.log.debug("k8s_events.dropped", events=left, why="the agent is stopping")

    def post(self, event: dict) -> None:
        """Queue ``event`` (never waits: a full queue drops it and counts it)."""
        if not self.enabled:
            return
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self._result(event, "dropped", level="debug", why="queue full")

    async def _send_all(self) -> None:
        while True:
            event = await self.queue.get()
            try:
                await self._send(event)
            except asyncio.CancelledError:
                raise
            except Exception as err:  # the API server is down, slow or unreachable
                self._failed(event, "unreachable", f"{type(err).__name__}: {err}")

    async def _send(self, event: dict) -> None:
        assert self.cluster is not None and self._session is not None
        try:
            with open(self.cluster.token_path, encoding="utf-8") as f:
                token = f.read().strip()
        except OSError as err:
            self._failed(event, "no_token", f"{self.cluster.token_path}: {err.strerror}")
            return
        url = self.cluster.url + API_PATH.format(namespace=event["metadata"]["namespace"])
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json",
                   "User-Agent": f"cdh-agent/{__version__}"}
        async with self._session.post(url, json=event, headers=headers) as resp:
            if resp.status in (200, 201, 409):  # 409: posted before a restart; it is there
                self._posted(event)
                return
            body = (await resp.text())[:500]
        self._failed(event, _refusal(resp.status), f"HTTP {resp.status}: {body}")

    def _posted(self, event: dict) -> None:
        if self._warned:
            self.log.info("k8s_events.ok", after=sorted(self._warned))
            self._warned.clear()
        self._result(event, "posted", level="debug")

    def _failed(self, event: dict, kind: str, error: str) -> None:
        first = kind not in self._warned
        self._warned.add(kind)
        self._result(event, "failed", level="warning" if first else "debug", why=kind, error=error,
                     **({"then": "further failures of this kind are logged at debug until one succeeds"}
                        if first else {}))

    def _result(self, event: dict, result: str, level: str, **fields) -> None:
        meta = event["metadata"]
        self.log.emit(level, "k8s_event.result", {"reason": event["reason"], "result": result,
                                                 "namespace": meta["namespace"], "name": meta["name"],
                                                 **fields})


def _refusal(status: int) -> str:
    return {401: "unauthorized", 403: "forbidden"}.get(status, "rejected" if status < 500 else "server_error")
