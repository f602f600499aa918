"""Hostile input: what a crashing process, a pod spec, a broken crictl, a planted symlink or a bad
setting can throw at cdh. Nothing escapes CORE_DIR, nothing follows a link out, every core is
still captured, and a bad setting is one clear line naming the variable.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import pytest

from tests.reliability import ledger
from tests.support.agentproc import REPO, wait_until
from tests.support.composer import fake_proc, run_composer
from tests.support.cri import FakeNode, cgroup_v2_systemd
from tests.support.s3server import list_keys

SAFE_NAME = re.compile(r"^[A-Za-z0-9._-]+$")
SAFE_KEY = re.compile(r"^[A-Za-z0-9._/-]+$")
# comm (%e) as a process may set it: the kernel keeps 15 bytes, so long UTF-8 is cut mid-character.
COMMS = [b"../../evil", b"a\nb\tc d", b"\x01\x7f\xfe\xff~{uuid}", "💥💥💥💥".encode(), ("é" * 8).encode()]
HOSTNAMES = [b"../../../etc/cron.d/x\n* * * * * root sh", "ホスト/..".encode()]
# %E: a path the process was started from, with a newline, dots and 200 bytes of UTF-8 per part
PATH_PARTS = ["💥" * 50, "x\ny ..", "{hostname}%s"]


def _names_outside(node) -> set[str]:
    """Every path under HOST_DIR (but what the composer owns: cores, events, its log and state)
    and in HOST_DIR's parent that a ../ escape could hit."""
    owned = {"cores", "events", "composer.log", "composer.log.1", "ratelimit.json",
             "state"}  # the last is the agent's: where its log relay got to
    names = {str(p) for p in node.host_dir.parent.iterdir() if "evil" in p.name or "cron" in p.name}
    for p in node.host_dir.rglob("*"):
        if p.relative_to(node.host_dir).parts[0] not in owned:
            names.add(str(p))
    return names


def _check_log_and_events(node) -> int:
    """Every composer log line and event file is one JSON object; returns how many were read."""
    raw = (node.host_dir / "composer.log").read_bytes().splitlines()
    for line in raw:
        assert isinstance(json.loads(line), dict)
    events = list(node.event_dir.iterdir())
    for e in events:
        assert isinstance(json.loads(e.read_bytes()), dict)
    return len(raw) + len(events)


def test_hostile_comm_hostname_and_path_stay_inside_core_dir(node, s3_server, s3, bucket, start_agent,
                                                              figures):
    env = node.agent_env(s3_server.agent_env(bucket), CDH_CORE_EVENTS="true", CDH_RATE_LIMIT="off",
                         CDH_FILENAME_TEMPLATE="{pathname}-{exe_name}-{hostname}-{uuid}",
                         CDH_S3_KEY_PREFIX="{node}/{exe_name}/{namespace}/")
    agent = start_agent(env)
    agent.wait_event("agent.started")
    before = _names_outside(node)
    odd_dir = Path(tempfile.mkdtemp(prefix="cdhr-bin-", dir="/tmp"), *PATH_PARTS)
    odd_dir.mkdir(parents=True)
    odd_crasher = Path(shutil.copy(node.crasher, odd_dir / "crasher"))
    try:
        runs = [("name", comm) for comm in COMMS] + [("host", h) for h in HOSTNAMES]
        for mode, value in runs:
            node.crash(mode, value)
        node.crasher, plain = odd_crasher, node.crasher
        node.crash("name", b"../" * 5)
        node.crasher = plain
    finally:
        shutil.rmtree(Path(odd_dir.parts[0], *odd_dir.parts[1:3]))
    count = len(runs) + 1
    done = node.wait_done(count)
    wait_until(lambda: node.zips() == [], timeout=60, what="every zip uploaded")
    assert len(done) == count and {d["zip"] for d in done} == {d["zip"] for d in done}
    for d in done:
        assert SAFE_NAME.match(d["zip"]) and ".." not in d["zip"] and len(d["zip"].encode()) <= 255, d["zip"]
    assert _names_outside(node) == before, "something was written outside CORE_DIR"
    lines = _check_log_and_events(node)
    keys = list_keys(s3, bucket)
    assert all(SAFE_KEY.match(k) and "/../" not in k for k in keys), keys
    delivery = ledger.check(s3, bucket, ledger.from_composer(done))
    figures.case(count)
    figures.faults(count)
    figures.captured(len(done))
    figures.delivered(delivery.intact, delivery.lost_bytes)
    figures.note(f"hostile names: {count} crashes with hostile comm, hostname and path; "
                 f"{lines} log lines and event files all valid JSON; every name and key safe")
    assert delivery.intact == count, str(delivery)


