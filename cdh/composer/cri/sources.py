"""Where runtime facts come from: the runtime's own CRI socket first, crictl when no socket answers.

:class:`Link` is what a composer run holds. It decides on first use (usually after the dying
process is released, so the gRPC modules are imported only then):

1. the CRI socket: ``CDH_CRI_ENDPOINT``, or ``CDH_CRI_ENDPOINT_HINT`` and the usual paths
   (cdh.composer.cri.grpc), the first that answers ``Version`` → :class:`GrpcSource`;
2. no socket answers (none there, refused, not a CRI v1 runtime) → :class:`CrictlSource`,
   crictl from ``CDH_CRICTL_PATH`` (with ``-r CDH_CRI_ENDPOINT`` when set);
3. a socket accepted but did not answer in time → nothing: crictl would hang on it too.

Both sources answer the same questions with the same crictl-shaped dicts and fail with the
same errors (cdh.composer.cri: :class:`CriError`, :class:`CriNotFound`, :class:`OutOfBudget`),
so cdh.composer.podmeta fills the zip one way whichever answered. Both take an optional
``budget`` (seconds this step may still spend), keep to the per-call timeout and the run's
deadline, and stop asking a runtime that timed out once: one :class:`CallBudget` each.
"""

from __future__ import annotations

import re

from cdh.composer.cri import CallBudget, CriError, CriNotFound, OutOfBudget, call_limits
from cdh.composer.cri.crictl import Crictl, find_crictl

POD_NAME_LABEL = "io.kubernetes.pod.name"  # kubelet's label on every pod sandbox
_CRICTL_OWN_LINE = re.compile(rb'time="[^"\n]*" level=(?:debug|info|warning|error) msg="[^\n]*"\n')


class Link:
    """The run's way to the container runtime, chosen on first use and then kept."""

    def __init__(self, settings, deadline: float) -> None:
        self.settings = settings
        self.deadline = deadline
        self.source: GrpcSource | CrictlSource | None = None
        self.failure: str | None = None   # why there is no source (kept: asked once per run)
        self.connect_calls = 0            # Version calls to sockets that did not become the source
        self.connect_deadline_hit = False

    @property
    def calls(self) -> int:
        return self.connect_calls + (self.source.calls if self.source else 0)

    @property
    def deadline_hit(self) -> bool:
        return self.connect_deadline_hit or bool(self.source and self.source.call_budget.deadline_hit)

    @property
    def via(self) -> str | None:
        """``cri <socket>`` or ``crictl <path>``: for dump-info and the log."""
        return self.source.via if self.source else None

    def open(self, budget: float | None = None):
        """The source, found on first use; CriError when there is none (OutOfBudget: try later)."""
        if self.source is None and self.failure is None:
            self._discover(budget)
        if self.source is None:
            raise CriError(self.failure or "no container runtime")
        return self.source

    def _discover(self, budget: float | None) -> None:
        from cdh.composer.cri import grpc  # imported only when the runtime is first asked
        from cdh.composer.cri.h2 import DEADLINE_EXCEEDED, GrpcError

        s = self.settings
        try:
            paths = grpc.candidates(s.cri_endpoint, s.cri_endpoint_hint)
        except ValueError as err:
            paths, reasons = [], [str(err)]
        else:
            reasons = [] if paths else ["no CRI socket found"]
        for path in paths:
            timeout, cut_by_budget, by_deadline = call_limits(s.cri_timeout_s, self.deadline, budget)
            if timeout <= 0:
                self._out_of_time(cut_by_budget, by_deadline, "CRI Version")
            client = grpc.CriClient(path, s.cri_timeout_s)
            try:
                client.version(timeout=timeout)
            except GrpcError as err:
                client.close()
                self.connect_calls += client.calls  # a kept client counts its own
                if err.code == DEADLINE_EXCEEDED:
                    self._out_of_time(cut_by_budget, by_deadline, f"CRI Version on {path}",
                                      hung=f"the container runtime at {path} did not answer in "
                                           f"{timeout:.1f}s: {err}")
                reasons.append(f"{path}: {err}")
                continue
            self.source = GrpcSource(client, s.cri_timeout_s, self.deadline)
            return
        refused: list[str] = []
        exe = find_crictl(s.crictl_path, refused)
        if exe is None:
            self.failure = ("no container runtime answered (" + "; ".join(reasons)
                            + ") and crictl was not found (CDH_CRICTL_PATH)"
                            + "".join(f"; {why}" for why in refused))
            return
        self.source = CrictlSource(Crictl(exe, s.host_dir, s.cri_endpoint, s.cri_timeout_s, self.deadline),
                                   s.cri_image_cmd)

    def _out_of_time(self, cut_by_budget: bool, by_deadline: bool, what: str, hung: str | None = None):
        if cut_by_budget:
            raise OutOfBudget(f"{what}: no time left in this step")
        self.connect_deadline_hit = self.connect_deadline_hit or by_deadline
        self.failure = hung if hung and not by_deadline else f"{what}: the composer's deadline was reached"
        raise CriError(self.failure)


