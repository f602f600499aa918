"""`cdh ls` and `cdh get` against a real S3 server process (moto and SeaweedFS on loopback).

Dumps are uploaded the way the agent uploads them (key prefix + the key layout, object
metadata from dump-info): in the listing layout (today's agent) and as plain zip names (older
agents, IBM's), side by side in one bucket; the tools run as real `cdh` processes.
"""

from __future__ import annotations

import json
import os
import time
import zipfile
from urllib.parse import unquote

import pytest

from cdh import keys
from tests.support import dumpbuild
from tests.support.cli import run_cdh
from tests.support.faultproxy import FaultProxy
from tests.support.s3server import put_dump

NOW = int(time.time())
HOUR = 3600


def _put(server, bucket, tmp_path, prefix="", compression="deflate", core=None, part_sizes=None,
         layout="plain", **info):
    core = os.urandom(4096) if core is None else core
    path, meta = dumpbuild.build(tmp_path, core, compression=compression, **info)
    key = keys.object_key(prefix, meta, meta.get("node_hostname"), keys.crash_time(meta, NOW), path.name,
                          layout)
    put_dump(server.client(), bucket, key, path, meta, part_sizes=part_sizes)
    return key, meta, path


@pytest.fixture(scope="module")
def listed(s3_server, tmp_path_factory):
    """A bucket with four dumps across namespaces, pods, nodes and times, two in each key layout."""
    tmp = tmp_path_factory.mktemp("dumps")
    bucket = s3_server.create_bucket()
    specs = [
        dict(namespace="default", podname="web-0", hostname="web-0", node_hostname="node-1",
             timestamp=NOW - 3 * HOUR, signal=11, exe="web"),
        dict(namespace="default", podname="web-1", hostname="web-1", node_hostname="node-2",
             timestamp=NOW - 1 * HOUR, signal=6, exe="web", layout="listing"),
        dict(namespace="payments", podname="ledger-7f9c", hostname="ledger-7f9c", node_hostname="node-1",
             timestamp=NOW - 10 * 60, signal=7, exe="ledger", container="ledger", layout="listing"),
        dict(namespace="kube-system", podname="proxy-x", hostname="proxy-x", node_hostname="node-3",
             timestamp=NOW - 30 * HOUR, signal=4, exe="proxy"),
    ]
    dumps = [_put(s3_server, bucket, tmp, **s) for s in specs]
    return bucket, dumps


def _ls(server, bucket, *args, **env):
    r = run_cdh("ls", "--json", *args, env=server.cdh_env(bucket, **env))
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_ls_lists_newest_first_from_key_or_metadata(s3_server, listed):
    bucket, dumps = listed
    rows = _ls(s3_server, bucket)
    assert [r["pod"] for r in rows] == ["ledger-7f9c", "web-1", "web-0", "proxy-x"]
    ledger = rows[0]
    assert ledger["namespace"] == "payments" and ledger["container"] == "ledger"
    assert ledger["node"] == "node-1" and ledger["exe"] == "ledger"
    assert ledger["signal"] == 7 and ledger["signal_name"] == "SIGBUS"
    assert ledger["time"] == NOW - 10 * 60
    assert ledger["uuid"] == dumps[2][1]["uuid"] and ledger["key"] == dumps[2][0]
    assert ledger["size"] == dumps[2][2].stat().st_size
    assert ledger["metadata"]["pod"] == "ledger-7f9c"  # --json keeps its shape for listed dumps
    web0 = rows[2]  # a plain key: from its metadata
    assert web0["namespace"] == "default" and web0["node"] == "node-1" and web0["signal_name"] == "SIGSEGV"


def test_ls_table_has_the_columns_people_read(s3_server, listed):
    bucket, dumps = listed
    r = run_cdh("ls", env=s3_server.cdh_env(bucket))
    assert r.returncode == 0, r.stderr
    header, *lines = r.stdout.splitlines()
    assert header.split() == ["TIME", "(UTC)", "NAMESPACE", "POD", "CONTAINER", "EXE", "SIGNAL", "SIZE",
                              "SIGNATURE", "KEY"]
    assert len(lines) == 4
    assert "payments" in lines[0] and "SIGBUS" in lines[0] and lines[0].endswith(dumps[2][0])
    assert time.strftime("%Y-%m-%d %H:%M", time.gmtime(NOW - 10 * 60)) in lines[0]


