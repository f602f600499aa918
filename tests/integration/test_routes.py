"""Each team's cores for that team only (CDH_ROUTES_FILE, cdh/routes.py), end to end: the agent, `cdh
get` and `cdh doctor` against a real SeaweedFS whose identities file gives each key pair its own buckets
(the server enforces it: moto does not), three buckets, three key pairs; one route encrypts to its
team's age recipient."""

from __future__ import annotations

import json
import os
import shutil
import signal
import textwrap
import zipfile
from pathlib import Path

import pytest

from cdh import agecrypt, keys
from tests.support.agekeys import keypair
from tests.support.agentproc import SMALL_PARTS, base_env, run_sweep, wait_until
from tests.support.apiserver import FakeApiServer
from tests.support.cli import run_cdh
from tests.support.faultproxy import FaultProxy, Rule
from tests.support.projected import ConfigMapVolume
from tests.support.require import require
from tests.support.s3server import free_port
from tests.support.scrape import scrape
from tests.support.tenants import (
    TEAM,
    TEAMS,
    age_decrypt,
    client,
    denied,
    flow,
    objects,
    secret_dir,
    team_routes,
)
from tests.support.tenants import agent_env as tenants_env
from tests.support.zips import make_zip


@pytest.fixture
def weed(tenant_store):
    return tenant_store


@pytest.fixture
def api(tmp_path):
    with FakeApiServer(tmp_path / "api") as server:
        yield server


def agent_env(weed, tmp_path, n: int, routes_file: str) -> dict[str, str]:
    return tenants_env(weed, tmp_path, n, routes_file, **SMALL_PARTS)


