"""Pod, container and image facts from the container runtime (its CRI socket, or crictl).

The questions are asked through cdh.composer.cri.sources, which answers with crictl-shaped
dicts whichever way it reached the runtime, so this module fills the zip one way. Two steps
(named here by the crictl command each question matches):

- :func:`identify` finds the pod. With a container id from the cgroup it asks
  ``inspect <id>`` (container name, attempt, image, sandbox id; a pause process gives a
  sandbox id, so ``inspectp <id>`` is tried next) and ``pods --id <pod>`` (the
  pod item with its labels). Without one it falls back to ``pods --name
  <hostname>``: only exact ``metadata.name`` matches count, and two matches (same
  name, different namespaces) are recorded, not guessed between.
- :func:`gather` adds what only goes into the zip: ``inspectp``, ``ps -a -p`` (running
  containers only with ``CDH_EXITED_CONTAINERS=false``, as IBM's ``ps -p``), and per
  container its log tail, its image and, with ``CDH_CONTAINER_PROC_FILES`` (IBM's
  ``COMP_INCLUDE_PROC_INFO``), its main process's /proc files (the pid ``inspect`` names).

Every failure becomes one line in ``errors``; nothing here raises.
"""

from __future__ import annotations

import time

from cdh import ondisk
from cdh.composer import proc
from cdh.composer.cri import CriError, OutOfBudget
from cdh.composer.cri.sources import POD_NAME_LABEL, Link


class PodMeta:
    """Everything learnt about the crasher's pod; None where unknown."""

    def __init__(self, container_id: str | None) -> None:
        self.container_id = container_id   # from the cgroup (a sandbox id for a pause process)
        self.pod_id: str | None = None
        self.pod_found_by = "none"         # cgroup | hostname | none
        self.namespace: str | None = None
        self.podname: str | None = None
        self.pod_uid: str | None = None
        self.container: str | None = None  # the crashing container's name
        self.restart_count: int | None = None  # its CRI attempt: kubelet's restart count
        self.image: str | None = None
        self.image_digest: str | None = None
        self.labels: dict | None = None    # pod labels, None when not known
        self.pod_item: dict | None = None  # `pods` item (IBM pod-info.json)
        self.runtime_info: dict | None = None  # `inspectp` (IBM runtime-info.json)
        self.ps_info: dict | None = None   # `ps -a -p` (IBM ps-info.json)
        self.containers: list[ContainerFacts] = []
        self.errors: list[str] = []
        self.source: str | None = None     # how the runtime was asked (sources.Link.via)
        self.identified = False


class ContainerFacts:
    __slots__ = ("id", "image_info", "log", "proc")

    def __init__(self, cid: str) -> None:
        self.id = cid
        self.log: bytes | None = None
        self.image_info: dict | None = None  # the image item: id, repoTags, repoDigests, ...
        self.proc: dict[str, bytes] | None = None  # its main process's /proc files (IBM's proc info)


def identify(link: Link, meta: PodMeta, hostname: str, budget_end: float | None = None) -> bool:
    """Find the pod; False when ``budget_end`` (a monotonic time) cut it short (retry later)."""
    errors: list[str] = []

    def call(question: str, *args: str) -> dict | None:
        budget = None if budget_end is None else budget_end - time.monotonic()
        try:
            return getattr(link.open(budget=budget), question)(*args, budget=budget)
        except OutOfBudget:
            raise
        except CriError as err:
            errors.append(str(err))
            return None

    try:
        if meta.container_id:
            _by_container(meta, call, errors)
        elif hostname:
            _by_hostname(meta, hostname, call, errors)
        if meta.pod_id and meta.pod_item is None:
            _pod_item(meta, call("pod_listing", meta.pod_id), errors)
    except OutOfBudget:
        return False
    meta.errors += errors
    meta.source = link.via
    meta.identified = True
    return True


def _by_container(meta: PodMeta, call, errors: list[str]) -> None:
    cid = meta.container_id
    inspected = call("container", cid)
    if inspected is None:
        sandbox = call("sandbox", cid)  # the pause process: the cgroup gave a sandbox id
        if sandbox is not None:
            meta.pod_id, meta.runtime_info, meta.container_id = cid, sandbox, None
            meta.pod_found_by = "cgroup"
            errors.clear()  # `inspect` not finding a sandbox id is expected, not an error
        return
    status = _dict(inspected.get("status"))
    info = _dict(inspected.get("info"))
    labels = _dict(status.get("labels"))
    metadata = _dict(status.get("metadata"))
    meta.container = _str(metadata.get("name")) or _str(labels.get("io.kubernetes.container.name"))
    attempt = metadata.get("attempt")
    meta.restart_count = attempt if isinstance(attempt, int) and not isinstance(attempt, bool) else None
    meta.namespace = _str(labels.get("io.kubernetes.pod.namespace"))
    meta.podname = _str(labels.get(POD_NAME_LABEL))
    meta.pod_uid = _str(labels.get("io.kubernetes.pod.uid"))
    meta.image = _str(_dict(status.get("image")).get("image"))
    meta.image_digest = digest_of(_str(status.get("imageRef")))
    meta.pod_id = _str(info.get("sandboxID")) or _str(info.get("sandboxId"))
    if not meta.pod_id:
        listed = call("containers_with_id", cid)
        items = _list(_dict(listed).get("containers"))
        meta.pod_id = _str(_dict(items[0]).get("podSandboxId")) if items else None
    if meta.pod_id:
        meta.pod_found_by = "cgroup"


