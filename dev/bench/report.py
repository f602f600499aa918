"""Figures: our number, the peer's number from the same run, their ratio, and the goal.

Printed as a table; ``--json FILE`` writes the same figures with every sample,
the machine and the load averages, so a run can be compared with a later one.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import subprocess
from pathlib import Path

MB = 1_000_000
MIB = 1 << 20


class Figure:
    """``ours`` against ``peer_value`` of ``peer``; ``goal`` is (">=" | "<=", number, "ratio" | "abs")."""

    def __init__(self, name: str, unit: str, ours: float, peer: str | None = None,
                 peer_value: float | None = None, goal: tuple | None = None,
                 ratio: float | None = None) -> None:
        """``ratio``: when given, the ratio shown and judged (say, the median of per-round ratios)
        instead of ours / peer_value."""
        self.name = name
        self._ratio = ratio
        self.unit = unit
        self.ours = ours
        self.peer = peer
        self.peer_value = peer_value
        self.goal = goal

    @property
    def ratio(self) -> float | None:
        if self._ratio is not None:
            return self._ratio
        if self.peer_value in (None, 0):
            return None
        return self.ours / self.peer_value

    @property
    def met(self) -> bool | None:
        if self.goal is None:
            return None
        op, limit, kind = self.goal
        value = self.ratio if kind == "ratio" else self.ours
        if value is None:
            return None
        return value >= limit if op == ">=" else value <= limit

    def goal_text(self) -> str:
        if self.goal is None:
            return ""
        op, limit, kind = self.goal
        sign = "≥" if op == ">=" else "≤"
        return f"{sign} {limit:g}x" if kind == "ratio" else f"{sign} {_num(limit)} {self.unit}"

    def as_dict(self) -> dict:
        return {"name": self.name, "unit": self.unit, "ours": self.ours, "peer": self.peer,
                "peer_value": self.peer_value, "ratio": self.ratio, "goal": self.goal_text() or None,
                "met": self.met}


def _num(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.3g}"


def table(figures: list[Figure]) -> str:
    rows = [("figure", "ours", "peer", "peer's", "ratio", "goal", "")]
    for f in figures:
        met = {True: "met", False: "MISSED", None: ""}[f.met]
        rows.append((f.name, f"{_num(f.ours)} {f.unit}", f.peer or "",
                     f"{_num(f.peer_value)} {f.unit}" if f.peer_value is not None else "",
                     f"{f.ratio:.2f}x" if f.ratio is not None else "", f.goal_text(), met))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows)


def load_average() -> list[float]:
    return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]


def machine(work: Path) -> dict:
    """What the figures were measured on: CPUs, memory, kernel, the disk under ``work``."""
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    mem = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
               if line.startswith("MemTotal"))
    return {"cpus": os.cpu_count(), "cpu": cpu, "memory_gib": round(mem / (1 << 20), 1),
            "kernel": platform.release(), "python": platform.python_version(), "disk": _disk(work),
            "tools": _versions()}


def _disk(path: Path) -> dict:
    out = subprocess.run(["df", "--output=source,fstype", str(path)], capture_output=True, text=True)
    source, fstype = out.stdout.splitlines()[-1].split()
    dev = Path(source).name
    rotational = Path(f"/sys/block/{dev}/queue/rotational")
    model = Path(f"/sys/block/{dev}/device/model")
    return {"device": source, "fstype": fstype,
            "rotational": rotational.read_text().strip() == "1" if rotational.exists() else None,
            "model": model.read_text().strip() if model.exists() else None,
            "virtio": Path(f"/sys/block/{dev}/device/driver").resolve().name.startswith("virtio")
            if Path(f"/sys/block/{dev}/device/driver").exists() else None}


def _versions() -> dict:
    probes = {"gzip": ["gzip", "--version"], "pigz": ["pigz", "--version"], "zstd": ["zstd", "--version"],
              "zip": ["zip", "-v"], "unzip": ["unzip", "-v"]}
    found = {}
    for name, argv in probes.items():
        if shutil.which(argv[0]) is None:
            continue
        out = subprocess.run(argv, capture_output=True, text=True)
        text = [line.strip() for line in (out.stdout or out.stderr).splitlines()]
        found[name] = next((line for line in text if re.search(r"\d\.\d", line)), "")[:100]
    for module in ("isal", "zstandard"):
        try:
            found[module] = __import__(module).__version__
        except (ImportError, AttributeError):
            pass
    return found


def write_json(path: Path, doc: dict) -> None:
    path.write_text(json.dumps(doc, indent=2, default=str) + "\n")