# ---------------------------------------------------------------- pod metadata and crictl output


def _cri_node(tmp_path, malformed: bool = False) -> tuple[FakeNode, dict, dict]:
    node = FakeNode()
    huge = {f"info.coredump.k{i}": "v" * 200 for i in range(3000)}   # ~700 KiB of labels
    pod = node.add_pod("../../etc", namespace="../..\nx", labels={**huge, "app": "web"})
    pod["annotations"] = {"big": "a" * (512 << 10), "nl\nkey": "\x00\x01"}
    pod["labels"]["io.kubernetes.pod.name"] = "../../etc"
    app = node.add_container(pod, "../app\n", logs=["\x00\xff not utf-8 \x1b[31m", "x" * 100_000])
    if malformed:  # the wrong JSON types where crictl puts objects and strings
        pod["labels"] = ["info.coredump.x", None, 7]
        pod["annotations"] = None
        pod["metadata"]["name"] = 12345
        pod["metadata"]["namespace"] = {"not": "a string"}
        app["labels"] = {"io.kubernetes.pod.namespace": ["x"], "io.kubernetes.container.name": None}
        app["metadata"]["name"] = False
    node.install(tmp_path / "bin")
    return node, pod, app


CRICTL_FAULTS = [
    ("pods", {"mode": "truncated", "bytes": 300}),
    ("inspect", {"mode": "truncated", "bytes": 2}),
    ("inspectp", {"mode": "garbage", "text": "<html>502 Bad Gateway</html>"}),
    ("ps", {"mode": "huge", "mib": 8}),
    ("*", {"mode": "empty"}),
    ("inspecti", {"mode": "exit", "code": 1, "stderr": "level=fatal msg=\"no such image \\\"x\\\"\""}),
    ("logs", {"mode": "huge", "mib": 6}),
    (None, None),  # no fault: only the hostile metadata itself
    ("malformed", None),  # labels a list, names numbers, namespace an object ...
]


@pytest.mark.parametrize(("command", "fault"), CRICTL_FAULTS)
def test_hostile_pod_metadata_and_broken_crictl_cost_metadata_never_the_core(tmp_path, command, fault,
                                                                             figures):
    cri, pod, app = _cri_node(tmp_path, malformed=command == "malformed")
    command = None if command == "malformed" else command
    if command:
        cri.fault(command, **fault)
        cri.save()
    host = tmp_path / "host"
    host.mkdir()
    core = b"\x7fELF" + os.urandom(200_000)
    proc_root = fake_proc(tmp_path, cgroup=cgroup_v2_systemd(pod, app["id"]))
    r = run_composer(host, core=core, proc_root=proc_root,
                     env={"CDH_CRICTL_PATH": str(cri.dir), "CDH_CORE_EVENTS": "true",
                          "CDH_CRI_TIMEOUT": "10s",
                          "CDH_FILENAME_TEMPLATE": "{namespace}-{podname}-{container}-{uuid}"})
    assert r.rc == 0, r.stderr
    assert r.read(".core") == core and ledger.zip_problem(r.zip_path.read_bytes()) is None
    assert SAFE_NAME.match(r.zip_path.name) and ".." not in r.zip_path.name
    info = r.dump_info
    assert info["truncated"] is False
    if command == "logs":  # a flood of log lines: the tail is kept, capped
        assert len(r.read("-0.log")) <= 1 << 20
    elif command == "inspecti":  # the image listing answers instead
        assert r.json("-0-image-info.json")["id"] == app["imageRef"]
    elif command:
        assert info["metadata_errors"], "a broken crictl answer is reported"
    for line in (host / "composer.log").read_bytes().splitlines():
        json.loads(line)
    for e in (host / "events").iterdir():
        event = json.loads(e.read_bytes())
        assert len(e.read_bytes()) < 4 << 20 and event["zip"] == r.zip_path.name
    figures.case()
    figures.faults(1 + (command is not None))
    figures.captured(1)  # byte-identical on the node; no agent in this case, so nothing uploaded


