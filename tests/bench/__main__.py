"""``nox -s bench`` (or ``python -m tests.bench``): speed and memory of cdh against peers.

    python -m tests.bench [--size-mib 800] [--rounds 3] [--json FILE] [--cache DIR]

Makes a real core (a crashed process with a realistic heap; needs root and gcc),
runs our composer and each peer on it, interleaved, and prints for each figure
our number, the peer's from the same run, and the ratio against the goal.
Other work on the machine shows up as noise: the load averages are recorded.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

from tests.bench import capture, inputs, report


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m tests.bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--size-mib", type=int, default=800, help="heap of the crashed process (default 800)")
    p.add_argument("--rounds", type=int, default=3, help="interleaved runs per tool; medians (default 3)")
    p.add_argument("--json", type=Path, metavar="FILE", help="also write the figures and samples here")
    p.add_argument("--cache", type=Path, metavar="DIR",
                   help="keep the generated cores here and reuse them (default: a temp dir, removed)")
    p.add_argument("--work", type=Path, default=Path("/var/tmp"),
                   help="where outputs are written (the disk measured; default /var/tmp)")
    return p.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse(argv)
    missing = capture.missing_peers()
    if missing:
        print(f"bench: missing tools: {' '.join(missing)} (apt-get install {' '.join(missing)})",
              file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="cdh-bench-", dir=args.work))
    cache = args.cache or work / "cache"
    cache.mkdir(parents=True, exist_ok=True)
    try:
        return _run(args, work, cache)
    except inputs.InputError as err:
        print(f"bench: {err}", file=sys.stderr)
        return 2
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _run(args: argparse.Namespace, work: Path, cache: Path) -> int:
    started = time.time()
    load_before = report.load_average()
    core = inputs.core(cache, args.size_mib)
    runner = inputs.runner(cache)
    inputs.warm(core)
    size = core.stat().st_size
    print(f"input: {core.name}, {size / report.MB:,.0f} MB; {args.rounds} interleaved rounds", flush=True)
    cdc = capture.install_composer(work / "host")
    tools = [*capture.peers(), *(capture.ours(cdc, m, work / "out") for m in capture.MODES)]
    verifier = capture.Verifier(core)
    samples = capture.measure(tools, core, runner, work, args.rounds, verify=verifier)
    figures = capture.figures(samples, size)
    load_after = report.load_average()
    print(report.table(figures))
    print(f"load average before {load_before}, after {load_after}; outputs verified: {verifier.checked}")
    if args.json:
        report.write_json(args.json, {
            "started": started, "seconds": round(time.time() - started, 1),
            "machine": report.machine(work), "load_before": load_before, "load_after": load_after,
            "input": {"name": core.name, "bytes": size, "rounds": args.rounds},
            "figures": [f.as_dict() for f in figures],
            "samples": {name: [s.as_dict() for s in runs] for name, runs in samples.items()},
            "verified": verifier.checked})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
