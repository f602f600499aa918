"""Secrets: the S3 keys and session token never appear in a log line, an event file or a zip (not
even the zip of the agent's own core, with environ capture on); what the composer writes is
root's alone (files 0600, directories 0700) whoever crashed; environ capture is opt-in and says so.
"""

from __future__ import annotations

import io
import os
import shutil
import signal
import stat
import tempfile
import zipfile
from pathlib import Path

from tests.reliability import ledger
from tests.support.agentproc import wait_until
from tests.support.s3server import list_keys

TOKEN = "FwoGZXIvYXdzEJr//////////wEaDCdhTestSessionToken0123456789abcdefSECRET"
NOBODY = 65534


def secret_env(s3_server, bucket: str) -> dict[str, str]:
    return {**s3_server.agent_env(bucket), "CDH_S3_SESSION_TOKEN": TOKEN}


def secrets_of(env: dict[str, str]) -> list[bytes]:
    return [env[k].encode() for k in ("CDH_S3_ACCESS_KEY", "CDH_S3_SECRET_KEY", "CDH_S3_SESSION_TOKEN")]


def blobs(path: Path, data: bytes):
    """(where, bytes) for a file and, for a zip, every entry decompressed."""
    yield str(path), data
    if data[:2] == b"PK":
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            for name in zf.namelist():
                yield f"{path}!{name}", zf.read(name)


def leaks(secrets: list[bytes], places) -> list[str]:
    found = []
    for where, data in places:
        found += [f"{where} holds {s[:6].decode()}..." for s in secrets if s in data]
    return found


def composer_files(host_dir: Path):
    """Everything under HOST_DIR but what the agent installed (the runtime, cdc) and the filler."""
    for p in host_dir.rglob("*"):
        rel = p.relative_to(host_dir).parts
        if rel[0] in ("runtime", "cdc", "bin"):
            continue
        yield p


def test_keys_and_token_reach_no_log_event_or_zip_even_the_agents_own_core(node, s3_server, s3, bucket,
                                                                           start_agent, figures):
    s3_env = secret_env(s3_server, bucket)
    env = node.agent_env(s3_env, CDH_CORE_EVENTS="true", CDH_INCLUDE_PROC_ENVIRON="true",
                         CDH_LOG_LEVEL="debug")  # botocore's debug lines print request headers
    first = start_agent(env)
    first.wait_event("agent.started")
    (warned,) = first.events("config.environ_capture")
    assert "secrets" in warned["note"]
    node.crash("segv")  # an ordinary crash, uploaded by this agent
    wait_until(lambda: len(node.done()) == 1 and node.zips() == [], timeout=60, what="the first upload")
    os.kill(first.pid, signal.SIGSEGV)  # and now the agent itself: its core goes through our composer
    assert first.wait(60) == -signal.SIGSEGV
    node.wait_done(2)
    (agents_zip,) = node.zips()
    places = list(blobs(agents_zip, agents_zip.read_bytes()))  # as it was on the node
    second = start_agent(env)
    wait_until(lambda: node.zips() == [], timeout=60, what="the agent's own core uploaded")
    places += [(f"agent log {p.log_path}", p.text().encode()) for p in (first, second)]
    for p in composer_files(node.host_dir):
        if p.is_file():
            places += blobs(p, p.read_bytes())
    objects = list_keys(s3, bucket)
    for key in objects:
        places += blobs(Path(f"s3://{bucket}/{key}"), s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    assert len(objects) == 2 and any(p[0].endswith("-event.json") for p in places)
    environs = [d for w, d in places if w.endswith("-proc/environ")]
    # the first crash's (in the bucket) and the agent's (on the node, then in the bucket)
    assert len(environs) == 3 and sum(b"CDH_S3_SECRET_KEY=<redacted>" in d for d in environs) == 2
    found = leaks(secrets_of(s3_env), places)
    delivery = ledger.check(s3, bucket, ledger.from_composer(node.done()))
    figures.case()
    figures.faults(1)  # the agent's own crash
    figures.captured(2)
    figures.delivered(delivery.intact, delivery.lost_bytes)
    figures.note(f"secrets: {len(places)} logs, event files, zips and zip entries searched, "
                 f"{len(found)} hold a key or token")
    assert found == []
    assert delivery.intact == 2, str(delivery)


def _owned_by_root(path: Path, mode: int) -> str | None:
    st = path.lstat()
    if st.st_uid != 0 or st.st_gid != 0 or stat.S_IMODE(st.st_mode) != mode:
        return f"{path}: uid {st.st_uid} gid {st.st_gid} mode {oct(stat.S_IMODE(st.st_mode))}"
    return None


def test_what_the_composer_writes_is_roots_alone(node, figures):
    node.install(CDH_CORE_EVENTS="true", CDH_RATE_LIMIT="1/1h")
    public = Path(tempfile.mkdtemp(prefix="cdhr-bin-", dir="/tmp"))  # nobody may run it from here
    public.chmod(0o755)
    node.crasher = Path(shutil.copy(node.crasher, public / "crasher"))

    def as_nobody():
        os.setgroups([])
        os.setgid(NOBODY)
        os.setuid(NOBODY)

    for name in ("cores", "events"):  # made again by the composer, as on a fresh node
        for p in (node.host_dir / name).iterdir():
            p.unlink()
        (node.host_dir / name).rmdir()
    try:
        node.crash("segv", preexec=as_nobody)
        node.crash("segv", preexec=as_nobody)  # rate limited: writes its state, and a log line
    finally:
        shutil.rmtree(public)
    node.wait_done(1)
    wait_until(lambda: node.events("compose.rate_limited"), timeout=30, what="the second crash skipped")
    written = [p for p in composer_files(node.host_dir) if p.name != "composer.env"]
    assert {p.name for p in written} >= {"cores", "events", "composer.log", "ratelimit.json"}
    assert len(node.zips()) == 1 and len(list(node.event_dir.iterdir())) == 1
    wrong = [w for p in written if (w := _owned_by_root(p, 0o700 if p.is_dir() else 0o600))]
    figures.case()
    figures.captured(1)
    figures.note(f"permissions: {len(written)} files and directories the composer wrote for a crash "
                 f"of uid {NOBODY}, {len(wrong)} not root's 0600/0700")
    assert wrong == []


def test_environ_is_opt_in_and_says_so(node, figures):
    node.install(CDH_RATE_LIMIT="off")
    node.crash("segv")
    (done,) = node.wait_done(1)
    with zipfile.ZipFile(node.core_dir / done["zip"]) as zf:
        assert not [n for n in zf.namelist() if n.endswith("environ")]
    assert not node.events("compose.environ_included")
    node.install(CDH_RATE_LIMIT="off", CDH_INCLUDE_PROC_ENVIRON="true")
    node.crash("segv")
    done = node.wait_done(2)[-1]
    with zipfile.ZipFile(node.core_dir / done["zip"]) as zf:
        assert [n for n in zf.namelist() if n.endswith("-proc/environ")]
    (said,) = node.events("compose.environ_included")
    assert said["level"] == "warning" and said["setting"] == "CDH_INCLUDE_PROC_ENVIRON"
    figures.case(2)
    figures.captured(2)