TEMPLATES = ["../../../tmp/{uuid}", "/etc/cron.d/{exe_name}", "{directory}/../../x-{uuid}", "..", ".{uuid}",
             "{pathname}/..", "{exe_name}\n{hostname}\t", "{" * 3, "%s%n{uuid}" + "é" * 300]


def test_a_template_that_tries_to_escape_stays_in_core_dir(tmp_path, figures):
    host = tmp_path / "host"
    host.mkdir()
    core = os.urandom(50_000)
    for template in TEMPLATES:
        r = run_composer(host, core=core, env={"CDH_FILENAME_TEMPLATE": template, "CDH_RATE_LIMIT": "off"},
                         args=["-e=..!..!x", "-P=999999", "-s=11", "-h=../h", "-E=!..!..!bin!sh"])
        assert r.rc == 0, r.stderr
    zips = sorted((host / "cores").iterdir())
    assert len(zips) == len(TEMPLATES)
    assert {p.name for p in host.iterdir()} == {"cores", "composer.log"}  # nothing beside CORE_DIR
    for z in zips:
        assert SAFE_NAME.match(z.name) and ".." not in z.name and len(z.name.encode()) < 256, z.name
        with zipfile.ZipFile(z) as zf:
            assert zf.read(next(n for n in zf.namelist() if n.endswith(".core"))) == core
    figures.case(len(TEMPLATES))
    figures.faults(len(TEMPLATES))
    figures.captured(len(zips))


# ---------------------------------------------------------------- planted symlinks


def test_symlinks_planted_in_core_dir_and_events_are_never_followed(node, s3_server, s3, bucket,
                                                                    start_agent, figures, tmp_path):
    victim = tmp_path / "victim"
    victim.write_bytes(b"the node's secret")
    os.utime(victim, (1_000_000_000, 1_000_000_000))
    node.install(CDH_CORE_EVENTS="true", CDH_FILENAME_TEMPLATE="{exe_name}")  # names we can predict
    links = {node.core_dir / "crasher.zip", node.core_dir / ".crasher.zip.part",
             node.core_dir / "planted.zip", node.core_dir / ".old.zip.part",
             node.event_dir / "planted-event.json", node.host_dir / "ratelimit.json"}
    for link in links:
        os.symlink(victim, link)
        os.utime(link, (1_000_000_000, 1_000_000_000), follow_symlinks=False)
    agent = start_agent(node.agent_env(s3_server.agent_env(bucket), CDH_CORE_EVENTS="true",
                                       CDH_FILENAME_TEMPLATE="{exe_name}"))
    agent.wait_event("agent.started")
    node.crash("segv")
    node.crash("segv")
    done = node.wait_done(2)
    wait_until(lambda: node.zips() == [], timeout=60, what="the two zips uploaded")
    agent.check_alive()
    assert victim.read_bytes() == b"the node's secret" and victim.stat().st_mtime == 1_000_000_000
    assert all(p.is_symlink() and os.readlink(p) == str(victim) for p in links)
    assert sorted(list_keys(s3, bucket)) == sorted(d["zip"] for d in done)
    assert all(d["zip"].startswith("crasher-") for d in done)  # the planted names were left alone
    assert len([e for e in node.event_dir.iterdir() if not e.is_symlink()]) == 2
    delivery = ledger.check(s3, bucket, ledger.from_composer(done))
    figures.case()
    figures.faults(len(links))
    figures.captured(len(done))
    figures.delivered(delivery.intact, delivery.lost_bytes)
    assert delivery.intact == 2, str(delivery)