class GrpcSource:
    """The runtime's answers over CRI gRPC (cdh.composer.cri.grpc), logs read from ``logPath``."""

    def __init__(self, client, timeout_s: float, deadline: float) -> None:
        self.client = client
        self.call_budget = CallBudget(timeout_s, deadline)
        self.statuses: dict[str, dict] = {}  # container id → inspect shape (logPath for the logs)
        self.via = f"cri unix://{client.path} ({client.runtime})"

    @property
    def calls(self) -> int:
        return self.client.calls

    def _call(self, what: str, fn, *args, budget: float | None = None):
        from cdh.composer.cri.h2 import DEADLINE_EXCEEDED, NOT_FOUND, GrpcError

        what = f"CRI {what}"
        limits = self.call_budget.start(what, budget)
        try:
            return fn(*args, timeout=limits[0])
        except GrpcError as err:
            if err.code == DEADLINE_EXCEEDED:
                raise self.call_budget.timed_out(what, limits) from None
            cls = CriNotFound if err.code == NOT_FOUND else CriError
            raise cls(f"{what}: {err}") from None

    def container(self, cid: str, budget: float | None = None) -> dict:
        if cid not in self.statuses:
            self.statuses[cid] = self._call(f"ContainerStatus {cid[:12]}", self.client.container_status, cid,
                                            budget=budget)
        return self.statuses[cid]

    def sandbox(self, pod_id: str, budget: float | None = None) -> dict:
        return self._call(f"PodSandboxStatus {pod_id[:12]}", self.client.pod_sandbox_status, pod_id,
                          budget=budget)

    def pod_listing(self, pod_id: str, budget: float | None = None) -> dict:
        item = self._call(f"ListPodSandbox {pod_id[:12]}", self.client.pod_sandbox, pod_id, budget=budget)
        return {"items": [item]}

    def pods_named(self, name: str, budget: float | None = None) -> dict:
        # The runtime filters by the label kubelet puts on every sandbox, so a node with hundreds
        # of pods answers with the few of that name (podmeta.py still keeps exact names only).
        return self._call(f"ListPodSandbox {POD_NAME_LABEL}={name}", self.client.list_pod_sandboxes,
                          {POD_NAME_LABEL: name}, budget=budget)

    def containers_with_id(self, cid: str, budget: float | None = None) -> dict:
        return self._call(f"ListContainers {cid[:12]}", self.client.list_containers, None, cid,
                          budget=budget)

    def pod_containers(self, pod_id: str) -> dict:
        return self._call(f"ListContainers {pod_id[:12]}", self.client.list_containers, pod_id)

    def image(self, ref: str) -> dict:
        return self._call(f"ImageStatus {ref}", self.client.image_status, ref)["status"]

    def log_tail(self, cid: str, lines: int, max_bytes: int) -> bytes:
        from cdh.composer.cri import logtail

        path = self.container(cid)["status"].get("logPath")
        if not path:
            raise CriError(f"container {cid[:12]} has no logPath")
        try:
            return logtail.tail(path, lines, max_bytes)[0]
        except OSError as err:
            raise CriError(f'failed to open log file "{path}": {err.strerror or err}') from None


class CrictlSource:
    """The same answers from crictl's JSON (cdh.composer.cri.crictl runs it)."""

    def __init__(self, crictl: Crictl, image_cmd: str) -> None:
        self.crictl = crictl
        self.call_budget = crictl.call_budget
        self.image_cmd = image_cmd
        self.listing: list | None = None
        self.via = f"crictl {crictl.exe}"

    @property
    def calls(self) -> int:
        return self.crictl.calls


    def container(self, cid: str, budget: float | None = None) -> dict:
        return self.crictl.json("inspect", cid, budget=budget)

    def sandbox(self, pod_id: str, budget: float | None = None) -> dict:
        return self.crictl.json("inspectp", pod_id, budget=budget)

    def pod_listing(self, pod_id: str, budget: float | None = None) -> dict:
        return self.crictl.json("pods", "--id", pod_id, "-o", "json", budget=budget)

    def pods_named(self, name: str, budget: float | None = None) -> dict:
        return self.crictl.json("pods", "--name", name, "-o", "json", budget=budget)

    def containers_with_id(self, cid: str, budget: float | None = None) -> dict:
        return self.crictl.json("ps", "-a", "--id", cid, "-o", "json", budget=budget)

    def pod_containers(self, pod_id: str) -> dict:
        return self.crictl.json("ps", "-a", "-p", pod_id, "-o", "json")

    def image(self, ref: str) -> dict:
        """``inspecti`` of the one image; when that fails, the image listing (fetched once) filtered."""
        errors = []
        try:
            status = self.crictl.json("inspecti", ref).get("status")
            if isinstance(status, dict):
                return status
            errors.append(f"crictl inspecti {ref}: no status")
        except CriError as err:
            errors.append(str(err))
        found = self._from_listing(ref, errors)
        if found is None:
            errors.append(f"image {ref!r} not found in `crictl {self.image_cmd}`")
            raise _Several(errors)
        return found

    def _from_listing(self, ref: str, errors: list[str]) -> dict | None:
        if self.listing is None:
            try:
                listed = self.crictl.json(self.image_cmd, "-o", "json")
            except CriError as err:
                errors.append(str(err))
                listed = {}
            self.listing = listed.get("images") if isinstance(listed.get("images"), list) else []
        bare = ref.split(":", 1)[1] if ref.startswith("sha256:") else ref
        for image in self.listing:
            if not isinstance(image, dict):
                continue
            iid = image.get("id") or ""
            if (iid in (ref, bare, "sha256:" + bare) or ref in (image.get("repoTags") or ())
                    or ref in (image.get("repoDigests") or ())):
                return image
        return None

    def log_tail(self, cid: str, lines: int, max_bytes: int) -> bytes:
        """The container's last lines, stdout and stderr in order, without crictl's own warnings."""
        # crictl writes the container's stderr lines to its stderr: merge to keep them in order.
        out = self.crictl.run("logs", f"--tail={lines}", cid, max_bytes=max_bytes, keep_tail=True,
                              merge_stderr=True)
        # crictl warns (default endpoints ...) while connecting, before any log line is printed.
        while True:
            m = _CRICTL_OWN_LINE.match(out)
            if not m:
                return out
            out = out[m.end():]


class _Several(CriError):
    """More than one reason, each its own metadata_errors line (``lines``)."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__(lines[-1])
        self.lines = lines
