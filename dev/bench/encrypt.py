"""Encryption to a route's age recipients: what the agent does (cdh/agecrypt.py through pyrage, into
a staged copy: cdh/agent/staging.py) against age's own CLI (``age -r``), on the same zip.

The zip is one our composer wrote (stored, about 1 GiB by default). Per round, interleaved (the
order rotates from round to round), each a whole process measured by runner.c (wall, its own CPU,
peak RSS):

- ``cdh, staged``: ``python -m dev.bench.encrypt`` encrypts the zip as the agent's staging does
  (agecrypt.encrypt from the held descriptor into a new file beside it, no fsync, in a worker
  thread), then deletes the copy, as the agent does after the upload;
- ``cdh, no copy``: the same encryption written to /dev/null: what staging on disk adds is the
  difference (the page cache's writes of the copy; reading it back for the upload is the upload's);
- ``age -r``: Debian's age, ``age -r RECIPIENT -o COPY ZIP``, then the copy deleted the same way.

Start-up (Python and pyrage imported; age's exec) is measured on a 1 KB file and taken out of the
per-GB and MB/s figures. One of our copies is opened with ``age -d -i`` and compared with the zip.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import threading
from pathlib import Path

from dev.bench import measure
from dev.bench.report import MB, MIB, Figure

REPO = Path(__file__).resolve().parents[2]
TOOLS = ("cdh, staged", "cdh, no copy", "age -r")


def age_cli() -> str | None:
    return shutil.which("age")


class EncryptBench:
    def __init__(self, work: Path, runner: Path, zip_path: Path) -> None:
        self.work = work / "encrypt"
        self.work.mkdir(mode=0o700, exist_ok=True)
        self.runner = runner
        self.zip_path = zip_path
        self.small = self.work / "small.zip"
        self.small.write_bytes(os.urandom(1000))
        key = self.work / "key.txt"
        subprocess.run(["age-keygen", "-o", str(key)], check=True, capture_output=True)
        self.identity = key
        self.recipient = subprocess.run(["age-keygen", "-y", str(key)], check=True, capture_output=True,
                                        text=True).stdout.strip()

    def rounds(self, n: int) -> dict[str, list[measure.Sample]]:
        names = (*TOOLS, *(f"{t}, 1 KB" for t in TOOLS))
        samples: dict[str, list[measure.Sample]] = {name: [] for name in names}
        for i in range(n):
            for name in TOOLS[i % 3:] + TOOLS[:i % 3]:
                samples[name].append(self.one(name, self.zip_path))
        for _ in range(n):
            for name in TOOLS:
                samples[f"{name}, 1 KB"].append(self.one(name, self.small))
        return samples

    def one(self, tool: str, src: Path) -> measure.Sample:
        out = self.work / (src.name + ".age")
        os.sync()  # nobody's dirty pages are written back inside our timing
        if tool == "age -r":
            argv = [age_cli(), "-r", self.recipient, "-o", str(out), str(src)]
        else:
            target = "/dev/null" if tool == "cdh, no copy" else str(out)
            argv = [sys.executable, "-m", "dev.bench.encrypt", str(src), target, self.recipient]
        sample = measure.run(self.runner, argv, env={**os.environ, "PYTHONPATH": str(REPO)})
        if out.exists():
            sample.out_bytes = out.stat().st_size
            out.unlink()
        return sample

    def verify(self) -> str:
        """One of our copies opened by age's CLI, byte for byte the zip."""
        out = self.work / "check.age"
        encrypt_like_the_agent(self.zip_path, str(out), self.recipient)
        proc = subprocess.Popen(["age", "-d", "-i", str(self.identity), str(out)], stdout=subprocess.PIPE)
        got = hashlib.sha256()
        while chunk := proc.stdout.read(1 << 20):
            got.update(chunk)
        if proc.wait() != 0:
            raise RuntimeError("age -d could not open our copy")
        out.unlink()
        want = hashlib.sha256()
        with open(self.zip_path, "rb") as f:
            while chunk := f.read(1 << 20):
                want.update(chunk)
        if got.digest() != want.digest():
            raise RuntimeError("age -d gave other bytes than the zip")
        return "age -d -i opens our copy: byte for byte the zip"


def encrypt_like_the_agent(src: Path, target: str, recipient: str) -> int:
    """agecrypt.encrypt as cdh/agent/staging.py calls it: from the held descriptor, in a worker thread,
    into a new file (O_EXCL, 0600) or /dev/null."""
    from cdh import agecrypt

    result: list = []
    with open(src, "rb") as f:
        flags = os.O_WRONLY if target == "/dev/null" else os.O_RDWR | os.O_CREAT | os.O_EXCL
        out = os.open(target, flags | os.O_CLOEXEC, 0o600)
        try:
            size = os.fstat(f.fileno()).st_size
            worker = threading.Thread(target=lambda: result.append(
                agecrypt.encrypt(f.fileno(), size, out, (recipient,))))
            worker.start()
            worker.join()
        finally:
            os.close(out)
    if not result:
        raise RuntimeError("encryption failed")
    return result[0]


def _median(samples: list[measure.Sample], attr: str) -> float:
    return statistics.median(getattr(s, attr) for s in samples)


def figures(samples: dict[str, list[measure.Sample]], size: int) -> list[Figure]:
    gb = size / 1e9
    per_gb = {t: (_median(samples[t], "cpu_s") - _median(samples[f"{t}, 1 KB"], "cpu_s")) / gb for t in TOOLS}
    # start-up out of the throughput too: the agent encrypts in a process long started
    wall = {t: size / max(_median(samples[t], "wall_s") - _median(samples[f"{t}, 1 KB"], "wall_s"), 1e-6) / MB
            for t in TOOLS}
    return [
        Figure("encrypt CPU (cdh, staged)", "s/GB", per_gb["cdh, staged"], "age -r", per_gb["age -r"],
               ("<=", 2.0, "ratio")),
        Figure("encrypt (cdh, staged)", "MB/s", wall["cdh, staged"], "age -r", wall["age -r"]),
        Figure("encrypt peak RSS (cdh)", "MiB", max(s.rss for s in samples["cdh, staged"]) / MIB, "age -r",
               max(s.rss for s in samples["age -r"]) / MIB, ("<=", 64, "abs")),
    ]


def notes(samples: dict[str, list[measure.Sample]], size: int) -> list[str]:
    gb = size / 1e9
    fixed = {t: _median(samples[f"{t}, 1 KB"], "cpu_s") for t in TOOLS}
    per_gb = {t: (_median(samples[t], "cpu_s") - fixed[t]) / gb for t in TOOLS}
    staged = next((s.out_bytes for s in samples["cdh, staged"] if s.out_bytes), 0)
    return [
        "start-up + a 1 KB file: CPU cdh {:.2f} s (Python, pyrage), age {:.2f} s".format(
            fixed["cdh, staged"], fixed["age -r"]),
        f"staging on disk adds {per_gb['cdh, staged'] - per_gb['cdh, no copy']:.2f} CPU-s/GB over encrypting "
        f"to nowhere ({per_gb['cdh, no copy']:.2f} s/GB); the copy is {staged - size:,} bytes bigger than "
        f"the {size:,}-byte zip ({(staged - size) / max(size, 1) * 100:.3f}%)",
    ]


if __name__ == "__main__":  # python -m dev.bench.encrypt SRC TARGET RECIPIENT
    encrypt_like_the_agent(Path(sys.argv[1]), sys.argv[2], sys.argv[3])
