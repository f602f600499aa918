"""Capture: our composer against the tools a core would otherwise be written with.

Every tool reads the same core from a pipe and writes a fresh file that is
fsync'd before the clock stops (dev/bench/measure.py). The runs are
interleaved (one of each tool per round) so that load from other work on
the machine falls on all of them alike; figures use the median of the rounds.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import subprocess
import zipfile
from pathlib import Path

from dev.bench.measure import Sample, median, run_piped

MODES = ("none", "deflate", "zstd")
KERNEL_ARGS = ["-c=18446744073709551615", "-e=heap", "-p=1", "-s=11", "-t=1718000000", "-h=bench",
               "-E=!bench!heap"]


class Tool:
    """One way to capture: its argv, and where its output goes."""

    def __init__(self, name: str, argv: list[str], stdout_name: str | None = None,
                 env: dict | None = None) -> None:
        self.name = name
        self.argv = argv
        self.stdout_name = stdout_name
        self.env = env


def peers() -> list[Tool]:
    cores = os.cpu_count() or 1
    return [
        Tool("cat", ["cat"], "core"),
        Tool("gzip -1", ["gzip", "-1"], "core.gz"),
        Tool(f"pigz -1 -p {cores}", ["pigz", "-1", "-p", str(cores)], "core.gz"),
        Tool("zstd -1 -T0", ["zstd", "-1", "-T0", "-q", "-c"], "core.zst"),
        Tool("zip -1", ["zip", "-1", "-q", "core.zip", "-"]),
    ]


def missing_peers() -> list[str]:
    return [t for t in ("cat", "gzip", "pigz", "zstd", "zip", "unzip") if shutil.which(t) is None]


def ours(cdc: Path, mode: str, out_dir: Path) -> Tool:
    """The composer as the kernel runs it: argv from core_pattern, settings from the environment."""
    env = {"PATH": "/usr/bin:/bin", "CDH_HOST_DIR": str(cdc.parent), "CDH_CORE_DIR": str(out_dir),
           "CDH_COMPRESSION": mode, "CDH_IGNORE_CRI": "true", "CDH_CORE_EVENTS": "false",
           "CDH_RATE_LIMIT": "off"}  # every round is the same "crash": never rate-limited here
    return Tool(f"cdh compose {mode}", [str(cdc), *KERNEL_ARGS, f"-P={os.getpid()}"], env=env)


def measure(tools: list[Tool], core: Path, runner: Path, work: Path, rounds: int,
            verify=None) -> dict[str, list[Sample]]:
    """``rounds`` interleaved runs of every tool; ``verify(tool, out_dir)`` checks each output."""
    samples: dict[str, list[Sample]] = {t.name: [] for t in tools}
    for _ in range(rounds):
        for tool in tools:
            out_dir = work / "out"
            samples[tool.name].append(run_piped(runner, tool.argv, core, out_dir, tool.stdout_name,
                                                tool.env))
            if verify is not None:
                verify(tool, out_dir)
            shutil.rmtree(out_dir)
    return samples


# ------------------------------------------------------------------ verification


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(8 << 20):
            h.update(chunk)
    return h.hexdigest()


class Verifier:
    """Checks every zip our composer wrote: unzip -t, and the core inside equals the input."""

    def __init__(self, core: Path) -> None:
        self.digest = sha256_file(core)
        self.size = core.stat().st_size
        self.checked: dict[str, int] = {}

    def __call__(self, tool: Tool, out_dir: Path) -> None:
        if tool.env is None:
            return  # a peer
        zips = list(out_dir.glob("*.zip"))
        if len(zips) != 1 or list(out_dir.glob(".*.part")):
            raise AssertionError(f"{tool.name}: expected one finished zip in {out_dir}, found {zips}")
        mode = tool.env["CDH_COMPRESSION"]
        if mode != "zstd":
            _unzip_test(zips[0])
        digest = _core_digest(zips[0])
        if digest != self.digest:
            raise AssertionError(f"{tool.name}: the core in {zips[0].name} differs from the input")
        self.checked[tool.name] = self.checked.get(tool.name, 0) + 1


def _unzip_test(path: Path) -> None:
    out = subprocess.run(["unzip", "-t", str(path)], capture_output=True, text=True)
    if out.returncode != 0 or "No errors detected" not in out.stdout:
        raise AssertionError(f"unzip -t {path.name}: {out.stdout[-500:]}{out.stderr[-500:]}")


def _core_digest(path: Path) -> str:
    """sha256 of the ``.core`` entry, decoded (zstd with zstandard: zipfile < 3.14 has no method 93)."""
    h = hashlib.sha256()
    with zipfile.ZipFile(path) as zf:
        info = next(i for i in zf.infolist() if i.filename.endswith(".core"))
        if info.compress_type != 93:
            with zf.open(info) as f:
                while chunk := f.read(8 << 20):
                    h.update(chunk)
            return h.hexdigest()
    import zstandard

    with open(path, "rb") as f:
        f.seek(info.header_offset + 26)
        name_len, extra_len = int.from_bytes(f.read(2), "little"), int.from_bytes(f.read(2), "little")
        f.seek(info.header_offset + 30 + name_len + extra_len)
        data = io.BufferedReader(_Slice(f, info.compress_size), 8 << 20)
        with zstandard.ZstdDecompressor().stream_reader(data, read_across_frames=True) as reader:
            while chunk := reader.read(8 << 20):
                h.update(chunk)
    return h.hexdigest()


class _Slice(io.RawIOBase):
    """The next ``left`` bytes of ``f``: one entry's data, not the entries after it."""

    def __init__(self, f, left: int) -> None:
        self.f = f
        self.left = left

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        n = self.f.readinto(memoryview(b)[: min(len(b), self.left)])
        self.left -= n
        return n