def test_each_bucket_holds_only_its_teams_cores_and_only_the_team_opens_them(weed, tmp_path, start_agent,
                                                                            core_dir, api):
    """Also: the Events stay on each crashed pod, in its team's namespace; metrics count by route."""
    require(shutil.which("age") is not None, "age (Debian's age) opens what cdh encrypted")
    n = 0
    ident_a, rcpt_a = keypair(tmp_path, "team-a")
    ident_b, _ = keypair(tmp_path, "team-b")
    routes = tmp_path / "routes.yaml"
    routes.write_text(team_routes(tmp_path, n, rcpt_a))
    port = free_port()
    big_a = make_zip(core_dir, 7 << 20, namespace="team-a", podname="api-1")  # multipart: SMALL_PARTS
    plain_a = Path(big_a.path).read_bytes()
    small_a = make_zip(core_dir, 4096, namespace="team-a-dev", podname="api-dev-1")
    b = make_zip(core_dir, 4096, namespace="team-b", podname="web-1")
    shop = make_zip(core_dir, 4096, namespace="shop", podname="cart-1")
    host = make_zip(core_dir, 4096, namespace=None, podname=None)  # a host process: no namespace
    agent = start_agent({**agent_env(weed, tmp_path, n, str(routes)), "CDH_K8S_EVENTS": "true",
                         "CDH_METRICS_PORT": str(port), **api.agent_env()})
    done = agent.wait_event("upload.done", count=5, timeout=120)
    wait_until(lambda: len(api.events) == 8, what="Events for the four crashes in pods")
    metrics = scrape(port)
    assert {(d["file"].rsplit("/", 1)[-1], d["route"]) for d in done} == {
        (big_a.filename, "team-a"), (small_a.filename, "team-a"), (b.filename, "team-b"),
        (shop.filename, "main"), (host.filename, "main")}
    assert all(d["encrypted"] == (d["route"] == "team-a") for d in done)
    wait_until(lambda: not os.listdir(core_dir), what="CORE_DIR empty: every zip and staged copy gone")

    # The Events stay on each crashed pod (the host process has none), naming where its core went.
    uploaded = {e["regarding"]["name"]: e for e in api.events if e["reason"] == "CoreDumpUploaded"}
    assert {e["metadata"]["namespace"] for e in api.events} == {"team-a", "team-a-dev", "team-b", "shop"}
    in_a = objects(weed, TEAM["team-a"].bucket(n))
    url = f"{weed.url}/{TEAM['team-a'].bucket(n)}/{in_a.key(f'cores/{big_a.filename}.age')}"
    assert uploaded["api-1"]["metadata"]["namespace"] == "team-a"
    assert uploaded["api-1"]["metadata"]["annotations"]["cdh.io/object-url"] == url
    assert metrics.value("cdh_uploads_succeeded_total", route="team-a", kind="s3") == 2
    assert metrics.value("cdh_uploads_succeeded_total", route="team-b", kind="s3") == 1
    assert metrics.value("cdh_uploads_succeeded_total", route="main", kind="s3") == 2
    assert metrics.value("cdh_storage_reachable", route="team-a") == 1

    # Each bucket holds its namespaces' cores, and nothing else.
    in_a, in_b, in_main = (objects(weed, TEAM[t].bucket(n)) for t in TEAMS[1:] + TEAMS[:1])
    assert sorted(in_a) == sorted(f"cores/{z.filename}.age" for z in (big_a, small_a))
    assert list(in_b) == [f"team-b/web-1/{b.filename}"]
    assert sorted(in_main) == sorted([shop.filename, host.filename])
    assert {m["namespace"] for m in in_a.values()} == {"team-a", "team-a-dev"}
    for meta in in_a.values():
        assert meta[keys.ENCRYPTION] == "age" and meta[keys.RECIPIENTS] == agecrypt.fingerprint(rcpt_a)
        assert meta[keys.ROUTE] == "team-a" and meta["pod"].startswith("api")  # still listable
    assert in_b[f"team-b/web-1/{b.filename}"][keys.ROUTE] == "team-b"
    assert keys.ROUTE not in in_main[shop.filename]

    # The server keeps each team's keys to its own bucket.
    for team in TEAMS:
        for other in TEAMS:
            if other != team:
                s3 = client(weed, team)
                bucket = TEAM[other].bucket(n)
                assert denied(lambda s3=s3, bucket=bucket: s3.list_objects_v2(Bucket=bucket)), (team, other)
    some_a = in_a.key(next(iter(in_a)))
    assert denied(lambda: client(weed, "main").get_object(Bucket=TEAM["team-a"].bucket(n), Key=some_a))

    # Team A's object opens with team A's identity only (age's CLI), byte for byte the zip.
    body = client(weed, "team-a").get_object(Bucket=TEAM["team-a"].bucket(n),
                                             Key=in_a.key(f"cores/{big_a.filename}.age"))["Body"].read()
    assert body.startswith(b"age-encryption.org/v1\n") and plain_a not in body
    assert age_decrypt(ident_a, body) == plain_a
    assert age_decrypt(ident_b, body) is None

    # cdh ls and get, as team A runs them with its own keys: the list from metadata; get with no
    # identity, a wrong one, then its own.
    env = {**weed.cdh_env(TEAM["team-a"].bucket(n)), "CDH_S3_ACCESS_KEY": TEAM["team-a"].access_key,
           "CDH_S3_SECRET_KEY": TEAM["team-a"].secret_key}
    listed = run_cdh("ls", "--json", "--prefix", "cores/", env=env)
    assert listed.returncode == 0, listed.stderr
    dumps = {d["uuid"]: d for d in json.loads(listed.stdout)}
    assert dumps.keys() == {big_a.info["uuid"], small_a.info["uuid"]}
    assert dumps[big_a.info["uuid"]]["pod"] == "api-1"
    assert dumps[big_a.info["uuid"]]["encrypted_to"] == [agecrypt.fingerprint(rcpt_a)]
    uuid, out = big_a.info["uuid"], tmp_path / "got"
    got = run_cdh("get", uuid, "--prefix", "cores/", "-o", str(out), env=env)
    assert got.returncode != 0 and agecrypt.fingerprint(rcpt_a) in got.stderr and "-i" in got.stderr
    assert "route team-a" in got.stderr and (not out.exists() or not os.listdir(out))
    got = run_cdh("get", uuid, "--prefix", "cores/", "-o", str(out), "-i", ident_b, env=env)
    assert got.returncode != 0 and "none of the identities given" in got.stderr
    assert agecrypt.identity_fingerprints(agecrypt.read_identities(ident_b))[0] in got.stderr
    got = run_cdh("get", uuid, "--prefix", "cores/", "-o", str(out), "-i", ident_a, "--keep-zip", env=env)
    assert got.returncode == 0, got.stderr
    assert "age: decrypted, every chunk authenticated" in got.stdout
    assert (out / big_a.filename).read_bytes() == plain_a
    assert sorted(os.listdir(out)) == sorted([big_a.filename, big_a.name])  # no .age left behind
    with zipfile.ZipFile(out / big_a.filename) as zf:
        assert zf.testzip() is None

    # What the agent said names routes, never a key, a secret or an identity.
    said = agent.text() + (agent.proc.stderr.read().decode() if agent.proc.poll() is not None else "")
    said += str(api.events)
    for secret in (TEAM["team-a"].secret_key, TEAM["team-b"].secret_key, TEAM["main"].secret_key,
                   Path(ident_a).read_text().splitlines()[-1]):
        assert secret not in said
    assert agent.events("routes.loaded")[0]["routes"][0].startswith("route team-a: team-a, team-a-* ->")
    ok = {line["route"] for line in agent.events("storage.ok")}
    assert ok == {"main", "team-a", "team-b"}


