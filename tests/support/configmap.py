"""A mounted ConfigMap, as the kubelet lays it out and updates it (for the agent's CDH_CONFIG_FILE)."""

from __future__ import annotations

import os


class ConfigMapVolume:
    """A directory laid out as the kubelet lays out a ConfigMap volume, updated as it does:
    a new timestamped dir, then the ``..data`` symlink renamed over."""

    def __init__(self, root, name: str = "cdh.env") -> None:
        self.root, self.name, self.n = root, name, 0
        root.mkdir()
        os.symlink(f"..data/{name}", root / name)

    @property
    def path(self) -> str:
        return str(self.root / self.name)

    def write(self, text: str) -> None:
        self.n += 1
        version = self.root / f"..2024_01_01_00_00_0{self.n}"
        version.mkdir()
        (version / self.name).write_text(text)
        os.symlink(version.name, self.root / "..data_tmp")
        os.rename(self.root / "..data_tmp", self.root / "..data")
