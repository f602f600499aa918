"""Zips made by the real composer (run as the kernel runs it), and small helpers the areas share."""

from __future__ import annotations

import os
from pathlib import Path

from tests.support.composer import run_composer

MiB = 1 << 20


def composer_zips(host_dir: Path, sizes: list[int], env: dict | None = None) -> list[Path]:
    """One zip per size, each from a random (incompressible) core streamed into the composer."""
    made = []
    core_dir = Path((env or {}).get("CDH_CORE_DIR", host_dir / "cores"))
    for i, size in enumerate(sizes):
        before = set(core_dir.glob("*.zip"))
        core = b"\x7fELF" + os.urandom(max(size - 4, 0))
        r = run_composer(host_dir, core=core, env={"CDH_COMPRESSION": "none", "CDH_RATE_LIMIT": "off",
                                                   **(env or {})},
                         args=[f"-e=app{i}", f"-p={100 + i}", "-P=999999", "-s=11", "-t=1718000000",
                               "-h=web-0", "-E=!usr!bin!app"])
        assert r.rc == 0, r.stderr
        (new,) = set(core_dir.glob("*.zip")) - before
        made.append(new)
    assert len({p.name for p in made}) == len(made)
    return made

