"""Real crashes in pods of three namespaces of a real containerd, each zip routed (CDH_ROUTES_FILE) to
its team's bucket on a real SeaweedFS that gives each of three key pairs its own buckets only; one
team's cores encrypted to that team's age key (README "Routes")."""

from __future__ import annotations

import shutil
from pathlib import Path

from cdh import agecrypt, keys
from tests.runtime.images import CRASHERS
from tests.support.agekeys import keypair
from tests.support.agentproc import run_sweep
from tests.support.require import require
from tests.support.tenants import TEAM, age_decrypt, agent_env, client, denied, objects, team_routes
from tests.support.zips import next_zip


def crash_into_zip(crasher, settings, seen: set[str]) -> Path:
    """Crash ``crasher``; the new zip the composer finished in CORE_DIR."""
    crasher.wait_logged()
    crasher.trigger_crash()
    path = next_zip(settings, seen)
    crasher.wait_exited()
    return path


def test_real_crashes_from_three_namespaces_each_in_its_teams_bucket(installed, node, tenant_store, tmp_path):
    require(shutil.which("age") is not None, "age (Debian's age) opens what cdh encrypted")
    n = 0
    ident_a, rcpt_a = keypair(tmp_path, "team-a")
    ident_b, _ = keypair(tmp_path, "team-b")
    image = node.images[CRASHERS[0]]
    crashers = {ns: node.kubelet.crasher(node.kubelet.run_pod(f"{ns}-app-0", ns), "app", image.name)
                for ns in ("team-a", "team-b", "shop")}
    core_dir, seen = Path(installed.core_dir), set()
    zips = {ns: crash_into_zip(c, installed, seen) for ns, c in crashers.items()}
    plain = {ns: z.read_bytes() for ns, z in zips.items()}
    routes = tmp_path / "routes.yaml"
    routes.write_text(team_routes(tmp_path, n, rcpt_a))
    env = agent_env(tenant_store, tmp_path, n, str(routes), CDH_HOST_DIR=installed.host_dir)
    swept = run_sweep(env)
    assert swept.returncode == 0, swept.stderr + swept.stdout
    assert not list(core_dir.iterdir()), "every zip sent and deleted, no encrypted copy left"

    in_a, in_b, in_main = (objects(tenant_store, TEAM[t].bucket(n)) for t in ("team-a", "team-b", "main"))
    a_key, b_key = f"cores/{zips['team-a'].name}.age", f"team-b/team-b-app-0/{zips['team-b'].name}"
    assert list(in_a) == [a_key] and list(in_b) == [b_key] and list(in_main) == [zips["shop"].name]
    for ns, found in (("team-a", in_a), ("team-b", in_b), ("shop", in_main)):
        (meta,) = found.values()
        assert meta["namespace"] == ns and meta["pod"] == f"{ns}-app-0"
    assert in_a[a_key][keys.RECIPIENTS] == agecrypt.fingerprint(rcpt_a)
    a = client(tenant_store, "team-a")
    body = a.get_object(Bucket=TEAM["team-a"].bucket(n), Key=a_key)["Body"].read()
    assert age_decrypt(ident_a, body) == plain["team-a"] and age_decrypt(ident_b, body) is None
    assert client(tenant_store, "team-b").get_object(Bucket=TEAM["team-b"].bucket(n),
                                                     Key=b_key)["Body"].read() == plain["team-b"]
    for other in ("team-a", "main"):
        s3 = client(tenant_store, other)
        assert denied(lambda s3=s3: s3.get_object(Bucket=TEAM["team-b"].bucket(n), Key=b_key)), other
