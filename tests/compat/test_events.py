"""Event files as IBM's documented consumer reads them: a sidecar running `inotifywait -e create` in the
event directory and `cat`-ing each new file at once (IBM's minikube values run exactly that).

The file must be complete when its name is created (cdh links it in whole: cdh/composer/output.py),
have IBM's fields and types, and be readable by a sidecar of another user when CDH_EVENT_FILE_MODE
lets it (0644; the directory then opens to the same readers).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from tests.support.composer import run_composer
from tests.support.require import require

SIDECAR = 'inotifywait -m -e create . | while read directory action file; do cat "$file"; echo; done'
NOBODY = 65534
IBM_FIELDS = ("image_list", "key", "exe_path", "labels", "limit_size", "exe_name", "pid", "signal",
              "timestamp", "hostname", "namespace", "uuid")


class Sidecar:
    def __init__(self, event_dir: Path, uid: int | None = None) -> None:
        require(shutil.which("inotifywait"), "inotifywait is needed (apt-get install inotify-tools)")
        self.out = tempfile.TemporaryFile()  # noqa: SIM115 - closed with the sidecar
        self.err = tempfile.TemporaryFile()  # noqa: SIM115

        def as_user():
            if uid is not None:
                os.setgroups([])
                os.setgid(uid)
                os.setuid(uid)

        self.proc = subprocess.Popen(["sh", "-c", SIDECAR], cwd=event_dir, stdout=self.out,
                                     stderr=self.err, preexec_fn=as_user, start_new_session=True)
        deadline = time.monotonic() + 30
        while b"Watches established" not in self.stderr_bytes():
            assert time.monotonic() < deadline and self.proc.poll() is None, self.stderr_bytes()
            time.sleep(0.02)

    def stderr_bytes(self) -> bytes:
        self.err.seek(0)
        return self.err.read()

    def printed(self, n: int) -> list[str]:
        """The first ``n`` non-empty lines the sidecar printed (waits for them)."""
        deadline = time.monotonic() + 30
        while True:
            self.out.seek(0)
            lines = [ln for ln in self.out.read().decode().splitlines() if ln.strip()]
            if len(lines) >= n or time.monotonic() > deadline:
                return lines
            time.sleep(0.05)

    def stop(self) -> None:
        os.killpg(self.proc.pid, 9)
        self.proc.wait()
        self.out.close()
        self.err.close()


@pytest.fixture
def event_dir():
    """An event directory others can reach (pytest's tmp_path is private to root)."""
    top = Path(tempfile.mkdtemp(prefix="cdh-events-"))
    top.chmod(0o755)
    d = top / "events"
    d.mkdir(mode=0o700)
    yield d
    shutil.rmtree(top)


def crash(tmp_path, event_dir: Path, n: int, **env: str):
    host = tmp_path / "host"
    host.mkdir(exist_ok=True)
    for i in range(n):
        r = run_composer(host, core=os.urandom(1000), args=[
            "-c=0", "-e=segfaulter", f"-p={i + 1}", "-s=11", "-t=1718000000", "-h=web-0",
            "-E=!usr!bin!segfaulter"],
            env={"COMP_CORE_EVENTS": "true", "COMP_CORE_EVENT_DIR": str(event_dir), **env})
        assert r.rc == 0, r.stderr


def test_ibms_sidecar_reads_every_event_whole(tmp_path, event_dir):
    sidecar = Sidecar(event_dir)
    try:
        crash(tmp_path, event_dir, 5)
        printed = sidecar.printed(5)
    finally:
        sidecar.stop()
    assert len(printed) == 5, (printed, sidecar.stderr_bytes())
    for line in printed:
        event = json.loads(line)  # whole: cat ran the moment the name appeared
        assert set(IBM_FIELDS) <= set(event)
        assert all(isinstance(event[f], str) for f in IBM_FIELDS if f not in ("image_list", "labels"))
        assert event["exe_path"] == "!usr!bin!segfaulter" and event["signal"] == "11"
        assert event["namespace"] == "unknown"  # no pod here: IBM's word for it
    assert sorted(json.loads(ln)["pid"] for ln in printed) == ["1", "2", "3", "4", "5"]
    assert stat_mode(event_dir) == 0o700 and all(stat_mode(p) == 0o600 for p in event_dir.iterdir())


def test_a_sidecar_of_another_user_reads_them_with_event_file_mode(tmp_path, event_dir):
    crash(tmp_path, event_dir, 1, CDH_EVENT_FILE_MODE="0644")  # the default 0700 directory opens
    assert stat_mode(event_dir) == 0o755
    sidecar = Sidecar(event_dir, uid=NOBODY)
    try:
        crash(tmp_path, event_dir, 2, CDH_EVENT_FILE_MODE="0644")
        printed = sidecar.printed(2)
    finally:
        sidecar.stop()
    assert len(printed) == 2 and all(json.loads(ln)["exe_name"] == "segfaulter" for ln in printed), printed


def stat_mode(path: Path) -> int:
    return path.stat().st_mode & 0o777
