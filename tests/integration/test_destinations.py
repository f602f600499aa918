"""Every kind of destination end to end: `cdh agent`, `cdh sweep`, `cdh ls`, `cdh get` and `cdh inspect`
against S3 (moto_server), Azure Blob Storage (Azurite) and Cloud Storage (fake-gcs-server), each a real
process on loopback, read back with that service's own client (boto3, the Azure SDK, plain JSON API
calls), never cdh's. Each test runs once per kind (the ``store`` fixture)."""

from __future__ import annotations

import hashlib
import json
import signal

import pytest

from tests.support.agentproc import base_env, run_sweep, wait_until
from tests.support.cli import run_cdh
from tests.support.s3server import list_keys, object_sha256, pending_uploads, plain_key
from tests.support.zips import make_zip, zips_left

MiB = 1 << 20
SMALL_PARTS = {"CDH_MULTIPART_THRESHOLD": "5MiB", "CDH_PART_SIZE": "5MiB", "CDH_PART_CONCURRENCY": "3"}
VERIFIED = {"s3": "size+etag+crc32", "azblob": "size+etag+blocks+md5", "gs": "size+crc32c+generation"}


def env_for(tmp_path, store, **extra: str) -> dict[str, str]:
    """The agent's environment for ``store``, under the URL prefix ``cores/`` and a key template."""
    return base_env(tmp_path, store.agent_env(), **SMALL_PARTS,
                    CDH_DESTINATION=f"{store.kind}://{store.bucket}/cores",
                    CDH_S3_KEY_PREFIX="{namespace}/{node}/", **extra)


def stored(store) -> dict[str, str]:
    """Each object's key as the ``plain`` layout would name it (prefix + zip name) -> its real key."""
    return {plain_key(k): k for k in list_keys(store.client, store.bucket)}


def assert_intact(store, zips, prefix: str = "cores/shop/node-a/") -> None:
    keys = stored(store)
    assert sorted(keys) == sorted(prefix + z.filename for z in zips)
    for z in zips:
        assert object_sha256(store.client, store.bucket, keys[prefix + z.filename]) == z.sha256, z.filename
    assert pending_uploads(store.client, store.bucket) == []


def test_the_agent_uploads_to_every_kind(tmp_path, store, start_agent):
    core_dir = tmp_path / "host" / "cores"
    core_dir.mkdir(parents=True, mode=0o700)
    agent = start_agent(env_for(tmp_path, store, CDH_UPLOAD_CONCURRENCY="2"))
    agent.wait_event("agent.started")
    assert agent.events("storage.ok")
    zips = [make_zip(core_dir, n) for n in (10, 70_000, 5 * MiB - 200, 12 * MiB + 3)]
    done = agent.wait_event("upload.done", count=len(zips), timeout=120)
    wait_until(lambda: zips_left(core_dir) == [], what="every zip deleted")
    assert_intact(store, zips)
    assert {e["verified"] for e in done} == {VERIFIED[store.kind]}
    assert {e["kind"] for e in done} == {store.kind}
    key = stored(store)["cores/shop/node-a/" + zips[0].filename]
    head = store.client.head_object(Bucket=store.bucket, Key=key)
    meta = {k.lower(): v for k, v in head["Metadata"].items()}
    assert meta["namespace"] == "shop" and meta["pod"] == zips[0].info["podname"] and meta["signal"] == "11"
    assert meta["uuid"] == zips[0].info["uuid"] and meta["node"] == "node-a"
    url = next(e["url"] for e in done if e["key"] == key)
    assert url.endswith(key) and (store.kind == "azblob" or url.startswith(("s3://", "gs://", "http")))
    agent.signal(signal.SIGTERM)
    assert agent.wait(30) == 0