def test_doctor_checks_every_routes_bucket_with_its_own_keys(weed, tmp_path):
    n = 1
    routes = tmp_path / "routes.yaml"
    a, b = secret_dir(tmp_path, "team-a"), secret_dir(tmp_path, "team-b")
    routes.write_text("routes:\n" + flow("team-a", "team-a", TEAM["team-a"].bucket(n), a)
                      + flow("team-b", "team-b", TEAM["team-a"].bucket(n), b))
    env = agent_env(weed, tmp_path, n, str(routes))
    got = run_cdh("doctor", "--json", env=env)

    checks = {c["name"]: c for c in json.loads(got.stdout)["checks"]}
    assert checks["routes"]["status"] == "pass" and "2 routes" in checks["routes"]["detail"]
    assert checks["bucket"]["status"] == "pass"
    assert checks["bucket team-a"]["status"] == "pass" and str(a) in checks["bucket team-a"]["detail"]
    # team-b's route names team A's bucket: its keys are refused there, and doctor says so.
    assert checks["bucket team-b"]["status"] == "fail" and "AccessDenied" in checks["bucket team-b"]["detail"]
    assert "route team-b" in checks["bucket team-b"]["hint"]
    routes.write_text(routes.read_text().replace(str(b), str(tmp_path / "missing")))
    got = run_cdh("doctor", "--json", env=env)
    checks = {c["name"]: c for c in json.loads(got.stdout)["checks"]}
    assert checks["routes"]["status"] == "fail" and f"{tmp_path / 'missing'}: no such directory" in \
        checks["routes"]["detail"]


def test_reload_routes_each_waiting_zip_by_the_routes_in_force_then(weed, tmp_path, start_agent, core_dir):
    """A route changed, one removed, one added, and a bad file in between, while zips wait: each goes
    where the routes in force at its upload say, and none is lost."""
    n = 2
    ident_a, rcpt_a = keypair(tmp_path, "team-a")
    sa, sb = secret_dir(tmp_path, "team-a"), secret_dir(tmp_path, "team-b")
    volume = ConfigMapVolume(tmp_path / "routes", name="routes.yaml")
    # v1: team-a's route names the main bucket and team-b's team A's: their keys are refused, so their
    # zips wait (retried); nothing routes shop, and the default keeps it on the node.
    volume.write("routes:\n" + flow("team-a", "team-a", TEAM["main"].bucket(n), sa)
                 + flow("team-b", "team-b", TEAM["team-a"].bucket(n), sb) + "default: keep\n")
    za = make_zip(core_dir, 4096, namespace="team-a")
    zb = make_zip(core_dir, 4096, namespace="team-b")
    zs = make_zip(core_dir, 4096, namespace="shop")
    agent = start_agent(agent_env(weed, tmp_path, n, volume.path))
    agent.wait_event("upload.kept")
    wait_until(lambda: {e["route"] for e in agent.events("upload.denied")} == {"team-a", "team-b"},
               what="both misrouted zips refused by the server")
    assert agent.events("upload.kept")[0]["namespace"] == "shop"

    # A file naming a Secret that is not mounted is refused as a whole: the routes stay as they were.
    volume.write(Path(volume.path).read_text().replace(str(sb), str(tmp_path / "nope")))
    [rejected] = agent.wait_event("config.rejected")
    assert f"{tmp_path / 'nope'}: no such directory" in rejected["error"]
    assert "routes.yaml:3: routes[1].credentials" in rejected["error"]
    denials = len(agent.events("upload.denied"))
    wait_until(lambda: len(agent.events("upload.denied")) > denials, what="still retried on the old routes")
    assert not agent.events("upload.done")

    # v2: team-a's route changed (its own bucket, encrypted), team-b's removed (its zip to the default,
    # now main), one added for shop (team B's bucket, with team B's keys).
    volume.write(textwrap.dedent(f"""\
        routes:
          - name: team-a
            namespaces: [team-a]
            destination: s3://{TEAM['team-a'].bucket(n)}
            credentials: {sa}
            recipients: [{rcpt_a}]
        """) + flow("shop", "shop", TEAM["team-b"].bucket(n), sb) + "default: main\n")
    agent.wait_event("config.reloaded")
    done = {d["file"].rsplit("/", 1)[-1]: d["route"]
            for d in agent.wait_event("upload.done", count=3, timeout=60)}
    assert done == {za.filename: "team-a", zb.filename: "main", zs.filename: "shop"}
    wait_until(lambda: not os.listdir(core_dir), what="nothing left on the node")
    in_a = objects(weed, TEAM["team-a"].bucket(n))
    assert list(in_a) == [za.filename + ".age"]
    assert list(objects(weed, TEAM["main"].bucket(n))) == [zb.filename]
    assert list(objects(weed, TEAM["team-b"].bucket(n))) == [zs.filename]
    key = in_a.key(za.filename + ".age")
    body = client(weed, "team-a").get_object(Bucket=TEAM["team-a"].bucket(n), Key=key)
    out = tmp_path / "za.zip"
    (tmp_path / "za.age").write_bytes(body["Body"].read())
    agecrypt.decrypt(str(tmp_path / "za.age"), str(out), agecrypt.read_identities(ident_a))
    assert out.read_bytes()[:2] == b"PK" and out.stat().st_size == za.size

    # A new version of a route's Secret (keys rotated) reloads the agent too.
    secret_dir(tmp_path, "team-a", end="")  # the same keys, written anew
    agent.wait_event("config.reloaded", count=2)