@pytest.mark.parametrize(("args", "pods"), [
    (["--namespace", "default"], ["web-1", "web-0"]),
    (["--pod", "web-*"], ["web-1", "web-0"]),
    (["--pod", "ledger-7f9c"], ["ledger-7f9c"]),
    (["--node", "node-1"], ["ledger-7f9c", "web-0"]),
    (["--since", "2h"], ["ledger-7f9c", "web-1"]),
    (["--since", time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(NOW - 2 * HOUR))], ["ledger-7f9c", "web-1"]),
    (["--namespace", "default", "--node", "node-2"], ["web-1"]),
    (["--namespace", "nope"], []),
    (["--limit", "1"], ["ledger-7f9c"]),
])
def test_ls_filters(s3_server, listed, args, pods):
    bucket, _ = listed
    assert [r["pod"] for r in _ls(s3_server, bucket, *args)] == pods


def test_ls_bad_since_is_a_usage_error(s3_server, listed):
    bucket, _ = listed
    r = run_cdh("ls", "--since", "yesterday-ish", env=s3_server.cdh_env(bucket))
    assert r.returncode == 2 and "--since 'yesterday-ish'" in r.stderr


def test_ls_without_a_bucket_says_which_setting(s3_server):
    env = s3_server.cdh_env("x")
    del env["CDH_S3_BUCKET"]
    r = run_cdh("ls", env=env)
    assert r.returncode == 3 and "CDH_S3_BUCKET" in r.stderr


def test_ls_of_a_missing_bucket_fails_in_one_line(s3_server):
    r = run_cdh("ls", env=s3_server.cdh_env("no-such-bucket-here"))
    assert r.returncode == 1
    assert r.stderr.strip().count("\n") == 0 and "NoSuchBucket" in r.stderr


def test_key_prefix_template_narrows_the_listing(s3_server, tmp_path):
    """With CDH_S3_KEY_PREFIX={node}/{namespace}/, --node lists only under node-1/."""
    bucket = s3_server.create_bucket()
    _put(s3_server, bucket, tmp_path, prefix="node-1/default/", podname="a", node_hostname="node-1")
    _put(s3_server, bucket, tmp_path, prefix="node-2/default/", podname="b", node_hostname="node-2")
    # A decoy outside the template's layout: only an unnarrowed listing can see it.
    _put(s3_server, bucket, tmp_path, prefix="elsewhere/", podname="decoy", node_hostname="node-1")
    tpl = {"CDH_S3_KEY_PREFIX": "{node}/{namespace}/"}
    assert sorted(r["pod"] for r in _ls(s3_server, bucket, **tpl)) == ["a", "b", "decoy"]
    assert [r["pod"] for r in _ls(s3_server, bucket, "--node", "node-1", **tpl)] == ["a"]
    # A glob cannot narrow the prefix: everything is listed, then filtered on metadata.
    globbed = _ls(s3_server, bucket, "--node", "node-*", **tpl)
    assert sorted(r["pod"] for r in globbed) == ["a", "b", "decoy"]
    assert [r["pod"] for r in _ls(s3_server, bucket, "--prefix", "elsewhere/")] == ["decoy"]


def test_since_narrows_a_dated_key_prefix(s3_server, tmp_path):
    bucket = s3_server.create_bucket()
    today = time.strftime("%Y-%m-%d", time.gmtime())
    _put(s3_server, bucket, tmp_path, prefix=f"{today}/", podname="today")
    _put(s3_server, bucket, tmp_path, prefix="2020-01-01/", podname="decoy")  # recent metadata, old prefix
    tpl = {"CDH_S3_KEY_PREFIX": "{date}/"}
    assert sorted(r["pod"] for r in _ls(s3_server, bucket, **tpl)) == ["decoy", "today"]
    assert [r["pod"] for r in _ls(s3_server, bucket, "--since", "1h", **tpl)] == ["today"]


