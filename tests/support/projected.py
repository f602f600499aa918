"""ConfigMap, Secret and projected volumes laid out the way kubelet lays them out and updates them
(its AtomicWriter), for the agent's CDH_CONFIG_FILE and key files, and for the node test's pods.

    <volume dir>/
      ..2026_12_02_04_10_11.123456789/    the payload, a fresh timestamped directory per update (0755)
        cdh.env                           each file with its mode (defaultMode, or the item's mode)
      ..data -> ..2026_12_02_04_10_11.123456789
      cdh.env -> ..data/cdh.env           user-visible names: symlinks into ..data

An update writes a new timestamped directory, points a new ``..data_tmp`` link at it and renames
that over ``..data`` (the one atomic step a reader can see), adds links for new names, removes
links for names no longer in the payload, then removes the old timestamped directory. An
unchanged payload writes nothing (kubelet compares before writing).

:func:`payload_from` turns a ConfigMap/Secret and a volume source (``items``, ``defaultMode``,
``optional``) into the payload, as kubelet does: all keys, or only ``items`` (key → path, mode).
"""

from __future__ import annotations

import base64
import os
import shutil
import tempfile
import time

DATA = "..data"
DATA_TMP = "..data_tmp"
DEFAULT_MODE = 0o644  # defaultMode 420, the API's default for configMap, secret and projected

Payload = dict[str, tuple[bytes, int]]  # path in the volume → (content, mode)


class MissingSource(LookupError):
    """A ConfigMap/Secret (or a key of it) that the pod needs and that is not optional."""


def payload_from(obj: dict | None, source: dict, kind: str) -> Payload:
    """The payload of a configMap/secret volume source over ``obj`` (None: it does not exist)."""
    if obj is None:
        if source.get("optional"):
            return {}
        raise MissingSource(f"{kind} {source.get('name') or source.get('secretName')!r} not found and the "
                            "volume is not optional")
    if kind == "ConfigMap":
        data = {k: v.encode() for k, v in (obj.get("data") or {}).items()}
        data.update({k: base64.b64decode(v) for k, v in (obj.get("binaryData") or {}).items()})
    else:
        data = {k: base64.b64decode(v) for k, v in (obj.get("data") or {}).items()}
        data.update({k: v.encode() for k, v in (obj.get("stringData") or {}).items()})
    mode = source.get("defaultMode", DEFAULT_MODE)
    if "items" not in source:
        return {key: (value, mode) for key, value in data.items()}
    out = {}
    for item in source["items"]:
        if item["key"] not in data:
            if source.get("optional"):
                continue
            raise MissingSource(f"{kind} has no key {item['key']!r}")
        out[item["path"]] = (data[item["key"]], item.get("mode", mode))
    return out


def write(target: str, payload: Payload) -> bool:
    """Bring ``target`` to ``payload``, atomically for readers; False when nothing changed."""
    os.makedirs(target, mode=0o755, exist_ok=True)
    old = current(target)
    if old is not None and read_dir(os.path.join(target, old)) == payload:
        return False
    new = tempfile.mkdtemp(prefix=time.strftime("..%Y_%m_%d_%H_%M_%S.", time.gmtime()), dir=target)
    os.chmod(new, 0o755)
    for rel, (data, mode) in sorted(payload.items()):
        path = os.path.join(new, rel)
        os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
        os.chmod(path, mode)
    tmp_link = os.path.join(target, DATA_TMP)
    os.symlink(os.path.basename(new), tmp_link)
    os.rename(tmp_link, os.path.join(target, DATA))  # the swap readers see
    visible = {rel.split("/")[0] for rel in payload}
    for name in sorted(visible):
        link = os.path.join(target, name)
        if not os.path.lexists(link):
            os.symlink(os.path.join(DATA, name), link)
    for name in os.listdir(target):
        if not name.startswith("..") and name not in visible:
            os.unlink(os.path.join(target, name))
    if old is not None:
        shutil.rmtree(os.path.join(target, old))
    return True


def current(target: str) -> str | None:
    try:
        return os.readlink(os.path.join(target, DATA))
    except FileNotFoundError:
        return None


def read_dir(top: str) -> Payload:
    out = {}
    for root, _dirs, files in os.walk(top):
        for name in files:
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                out[os.path.relpath(path, top)] = (f.read(), os.stat(path).st_mode & 0o7777)
    return out


class Volume:
    """One mounted ConfigMap or Secret volume in a test: ``update({name: text})`` as kubelet updates it."""

    def __init__(self, root, mode: int = DEFAULT_MODE) -> None:
        self.root, self.mode = str(root), mode

    def update(self, files: dict[str, str]) -> bool:
        return write(self.root, {name: (text.encode(), self.mode) for name, text in files.items()})


class ConfigMapVolume(Volume):
    """The agent's cdh.env ConfigMap (CDH_CONFIG_FILE = :attr:`path`)."""

    def __init__(self, root, name: str = "cdh.env") -> None:
        super().__init__(root)
        self.name = name
        os.makedirs(self.root, mode=0o755)
        os.symlink(os.path.join(DATA, name), os.path.join(self.root, name))  # dangling until written

    @property
    def path(self) -> str:
        return os.path.join(self.root, self.name)

    def write(self, text: str) -> None:
        self.update({self.name: text})