def test_a_staged_copy_left_by_a_killed_agent_is_cleaned_and_the_zip_still_goes(weed, tmp_path,
                                                                                start_agent, core_dir):
    n = 3
    ident_a, rcpt_a = keypair(tmp_path, "team-a")
    with FaultProxy(weed.url) as proxy:
        routes = tmp_path / "routes.yaml"
        routes.write_text(textwrap.dedent(f"""\
            routes:
              - name: team-a
                namespaces: [team-a]
                destination: s3://{TEAM['team-a'].bucket(n)}
                endpoint: {proxy.url}
                credentials: {secret_dir(tmp_path, 'team-a')}
                recipients: [{rcpt_a}]
            """))
        stall = Rule("stall", method="PUT", path=rf"/{TEAM['team-a'].bucket(n)}/")
        proxy.add(stall)
        z = make_zip(core_dir, 7 << 20, namespace="team-a")
        plain = Path(z.path).read_bytes()
        staged = core_dir / f".{z.filename}.age"
        env = agent_env(weed, tmp_path, n, str(routes))
        agent = start_agent(env)
        wait_until(lambda: stall.hits > 0, what="the encrypted copy's upload held by the proxy")
        assert staged.exists() and staged.stat().st_size == agecrypt.payload_size(z.size) + \
            agecrypt.header_size(staged.read_bytes()[:agecrypt.HEADER_MAX])
        agent.proc.send_signal(signal.SIGKILL)
        agent.proc.wait()
        old = staged.stat().st_mtime - 3600
        os.utime(staged, (old, old))  # as if killed long ago: past the janitor's grace
        proxy.rules.clear()
        stall.released.set()
        again = start_agent(env)
        [done] = again.wait_event("upload.done", timeout=60)
        assert done["route"] == "team-a" and done["encrypted"]
        wait_until(lambda: not os.listdir(core_dir), what="the zip and every staged copy gone")
    key = objects(weed, TEAM["team-a"].bucket(n)).key(z.filename + ".age")
    body = client(weed, "team-a").get_object(Bucket=TEAM["team-a"].bucket(n), Key=key)
    (tmp_path / "z.age").write_bytes(body["Body"].read())
    agecrypt.decrypt(str(tmp_path / "z.age"), str(tmp_path / "z.zip"), agecrypt.read_identities(ident_a))
    assert (tmp_path / "z.zip").read_bytes() == plain


def test_sweep_keeps_and_drops_as_the_routes_say_with_no_main_bucket(tmp_path, core_dir):
    routes = tmp_path / "routes.yaml"
    routes.write_text("routes: []\ndefault: drop\nunknown: keep\n")
    dropped = make_zip(core_dir, 4096, namespace="shop")
    kept = make_zip(core_dir, 4096, namespace=None)
    env = base_env(tmp_path, {}, CDH_ROUTES_FILE=str(routes))  # no CDH_S3_BUCKET: nothing goes there
    got = run_sweep(env)
    assert got.returncode == 0, got.stderr
    assert os.listdir(core_dir) == [kept.filename]
    lines = [json.loads(line) for line in got.stdout.splitlines()]
    [drop] = [ln for ln in lines if ln["event"] == "upload.dropped"]
    assert drop["file"] == dropped.path
    [keep] = [ln for ln in lines if ln["event"] == "upload.kept"]
    assert drop["namespace"] == "shop" and "default: in CDH_ROUTES_FILE" in drop["reason"]
    assert keep["namespace"] is None and "unknown: in CDH_ROUTES_FILE" in keep["reason"]
    [done] = [ln for ln in lines if ln["event"] == "sweep.done"]
    assert (done["uploaded"], done["kept"], done["dropped"], done["failed"]) == (0, 1, 1, 0)
    routes.write_text("routes: []\ndefault: main\n")
    got = run_sweep(env)
    assert got.returncode == 3 and "CDH_DESTINATION (or CDH_S3_BUCKET), which is not set" in got.stderr
    assert got.stderr.count("\n") == 1
