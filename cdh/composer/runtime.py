"""Pod, container and image facts from the container runtime (through crictl).

Two steps:

- :func:`identify` finds the pod. With a container id from the cgroup it asks
  ``inspect <id>`` (container name, image, sandbox id; a pause process gives a
  sandbox id, so ``inspectp <id>`` is tried next) and ``pods --id <pod>`` (the
  pod item with its labels). Without one it falls back to ``pods --name
  <hostname>``: that is an unanchored regex, so only exact ``metadata.name``
  matches count, and two matches (same name, different namespaces) are
  recorded, not guessed between.
- :func:`gather` adds what only goes into the zip: ``inspectp``, ``ps -a -p``,
  and per container its log tail and image.

Every failure becomes one line in ``errors``; nothing here raises.
"""

from __future__ import annotations

import re
import time

from cdh.composer.cri import Crictl, CriError, OutOfBudget

_CRICTL_OWN_LINE = re.compile(rb'time="[^"\n]*" level=(?:debug|info|warning|error) msg="[^\n]*"\n')


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
        self.image: str | None = None
        self.image_digest: str | None = None
        self.labels: dict | None = None    # pod labels, None when not known
        self.pod_item: dict | None = None  # `pods` item (IBM pod-info.json)
        self.runtime_info: dict | None = None  # `inspectp` (IBM runtime-info.json)
        self.ps_info: dict | None = None   # `ps -a -p` (IBM ps-info.json)
        self.containers: list[ContainerFacts] = []
        self.errors: list[str] = []
        self.identified = False


class ContainerFacts:
    __slots__ = ("id", "image_info", "log")

    def __init__(self, cid: str) -> None:
        self.id = cid
        self.log: bytes | None = None
        self.image_info: dict | None = None  # the image item: id, repoTags, repoDigests, ...


def identify(cri: Crictl, meta: PodMeta, hostname: str, budget_end: float | None = None) -> bool:
    """Find the pod; False when ``budget_end`` (a monotonic time) cut it short (retry later)."""
    errors: list[str] = []

    def call(*args: str) -> dict | None:
        budget = None if budget_end is None else budget_end - time.monotonic()
        try:
            return cri.json(*args, budget=budget)
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
            _pod_item(meta, call("pods", "--id", meta.pod_id, "-o", "json"), errors)
    except OutOfBudget:
        return False
    meta.errors += errors
    meta.identified = True
    return True


def _by_container(meta: PodMeta, call, errors: list[str]) -> None:
    cid = meta.container_id
    inspected = call("inspect", cid)
    if inspected is None:
        sandbox = call("inspectp", cid)  # the pause process: the cgroup gave a sandbox id
        if sandbox is not None:
            meta.pod_id, meta.runtime_info, meta.container_id = cid, sandbox, None
            meta.pod_found_by = "cgroup"
            errors.clear()  # `inspect` not finding a sandbox id is expected, not an error
        return
    status = _dict(inspected.get("status"))
    info = _dict(inspected.get("info"))
    labels = _dict(status.get("labels"))
    meta.container = _str(_dict(status.get("metadata")).get("name")) or _str(
        labels.get("io.kubernetes.container.name"))
    meta.namespace = _str(labels.get("io.kubernetes.pod.namespace"))
    meta.podname = _str(labels.get("io.kubernetes.pod.name"))
    meta.pod_uid = _str(labels.get("io.kubernetes.pod.uid"))
    meta.image = _str(_dict(status.get("image")).get("image"))
    meta.image_digest = digest_of(_str(status.get("imageRef")))
    meta.pod_id = _str(info.get("sandboxID")) or _str(info.get("sandboxId"))
    if not meta.pod_id:
        listed = call("ps", "-a", "--id", cid, "-o", "json")
        items = _list(_dict(listed).get("containers"))
        meta.pod_id = _str(_dict(items[0]).get("podSandboxId")) if items else None
    if meta.pod_id:
        meta.pod_found_by = "cgroup"