def test_sweep_then_ls_get_inspect_on_every_kind(tmp_path, store):
    env = env_for(tmp_path, store)
    core_dir = tmp_path / "host" / "cores"
    core_dir.mkdir(parents=True, mode=0o700)
    sig = "1-0123456789abcdef"
    zips = [make_zip(core_dir, 6 * MiB + 1, namespace="shop", podname="cart-1", signature=sig,
                     top_frame="cart!apply_coupon"),
            make_zip(core_dir, 3000, namespace="ops", podname="mon-0")]
    done = run_sweep(env)
    assert done.returncode == 0, done.stderr + done.stdout
    assert zips_left(core_dir) == []

    listed = run_cdh("ls", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    rows = {r["pod"]: r for r in json.loads(listed.stdout)}
    keys = stored(store)
    assert set(rows) == {"cart-1", "mon-0"} and rows["cart-1"]["namespace"] == "shop"
    assert rows["cart-1"]["key"] == keys["cores/shop/node-a/" + zips[0].filename]
    assert rows["cart-1"]["size"] == zips[0].size and rows["cart-1"]["signal_name"] == "SIGSEGV"
    only = run_cdh("ls", "--json", "--namespace", "ops", env=env)
    assert [r["pod"] for r in json.loads(only.stdout)] == ["mon-0"]
    # the signature and top frame in each kind's metadata (Azure's names cannot hold '-': top_frame)
    assert (rows["cart-1"]["signature"], rows["cart-1"]["top_frame"]) == (sig, "cart!apply_coupon")
    groups = json.loads(run_cdh("ls", "--json", "--group", env=env).stdout)
    assert sorted((g["signature"] or "", g["count"]) for g in groups) == [("", 1), (sig, 1)]
    same = run_cdh("ls", "--json", "--signature", sig, env=env)
    assert [r["pod"] for r in json.loads(same.stdout)] == ["cart-1"]

    out = tmp_path / "out"
    got = run_cdh("get", zips[0].info["uuid"], "-o", str(out), "--keep-zip", env=env)
    assert got.returncode == 0, got.stderr
    assert f"{store.kind}://{store.bucket}/{keys['cores/shop/node-a/' + zips[0].filename]}" in got.stdout
    assert hashlib.sha256((out / zips[0].filename).read_bytes()).hexdigest() == zips[0].sha256
    assert "verified: size" in got.stdout
    inspected = run_cdh("inspect", str(out / zips[0].name), env=env)
    assert inspected.returncode == 0, inspected.stderr
    assert "cart-1" in inspected.stdout

    by_url = run_cdh("get", f"{store.kind}://{store.bucket}/{keys['cores/ops/node-a/' + zips[1].filename]}",
                     "-o", str(tmp_path / "out2"), env=env)
    assert by_url.returncode == 0, by_url.stderr
    missing = run_cdh("get", "cores/nothing-here.zip", "-o", str(tmp_path / "out3"), env=env)
    assert missing.returncode == 1 and "no object" in missing.stderr


@pytest.mark.parametrize(("env", "named"), [
    ({"CDH_DESTINATION": "gcs://cores"}, "CDH_DESTINATION='gcs://cores' is not valid: s3://bucket[/prefix], gs://"),
    ({"CDH_DESTINATION": "azblob://Cores"}, "'Cores' is not an Azure container name"),
    ({"CDH_DESTINATION": "azblob://cores"}, "needs a storage account: set CDH_AZURE_ACCOUNT"),
    ({"CDH_DESTINATION": "azblob://cores", "AZURE_STORAGE_ACCOUNT": "My_Account"},
     "AZURE_STORAGE_ACCOUNT='My_Account' is not valid: 3-24 of a-z 0-9"),
    ({"CDH_DESTINATION": "gs://cores", "CDH_S3_BUCKET": "other"},
     "CDH_DESTINATION and CDH_S3_BUCKET name two destinations"),
    ({"CDH_DESTINATION": "s3://cores/{node}"}, "template variables go in CDH_S3_KEY_PREFIX"),
])
def test_settings_that_do_not_add_up_are_one_line(tmp_path, env, named):
    done = run_cdh("agent", env=base_env(tmp_path, {}, **env))
    assert done.returncode == 3
    assert named in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr


@pytest.mark.parametrize("store", ["azblob"], indirect=True)
def test_a_dead_azure_attempt_leaves_nothing_the_next_commit_keeps(tmp_path, store):
    """Blocks sent, the commit refused every time: the zip stays, the blob does not exist (its blocks are
    uncommitted, invisible); the next upload's commit discards them: no leftover, the object whole."""
    from tests.support.faultproxy import Rule

    core_dir = tmp_path / "host" / "cores"
    core_dir.mkdir(parents=True, mode=0o700)
    z = make_zip(core_dir, 11 * MiB)
    env = base_env(tmp_path, store.agent_env(proxied=True), **SMALL_PARTS)
    refused = store.proxy.add(Rule("error", method="PUT", path=r"comp=blocklist", status=500,
                                   code="InternalError"))
    assert run_sweep(env).returncode == 1
    assert refused.hits == 3 and zips_left(core_dir) == [z.filename]
    (left,) = store.view.leftovers()
    assert list_keys(store.client, store.bucket) == [] and plain_key(left) == z.filename
    store.proxy.clear()
    done = run_sweep(env)
    assert done.returncode == 0, done.stderr + done.stdout
    assert object_sha256(store.client, store.bucket, left) == z.sha256  # the same name: its blocks replaced
    assert store.view.leftovers() == []


@pytest.mark.parametrize("store", ["gs"], indirect=True)
def test_a_gcs_upload_that_gives_up_cancels_its_session(tmp_path, store):
    from tests.support.faultproxy import Rule

    core_dir = tmp_path / "host" / "cores"
    core_dir.mkdir(parents=True, mode=0o700)
    z = make_zip(core_dir, 3 * MiB)
    env = base_env(tmp_path, store.agent_env(proxied=True))
    store.proxy.add(Rule("error", method="PUT", path=r"upload_id=", status=503, code="backendError"))
    assert run_sweep(env).returncode == 1
    assert store.proxy.count("DELETE", r"upload_id=") >= 1  # the session cancelled
    assert list_keys(store.client, store.bucket) == [] and zips_left(core_dir) == [z.filename]
