"""Load: a crash storm of 64 real 64 MiB crashes at once (up to kernel.core_pipe_limit), and a
crash-looping pod against the per-container rate limit, with its default. Real kernel, real agent.
"""

from __future__ import annotations

import os
import uuid as uuidlib
from pathlib import Path

from tests.reliability import ledger
from tests.reliability.node import enter
from tests.support.agentproc import wait_until

STORM = 64            # crashes at once; kernel.core_pipe_limit is set to exactly this
CORE_MIB = 64
COMPOSER_RSS_BOUND_KIB = 64 << 10  # each composer's peak (VmHWM), whatever the core's size
LOOP = 8              # crashes of one crash-looping pod


def _resident_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def test_a_storm_of_64_crashes_of_64_mib(node, s3_server, s3, bucket, start_agent, figures):
    agent = start_agent(node.agent_env(s3_server.agent_env(bucket), CDH_CORE_PIPE_LIMIT=str(STORM),
                                       CDH_UPLOAD_CONCURRENCY="4"))
    agent.wait_event("agent.started")
    go = node.host_dir / "go"
    # 64 pods (the default rate limit counts per pod), each process holding 64 MiB, then all at once.
    crashers = [node.start_crash("big", str(CORE_MIB), "wait", str(go), preexec=enter(node.pod_cgroup()))
                for _ in range(STORM)]
    wait_until(lambda: all(_resident_kib(p.pid) >= CORE_MIB << 10 for p in crashers), timeout=120,
               what=f"{STORM} processes holding {CORE_MIB} MiB")
    go.touch()
    assert sorted(p.wait(timeout=300) for p in crashers) == [-11] * STORM  # every one released
    done = node.wait_done(STORM, timeout=300)
    wait_until(lambda: node.zips() == [] and not node.parts(), timeout=300, what="every zip uploaded")
    agent.check_alive()
    assert {d["truncated"] for d in done} == {None}
    assert min(d["core_size"] for d in done) >= CORE_MIB << 20
    peak = max(d["max_rss_kib"] for d in done)
    delivery = ledger.check(s3, bucket, ledger.from_composer(done))
    figures.case()
    figures.faults(STORM)
    figures.captured(len(done))
    figures.delivered(delivery.intact, delivery.lost_bytes)
    figures.note(f"storm: {STORM} x {CORE_MIB} MiB at once, core_pipe_limit {STORM}: {len(done)} captured, "
                 f"composer peak RSS {peak / 1024:.1f} MiB (bound {COMPOSER_RSS_BOUND_KIB >> 10} MiB), "
                 f"{sum(d['core_size'] for d in done) >> 20} MiB of cores")
    assert len(done) == STORM and delivery.intact == STORM, str(delivery)
    assert peak < COMPOSER_RSS_BOUND_KIB


def test_a_crash_looping_pod_is_rate_limited_with_the_default(node, s3_server, s3, bucket, start_agent,
                                                              figures):
    agent = start_agent(node.agent_env(s3_server.agent_env(bucket)))  # CDH_RATE_LIMIT: its default, 5/10m
    agent.wait_event("agent.started")
    pod = str(uuidlib.uuid4())
    for _ in range(LOOP):  # the kubelet restarts the container: a new container id every time
        node.crash("big", "4", preexec=enter(node.pod_cgroup(pod_uid=pod)))
    node.crash("segv", preexec=enter(node.pod_cgroup()))  # another pod crashes meanwhile
    done = node.wait_done(6)
    skipped = wait_until(lambda: len(node.events("compose.rate_limited")) >= LOOP - 5 and
                         node.events("compose.rate_limited"), timeout=30, what="the skipped crashes")
    wait_until(lambda: node.zips() == [], timeout=60, what="the captured ones uploaded")
    assert len(done) == 6 and len(skipped) == LOOP - 5 and not node.parts()
    assert all(s["key"].startswith(f"pod:{pod}:") and "CDH_RATE_LIMIT 5/10m" in s["reason"] for s in skipped)
    assert all(s["level"] == "warning" for s in skipped)
    cores_on_disk = sum(os.path.getsize(p) for p in node.core_dir.iterdir())
    delivery = ledger.check(s3, bucket, ledger.from_composer(done))
    figures.case()
    figures.faults(LOOP + 1)
    figures.captured(len(done))
    figures.delivered(delivery.intact, delivery.lost_bytes)
    figures.note(f"crash loop: {LOOP} crashes of one pod, {LOOP - len(skipped)} captured, {len(skipped)} "
                 f"skipped (compose.rate_limited) with nothing written, another pod unaffected")
    assert delivery.intact == 6 and cores_on_disk == 0, str(delivery)