def _get(server, bucket, wanted, out, *args):
    return run_cdh("get", wanted, "-o", str(out), *args, env=server.cdh_env(bucket))


@pytest.mark.parametrize("compression", ["deflate", "stored", "zstd"])
def test_get_by_key_verifies_and_unpacks(s3_server, tmp_path, compression):
    bucket = s3_server.create_bucket()
    core = os.urandom(300_000)
    key, info, path = _put(s3_server, bucket, tmp_path, prefix="node-1/", core=core,
                           compression=compression)
    out = tmp_path / "out"
    r = _get(s3_server, bucket, key, out)
    assert r.returncode == 0, r.stderr
    name = path.name.removesuffix(".zip")
    where = out / name
    assert (where / f"{name}.core").read_bytes() == core
    assert json.loads((where / f"{name}-dump-info.json").read_text())["uuid"] == info["uuid"]
    assert (where / f"{name}-0.log").read_text().startswith("starting app")
    assert (where / f"{name}-proc" / "cmdline").exists()
    assert not (out / path.name).exists(), "the zip is removed after unpacking unless --keep-zip"
    assert "ETag (MD5)" in r.stdout and "CRC-32 of 9 entries" in r.stdout
    assert f" -> {where}/\n" in r.stdout
    assert f"  core      {name}.core\n" in r.stdout and f"  log 0     {name}-0.log\n" in r.stdout
    assert f"  proc      {name}-proc/\n" in r.stdout
    assert f"next: cdh inspect {where}" in r.stdout
    assert f"downloading {path.name}" in r.stderr, "plain progress lines when not on a terminal"


def test_a_listed_key_of_long_pod_facts_is_stored_and_unpacked_under_the_zips_name(s3_server, tmp_path):
    """The listing layout's key carries the pod's facts, cut so that its last segment stays a valid
    file name (SeaweedFS and MinIO refuse a segment over 255 bytes); cdh get names its local files
    after the zip alone."""
    bucket = s3_server.create_bucket()
    long = "x" * 63
    key, _, path = _put(s3_server, bucket, tmp_path, layout="listing", namespace=long, podname=long,
                        container=long, node_hostname=long, exe="app", signal=11,
                        image="registry.example.com/" + long + ":v1")
    assert 200 < len(key.rsplit("/", 1)[-1].encode()) <= 255, key
    assert keys.parse_listed(key)["namespace"].startswith("xxxx")
    r = _get(s3_server, bucket, key, tmp_path / "out")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "out" / path.name.removesuffix(".zip")).is_dir()


def test_get_by_uuid_finds_the_dump_under_any_prefix(s3_server, tmp_path):
    bucket = s3_server.create_bucket()
    _put(s3_server, bucket, tmp_path, prefix="node-2/x/")
    key, info, path = _put(s3_server, bucket, tmp_path, prefix="node-1/default/")
    r = _get(s3_server, bucket, info["uuid"], tmp_path / "out", "--keep-zip")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(f"s3://{bucket}/{key} -> ")
    assert (tmp_path / "out" / path.name).read_bytes() == path.read_bytes()


def test_get_by_uuid_from_metadata_when_the_name_lacks_it(s3_server, tmp_path):
    bucket = s3_server.create_bucket()
    path, info = dumpbuild.build(tmp_path, os.urandom(1000))
    renamed = tmp_path / "custom-name.zip"
    # A zip whose name does not hold the uuid (CDH_FILENAME_TEMPLATE without {uuid})
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(renamed, "w") as dst:
        for item in src.infolist():
            dst.writestr(item.filename.replace(path.stem, "custom-name"), src.read(item))
    put_dump(s3_server.client(), bucket, "custom-name.zip", renamed, info)
    r = _get(s3_server, bucket, info["uuid"], tmp_path / "out")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "out" / "custom-name" / "custom-name.core").exists()