# ------------------------------------------------------------------ figures


def figures(samples: dict[str, list[Sample]], size: int) -> list:
    """Throughput (core bytes / median wall), output size, peak RSS and CPU, ours against each peer."""
    from dev.bench.report import MB, MIB, Figure

    cores = os.cpu_count() or 1

    def mbps(name: str) -> float:
        return size / median(samples[name], "wall_s") / MB

    def out_mb(name: str) -> float:
        return median(samples[name], "out_bytes") / MB

    def cpu_per_gb(name: str) -> float:
        return median(samples[name], "cpu_s") / (size / 1e9)

    pigz, want = f"pigz -1 -p {cores}", {"deflate": "gzip -1", "none": "cat", "zstd": "zstd -1 -T0"}
    out = [
        Figure("capture deflate", "MB/s", mbps("cdh compose deflate"), pigz, mbps(pigz),
               (">=", 2.0, "ratio")),
        Figure("capture deflate", "MB/s", mbps("cdh compose deflate"), "zip -1", mbps("zip -1"),
               (">=", 4.0, "ratio")),
        Figure("capture deflate", "MB/s", mbps("cdh compose deflate"), "gzip -1", mbps("gzip -1")),
        Figure("output deflate", "MB", out_mb("cdh compose deflate"), "gzip -1", out_mb("gzip -1"),
               ("<=", 1.0, "ratio")),
        Figure("capture none", "MB/s", mbps("cdh compose none"), "cat", mbps("cat"), (">=", 0.9, "ratio")),
        Figure("capture zstd", "MB/s", mbps("cdh compose zstd"), "zstd -1 -T0", mbps("zstd -1 -T0"),
               (">=", 0.9, "ratio")),
        Figure("output zstd", "MB", out_mb("cdh compose zstd"), "zstd -1 -T0", out_mb("zstd -1 -T0")),
    ]
    for mode in MODES:
        peer = want[mode]
        out.append(Figure(f"CPU {mode}", "s/GB", cpu_per_gb(f"cdh compose {mode}"), peer, cpu_per_gb(peer)))
    for mode in MODES:
        ours_rss = max(s.rss for s in samples[f"cdh compose {mode}"]) / MIB
        peer = want[mode]
        out.append(Figure(f"peak RSS {mode}", "MiB", ours_rss, peer,
                          max(s.rss for s in samples[peer]) / MIB, ("<=", 64, "abs")))
    return out