def _by_hostname(meta: PodMeta, hostname: str, call, errors: list[str]) -> None:
    listed = call("pods", "--name", hostname, "-o", "json")
    if listed is None:
        return
    exact = [p for p in _list(listed.get("items"))
             if _str(_dict(_dict(p).get("metadata")).get("name")) == hostname]
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
            errors.append(f"crictl pods: pod {meta.pod_id} not listed")
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


def gather(cri: Crictl, meta: PodMeta, hostname: str, log_lines: int, log_max_bytes: int,
           image_cmd: str) -> None:
    """Everything else for the zip. Runs after stdin is closed: the crasher is released."""
    if not meta.identified:
        identify(cri, meta, hostname)
    if not meta.pod_id:
        return
    if meta.runtime_info is None:
        meta.runtime_info = _json(cri, meta, "inspectp", meta.pod_id)
    meta.ps_info = _json(cri, meta, "ps", "-a", "-p", meta.pod_id, "-o", "json")
    images = _ImageLookup(cri, meta, image_cmd)
    for item in _list(_dict(meta.ps_info).get("containers")):
        item = _dict(item)
        facts = ContainerFacts(_str(item.get("id")) or "")
        if facts.id and log_lines > 0 and log_max_bytes > 0:
            facts.log = _log_tail(cri, meta, facts.id, log_lines, log_max_bytes)
        ref = _str(_dict(item.get("image")).get("image")) or _str(item.get("imageRef"))
        if ref:
            facts.image_info = images.get(ref)
        if facts.id == meta.container_id and facts.image_info and not meta.image_digest:
            digests = _list(facts.image_info.get("repoDigests"))
            meta.image_digest = digest_of(_str(digests[0])) if digests else None
        meta.containers.append(facts)


def _json(cri: Crictl, meta: PodMeta, *args: str) -> dict | None:
    try:
        return cri.json(*args)
    except CriError as err:
        meta.errors.append(str(err))
        return None


def _log_tail(cri: Crictl, meta: PodMeta, cid: str, lines: int, max_bytes: int) -> bytes | None:
    """The container's last lines, stdout and stderr in order, without crictl's own warnings."""
    try:
        # crictl writes the container's stderr lines to its stderr: merge to keep them in order.
        out = cri.run("logs", f"--tail={lines}", cid, max_bytes=max_bytes, keep_tail=True,
                      merge_stderr=True)
    except CriError as err:
        meta.errors.append(str(err))
        return None
    # crictl warns (default endpoints ...) while connecting, before any log line is printed.
    while True:
        m = _CRICTL_OWN_LINE.match(out)
        if not m:
            return out
        out = out[m.end():]


class _ImageLookup:
    """``inspecti`` of one image; when that fails, the image listing (fetched once) filtered."""

    def __init__(self, cri: Crictl, meta: PodMeta, image_cmd: str) -> None:
        self.cri, self.meta, self.image_cmd = cri, meta, image_cmd
        self.listing: list | None = None

    def get(self, ref: str) -> dict | None:
        try:
            status = self.cri.json("inspecti", ref).get("status")
            if isinstance(status, dict):
                return status
            self.meta.errors.append(f"crictl inspecti {ref}: no status")
        except CriError as err:
            self.meta.errors.append(str(err))
        found = self._from_listing(ref)
        if found is None:
            self.meta.errors.append(f"image {ref!r} not found in `crictl {self.image_cmd}`")
        return found

    def _from_listing(self, ref: str) -> dict | None:
        if self.listing is None:
            self.listing = _list(_dict(_json(self.cri, self.meta, self.image_cmd, "-o", "json"))
                                 .get("images"))
        bare = ref.split(":", 1)[1] if ref.startswith("sha256:") else ref
        for image in self.listing:
            image = _dict(image)
            iid = _str(image.get("id")) or ""
            if (iid in (ref, bare, "sha256:" + bare) or ref in _list(image.get("repoTags"))
                    or ref in _list(image.get("repoDigests"))):
                return image
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
