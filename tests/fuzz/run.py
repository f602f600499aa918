"""Fuzz the dump readers for a while, outside pytest: ``python -m tests.fuzz.run --minutes 30``.

Draws inputs from tests/fuzz/strategies.py, runs each through a target (tests/fuzz/targets.py), groups
findings by bucket (exception type and innermost cdh frame), shrinks the first input of each bucket by
delta debugging (remove chunks, then zero bytes, keeping the same bucket), and writes the minimal input
to the corpus directory as ``<target>-<bucket>.<ext>``. The corpus is then a regression suite
(tests/fuzz/test_fuzz_readers.py runs every file in it).

The process runs under a 2 GiB address-space ceiling, so a header asking for 240 GB fails fast with
MemoryError (a finding) instead of swapping the machine.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
import warnings
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis.errors import NonInteractiveExampleWarning

from tests.fuzz import strategies, targets

CORPUS = Path(__file__).with_name("corpus")
STRATEGY = {"inspect-core": strategies.cores, "inspect-zip": strategies.zips, "stack-core": strategies.cores,
            "unpack": strategies.zips}


def shrink(target: str, data: bytes, want: str, budget_s: float = 60.0) -> bytes:
    """The smallest input found (by ddmin-style chunk removal, then byte zeroing) with bucket ``want``."""
    end = time.monotonic() + budget_s
    best = data
    chunk = max(1, len(best) // 2)
    while chunk >= 1 and time.monotonic() < end:
        i, progressed = 0, False
        while i < len(best) and time.monotonic() < end:
            trial = best[:i] + best[i + chunk:]
            if targets.outcome(target, trial) == want:
                best, progressed = trial, True
            else:
                i += chunk
        if not progressed:
            chunk //= 2
    for i in range(len(best)):  # zero what is not needed, so the file shows what matters
        if time.monotonic() > end:
            break
        if best[i]:
            trial = best[:i] + b"\0" + best[i + 1:]
            if targets.outcome(target, trial) == want:
                best = trial
    return best


def fuzz(target: str, seconds: float, out: Path, batch: int = 200) -> dict:
    found: dict[str, bytes] = {}
    counts: dict[str, int] = {}
    examples = 0
    end = time.monotonic() + seconds

    @settings(max_examples=batch, deadline=None, database=None, derandomize=False,
              suppress_health_check=list(HealthCheck), phases=["generate"])
    @given(STRATEGY[target]())
    def one(data: bytes) -> None:
        nonlocal examples
        examples += 1
        b = targets.outcome(target, data)
        if b is not None:
            counts[b] = counts.get(b, 0) + 1
            if b not in found or len(data) < len(found[b]):
                found[b] = data

    while time.monotonic() < end:
        one()
    out.mkdir(parents=True, exist_ok=True)
    written = {}
    for b, data in sorted(found.items()):
        small = shrink(target, data, b)
        slug = re.sub(r"[^A-Za-z0-9._-]+", "_", b)[:80]
        path = out / f"{target}-{slug}{targets.SUFFIX[target]}"
        path.write_bytes(small)
        written[b] = {"file": path.name, "hits": counts[b], "bytes": len(small)}
    return {"target": target, "examples": examples, "seconds": seconds, "findings": written}


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.fuzz.run")
    p.add_argument("--minutes", type=float, default=2.0, help="per target (default 2)")
    p.add_argument("--target", action="append", choices=sorted(STRATEGY), help="default: all")
    p.add_argument("--out", type=Path, default=CORPUS, help=f"corpus directory (default {CORPUS})")
    ns = p.parse_args(argv)
    warnings.simplefilter("ignore", NonInteractiveExampleWarning)
    sys.setrecursionlimit(1000)
    for target in ns.target or sorted(STRATEGY):
        report = fuzz(target, ns.minutes * 60, ns.out)
        print(json.dumps(report), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