# ---------------------------------------------------------------- settings

BAD_SETTINGS = [
    ("CDH_PART_SIZE", "-8MiB"), ("CDH_UPLOAD_CONCURRENCY", "two"), ("CDH_USE_INOTIFY", "maybe"),
    ("CDH_COMPRESSION", "gzip"), ("CDH_S3_BUCKET", ""), ("CDH_RETRY_MIN", "-1s"),
    ("CDH_MAX_USE", "-1GiB"), ("CDH_KEEP_FREE", "150%"), ("CDH_RATE_LIMIT", "many"),
    ("CDH_COMPOSER_TIMEOUT", "0"), ("CDH_HOST_DIR", "relative/dir"), ("INTERVAL", "-5"),
    ("COMP_COMPRESSION", "perhaps"), ("CDH_LOG_LINES", "1e9"), ("CDH_METRICS_PORT", "70000"),
    ("CDH_S3_ENDPOINT", "ftp://x"), ("CDH_FILENAME_TEMPLATE", "{uuid}/{secret}"),
    ("CDH_MULTIPART_THRESHOLD", "1.5.5MiB"), ("CDH_TYPO_SETTING", "1"),
]


@pytest.mark.parametrize(("name", "value"), BAD_SETTINGS)
def test_a_bad_setting_is_one_line_naming_it(tmp_path, s3_server, bucket, name, value, figures):
    env = {k: v for k, v in s3_server.cdh_env(bucket).items()}
    env.update({"PYTHONPATH": str(REPO), "CDH_HOST_DIR": str(tmp_path), "CDH_METRICS_PORT": "0", name: value})
    # The bucket is the agent's alone to need; every other value is checked by every command.
    for command in (["agent"],) if name == "CDH_S3_BUCKET" else (["agent"], ["config"], ["install"]):
        out = subprocess.run([sys.executable, "-m", "cdh", *command], env=env, capture_output=True,
                             text=True, timeout=60, cwd="/")
        lines = out.stderr.splitlines()
        assert out.returncode == 3 and len(lines) == 1 and name in lines[0], (command, out.stderr)
        assert "Traceback" not in out.stderr
    figures.case()
    figures.faults(1)


def test_bad_settings_in_composer_env_never_cost_a_core(tmp_path, figures):
    """The composer meets them in composer.env (a hand edit, an older agent): logged, defaults used."""
    host = tmp_path / "host"
    host.mkdir()
    composer_names = {"CDH_COMPRESSION", "CDH_MAX_USE", "CDH_KEEP_FREE", "CDH_RATE_LIMIT",
                      "CDH_COMPOSER_TIMEOUT", "COMP_COMPRESSION", "CDH_LOG_LINES", "CDH_FILENAME_TEMPLATE",
                      "CDH_TYPO_SETTING"}
    bad = [(n, v) for n, v in BAD_SETTINGS if n in composer_names]
    env_file = tmp_path / "composer.env"
    env_file.write_text("".join(f"{n}={json.dumps(v)}\n" for n, v in bad))
    core = os.urandom(100_000)
    r = run_composer(host, core=core, env={"CDH_COMPOSER_ENV": str(env_file)})
    assert r.rc == 0 and r.read(".core") == core
    errors = " ".join(line["error"] for line in r.log if line["event"] == "config.invalid")
    assert all(n in errors for n, _ in bad), errors
    r.zip_path.unlink()
    env_file.write_bytes(b'CDH_COMPRESSION="none"\nCDH_FILENAME_TEMPLATE="\xff\xfe{uuid}"\n')  # not UTF-8
    r = run_composer(host, core=core, env={"CDH_COMPOSER_ENV": str(env_file)})
    assert r.rc == 0 and r.read(".core") == core
    assert any("not UTF-8" in line.get("error", "") for line in r.log)
    figures.case(2)
    figures.faults(len(bad) + 1)
    figures.captured(2)