def _by_hostname(meta: PodMeta, hostname: str, call, errors: list[str]) -> None:
    listed = call("pods_named", hostname)
    if listed is None:
        return
    exact = [p for p in _list(listed.get("items"))
             if _str(_dict(_dict(p).get("metadata")).get("name")) == hostname]
    ready = [p for p in exact if _dict(p).get("state") == "SANDBOX_READY"]
    if len(exact) > 1 and len(ready) == 1:
        exact = ready  # the pod's earlier sandboxes linger NOTREADY: the running one crashed
    if len(exact) == 1:
        meta.pod_id = _str(exact[0].get("id"))
        meta.pod_found_by = "hostname"
        _pod_item(meta, exact[0], errors)
    elif len(exact) > 1:
        spaces = sorted(str(_dict(p.get("metadata")).get("namespace")) for p in exact)
        errors.append(f"{len(exact)} pods named {hostname!r} (namespaces {', '.join(spaces)}): "
                      "not guessing which one crashed")
    else:
        errors.append(f"no pod named {hostname!r} on this node")


def _pod_item(meta: PodMeta, data: dict | None, errors: list[str]) -> None:
    if data is None:
        return
    if "items" in data:  # the `pods --id` listing: --id matches prefixes, keep the exact one
        items = [p for p in _list(data.get("items")) if _dict(p).get("id") == meta.pod_id]
        if not items:
            errors.append(f"pod {meta.pod_id} not listed by the runtime")
            return
        data = items[0]
    meta.pod_item = data
    md = _dict(data.get("metadata"))
    meta.namespace = _str(md.get("namespace")) or meta.namespace
    meta.podname = _str(md.get("name")) or meta.podname
    meta.pod_uid = _str(md.get("uid")) or meta.pod_uid
    labels = data.get("labels")
    meta.labels = labels if isinstance(labels, dict) else {}


def selector_verdict(meta: PodMeta, selector: tuple[str, str | None]) -> str:
    """``match``, ``no-match`` (positively), or ``unknown`` (labels not known: capture)."""
    if meta.labels is None:
        return "unknown"
    key, value = selector
    if key not in meta.labels or (value is not None and meta.labels[key] != value):
        return "no-match"
    return "match"


def gather(link: Link, meta: PodMeta, hostname: str, log_lines: int, log_max_bytes: int,
           running_only: bool = False, proc_root: str | None = None) -> None:
    """Everything else for the zip. Runs after stdin is closed: the crasher is released.

    ``running_only``: the running containers only (IBM's ``crictl ps`` without ``-a``);
    ``proc_root``: read each container's main process's /proc files under it (IBM's proc info).
    """
    if not meta.identified:
        identify(link, meta, hostname)
    if not meta.pod_id:
        return
    try:
        source = link.open()
    except CriError as err:
        meta.errors.append(str(err))
        return
    if meta.runtime_info is None:
        meta.runtime_info = _ask(meta, source.sandbox, meta.pod_id)
    meta.ps_info = _ask(meta, source.pod_containers, meta.pod_id)
    if running_only and meta.ps_info is not None:
        listed = _list(meta.ps_info.get("containers"))
        meta.ps_info = {**meta.ps_info, "containers": [
            c for c in listed if _dict(c).get("state") == "CONTAINER_RUNNING"]}
    images: dict[str, dict | None] = {}
    for item in _list(_dict(meta.ps_info).get("containers")):
        item = _dict(item)
        facts = ContainerFacts(_str(item.get("id")) or "")
        if facts.id and log_lines > 0 and log_max_bytes > 0:
            facts.log = _ask(meta, source.log_tail, facts.id, log_lines, log_max_bytes)
        ref = _str(_dict(item.get("image")).get("image")) or _str(item.get("imageRef"))
        if ref:
            if ref not in images:
                images[ref] = _ask(meta, source.image, ref)
            facts.image_info = images[ref]
        if facts.id == meta.container_id and facts.image_info and not meta.image_digest:
            digests = _list(facts.image_info.get("repoDigests"))
            meta.image_digest = digest_of(_str(digests[0])) if digests else None
        if proc_root is not None and facts.id:
            facts.proc = _container_proc(meta, source, facts.id, proc_root)
        meta.containers.append(facts)


def _container_proc(meta: PodMeta, source, cid: str, proc_root: str) -> dict[str, bytes] | None:
    """IBM's ``<name>-<i>-proc/``: auxv, cmdline, environ, maps, status of the pid ``inspect``
    names (the container's main process), read in that order until one fails, as IBM did."""
    inspected = _ask(meta, source.container, cid)
    pid = _dict(_dict(inspected).get("info")).get("pid")
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        meta.errors.append(f"container {cid[:12]}: the runtime named no pid: no proc files")
        return None
    files, errors = proc.read_files(proc_root, pid, ondisk.CONTAINER_PROC_FILES, stop_at_error=True)
    meta.errors += [f"container {cid[:12]}: {e}" for e in errors]
    return files


def _ask(meta: PodMeta, question, *args):
    try:
        return question(*args)
    except CriError as err:
        meta.errors += getattr(err, "lines", [str(err)])
        return None


def digest_of(ref: str | None) -> str | None:
    """``sha256:…`` from ``repo@sha256:…`` (also ``docker-pullable://repo@…``); None otherwise."""
    if ref and "@" in ref:
        return ref.rsplit("@", 1)[1] or None
    return None


def _dict(v) -> dict:
    return v if isinstance(v, dict) else {}


def _list(v) -> list:
    return v if isinstance(v, list) else []


def _str(v) -> str | None:
    return v if isinstance(v, str) and v else None