def test_get_verifies_a_multipart_etag_with_uneven_parts(s3_server, tmp_path):
    bucket = s3_server.create_bucket()
    core = os.urandom(12 << 20)
    mib = 1 << 20
    key, _, _ = _put(s3_server, bucket, tmp_path, core=core, compression="stored",
                        part_sizes=[6 * mib, 5 * mib])
    head = s3_server.client().head_object(Bucket=bucket, Key=key)
    assert head["ETag"].strip('"').endswith("-3")
    r = _get(s3_server, bucket, key, tmp_path / "out")
    assert r.returncode == 0, r.stderr
    assert "ETag (MD5 of 3 parts)" in r.stdout


def _corrupt_core_byte(path, name):
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo(f"{name}.core")
    raw = bytearray(path.read_bytes())
    at = info.header_offset + 30 + len(info.filename) + len(info.extra) + info.compress_size // 2
    raw[at] ^= 0xFF
    path.write_bytes(bytes(raw))


def test_get_detects_a_corrupted_object(s3_server, tmp_path):
    """Bytes changed before upload (so the ETag matches them): the zip CRC catches it."""
    bucket = s3_server.create_bucket()
    path, info = dumpbuild.build(tmp_path, os.urandom(200_000), compression="stored")
    name = path.stem
    _corrupt_core_byte(path, name)
    put_dump(s3_server.client(), bucket, path.name, path, info)
    out = tmp_path / "out"
    r = _get(s3_server, bucket, path.name, out)
    assert r.returncode == 1
    assert f"{name}.core: damaged" in r.stderr and "nothing kept" in r.stderr
    assert r.stderr.strip().count("\n") == 0 or "downloading" in r.stderr
    assert sorted(os.listdir(out)) == [], "no partial dump directory or zip is left"


def test_get_detects_a_truncated_object(s3_server, tmp_path):
    bucket = s3_server.create_bucket()
    path, info = dumpbuild.build(tmp_path, os.urandom(50_000))
    path.write_bytes(path.read_bytes()[:-200])  # the central directory is cut off
    put_dump(s3_server.client(), bucket, path.name, path, info)
    r = _get(s3_server, bucket, path.name, tmp_path / "out")
    assert r.returncode == 1 and "not a readable zip" in r.stderr
    assert os.listdir(tmp_path / "out") == []


def test_get_unknown_uuid_or_key_fails_clearly(s3_server, tmp_path):
    bucket = s3_server.create_bucket()
    r = _get(s3_server, bucket, "00000000-0000-4000-8000-000000000000", tmp_path / "out")
    assert r.returncode == 1 and "no dump with uuid 00000000-0000-4000-8000-000000000000" in r.stderr
    r = _get(s3_server, bucket, "nope/missing.zip", tmp_path / "out")
    assert r.returncode == 1 and f"no object s3://{bucket}/nope/missing.zip" in r.stderr


def test_get_refuses_to_overwrite_an_unpacked_dump(s3_server, tmp_path):
    bucket = s3_server.create_bucket()
    key, _, _ = _put(s3_server, bucket, tmp_path)
    out = tmp_path / "out"
    assert _get(s3_server, "some-other-default", f"s3://{bucket}/{key}", out).returncode == 0
    r = _get(s3_server, bucket, key, out)
    assert r.returncode == 1 and "already exists" in r.stderr


def _requests(server, bucket, *args, **env):
    """``cdh ls --json`` through a proxy that records every request; (rows, requests)."""
    with FaultProxy(server.url) as proxy:
        rows = _ls(server, bucket, *args, CDH_S3_ENDPOINT=proxy.url, **env)
        return rows, list(proxy.requests)


def test_ls_reads_the_listing_layout_without_a_head(s3_server, tmp_path):
    bucket = s3_server.create_bucket()
    for n in range(5):
        _put(s3_server, bucket, tmp_path, podname=f"web-{n}", timestamp=NOW - n * 86400, layout="listing",
             signature="1-0123456789abcdef")
    plain, _, _ = _put(s3_server, bucket, tmp_path, podname="old-agent", timestamp=NOW - 2 * HOUR)
    rows, requests = _requests(s3_server, bucket)
    assert [r["pod"] for r in rows] == ["web-0", "old-agent", "web-1", "web-2", "web-3", "web-4"]
    assert rows[0]["signature"] == "1-0123456789abcdef" and rows[1]["signature"] is None
    heads = [target for method, target in requests if method == "HEAD"]
    assert len(heads) == 1 and heads[0].split("?")[0].endswith(plain)  # only the plain key's metadata


def test_ls_since_lists_from_the_first_day_it_spans(s3_server, tmp_path):
    bucket = s3_server.create_bucket()
    for n in range(4):
        _put(s3_server, bucket, tmp_path, podname=f"day-{n}", timestamp=NOW - n * 86400 - 60,
             layout="listing")
    _put(s3_server, bucket, tmp_path, podname="recent", timestamp=NOW - 60, layout="listing")
    _put(s3_server, bucket, tmp_path, podname="old-plain", timestamp=NOW - 3 * 86400)
    rows, requests = _requests(s3_server, bucket, "--since", "36h")
    assert sorted(r["pod"] for r in rows) == ["day-0", "day-1", "recent"]
    lists = [t for m, t in requests if m == "GET" and "list-type=2" in t]
    old_day = time.strftime("%Y-%m-%d", time.gmtime(NOW - 3 * 86400 - 60))
    assert not [t for t in lists if old_day in t], "a day before --since is not listed"
    assert any("start-after=" in t for t in lists)
    assert not [t for m, t in requests if m == "HEAD"], "a plain name older than --since is not HEADed"


def test_get_by_uuid_heads_only_what_the_listing_cannot_rule_out(s3_server, tmp_path):
    bucket = s3_server.create_bucket()
    for n in range(3):
        _put(s3_server, bucket, tmp_path, podname=f"other-{n}", layout="listing")
    _put(s3_server, bucket, tmp_path, podname="plain-other")
    key, info, path = _put(s3_server, bucket, tmp_path, prefix="cores/", podname="wanted", layout="listing")
    with FaultProxy(s3_server.url) as proxy:
        r = run_cdh("get", info["uuid"], "-o", str(tmp_path / "out"),
                    env=s3_server.cdh_env(bucket, CDH_S3_ENDPOINT=proxy.url))
        requests = list(proxy.requests)
    assert r.returncode == 0, r.stderr
    assert [unquote(t.split("?")[0]) for m, t in requests if m == "HEAD"] == [f"/{bucket}/{key}"]
    unpacked = tmp_path / "out" / path.stem  # named after the zip, not after the whole key
    assert (unpacked / f"{path.stem}-dump-info.json").exists()
    assert f"s3://{bucket}/{key} -> {unpacked}/" in r.stdout


# ---------------------------------------------------------------- grouped by cause

STORM, RARE = "1-aaaaaaaaaaaaaaaa", "1-bbbbbbbbbbbbbbbb"


@pytest.fixture(scope="module", params=["plain", "listing"])
def storm(request, s3_server, tmp_path_factory):
    """A crash storm of one bug in two namespaces and two images, one rare other cause, one unsigned;
    named in each key layout (cdh/keys.py)."""
    layout = request.param
    tmp = tmp_path_factory.mktemp("storm")
    bucket = s3_server.create_bucket()
    top = "cart!apply_coupon"
    for i in range(5):
        ns = "shop" if i < 3 else "shop-canary"
        _put(s3_server, bucket, tmp, namespace=ns, podname=f"cart-{i}", hostname=f"cart-{i}",
             node_hostname=f"node-{i % 2}", timestamp=NOW - (10 - i) * 60, signature=STORM, top_frame=top,
             image=f"registry.example/shop/cart:2.{4 if i < 4 else 5}", layout=layout)
    _put(s3_server, bucket, tmp, namespace="payments", podname="ledger-0", hostname="ledger-0",
         timestamp=NOW - 30 * HOUR, signature=RARE, top_frame="ledger!post_entry",
         image="registry.example/pay/ledger:7", layout=layout)
    _put(s3_server, bucket, tmp, namespace="payments", podname="old-0", hostname="old-0",
         timestamp=NOW - 2 * HOUR, layout=layout)   # a zip from a composer without stack traces
    return bucket


def test_ls_group_gives_one_line_per_cause_newest_activity_first(s3_server, storm):
    groups = _ls(s3_server, storm, "--group")
    assert [(g["signature"], g["count"]) for g in groups] == [(STORM, 5), (None, 1), (RARE, 1)]
    first = groups[0]
    assert first["top_frame"] == "cart!apply_coupon"
    assert (first["first_seen"], first["last_seen"]) == (NOW - 10 * 60, NOW - 6 * 60)
    assert first["namespaces"] == ["shop", "shop-canary"] and first["nodes"] == ["node-0", "node-1"]
    assert first["images"] == ["registry.example/shop/cart:2.4", "registry.example/shop/cart:2.5"]
    assert first["newest"]["key"].endswith(".zip") and first["newest"]["uuid"]
    assert [g["signature"] for g in _ls(s3_server, storm, "--group", "--since", "1h")] == [STORM]


def test_ls_group_reads_the_listing_layout_without_a_head(s3_server, storm, request):
    """Every column of --group (and of ls: image, top frame) is in the key: no object is asked for its
    metadata, however big the storm."""
    groups, requests = _requests(s3_server, storm, "--group")
    heads = [t for m, t in requests if m == "HEAD"]
    if request.node.callspec.params["storm"] == "listing":
        assert heads == []
    else:  # the newest crash of each place of each group (namespace, container): its image, top frame
        assert 0 < len(heads) <= 7
    assert groups == _ls(s3_server, storm, "--group")
    assert {r["image"] for r in _ls(s3_server, storm, "--signature", STORM)} == {
        "registry.example/shop/cart:2.4", "registry.example/shop/cart:2.5"}


def test_ls_group_table(s3_server, storm):
    r = run_cdh("ls", "--group", env=s3_server.cdh_env(storm))
    assert r.returncode == 0, r.stderr
    header, *lines = r.stdout.splitlines()
    assert header.split() == ["SIGNATURE", "COUNT", "FIRST", "SEEN", "(UTC)", "LAST", "SEEN", "(UTC)",
                              "NAMESPACES", "IMAGES", "TOP", "FRAME"]
    assert lines[0].startswith(f"{STORM}  5 ") and lines[0].endswith("cart!apply_coupon")
    assert "shop, shop-canary" in lines[0] and "registry.example/shop/cart:2.4 +1" in lines[0]
    assert lines[1].startswith("(none)") and lines[2].startswith(RARE)


def test_ls_signature_lists_the_crashes_of_one_cause(s3_server, storm):
    rows = _ls(s3_server, storm, "--signature", STORM)
    assert [r["pod"] for r in rows] == [f"cart-{i}" for i in (4, 3, 2, 1, 0)]
    assert {(r["signature"], r["top_frame"]) for r in rows} == {(STORM, "cart!apply_coupon")}
    assert [r["pod"] for r in _ls(s3_server, storm, "--signature", "1-b*")] == ["ledger-0"]
    assert _ls(s3_server, storm, "--signature", "1-cccccccccccccccc") == []
    table = run_cdh("ls", "--signature", RARE, env=s3_server.cdh_env(storm))
    (row,) = table.stdout.splitlines()[1:]
    assert f" {RARE}  " in row and "ledger-0" in row


def test_ls_signature_narrows_the_listing_when_the_key_prefix_has_it(s3_server, tmp_path):
    bucket = s3_server.create_bucket()
    tpl = {"CDH_S3_KEY_PREFIX": "{signature}/"}
    _put(s3_server, bucket, tmp_path, prefix=f"{STORM}/", podname="in", hostname="in", signature=STORM)
    # a decoy under another prefix whose metadata claims the signature: listing never reaches it
    _put(s3_server, bucket, tmp_path, prefix="elsewhere/", podname="decoy", hostname="decoy", signature=STORM)
    assert [r["pod"] for r in _ls(s3_server, bucket, "--signature", STORM, **tpl)] == ["in"]
    assert sorted(r["pod"] for r in _ls(s3_server, bucket, "--signature", STORM)) == ["decoy", "in"]
