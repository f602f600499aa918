"""What every upload sends besides the body: the object key and metadata from dump-info."""

from __future__ import annotations

from cdh import destination, keys
from cdh.agent import upload
from cdh.config import load


def _settings(**env):
    return load([{"CDH_HOST_DIR": "/tmp/h", "CDH_NODE_NAME": "node-1", **env}])


def _key(settings, info, name, mtime):
    return upload.object_key(destination.from_settings(settings), settings.node_name, info, name, mtime)


def test_key_prefix_is_rendered_from_dump_info_and_sanitised():
    s = _settings(CDH_S3_KEY_PREFIX="{node}/{namespace}/{pod}/{date}/{hour}/", CDH_KEY_LAYOUT="plain")
    info = {"namespace": "../../etc", "podname": "web/1", "timestamp": 1700000000}
    key = _key(s, info, "a.zip", mtime=0)
    assert key == "node-1/.._.._etc/web_1/2023-11-14/22/a.zip"
    assert ".." not in key.split("/")
    assert _key(_settings(CDH_KEY_LAYOUT="plain"), info, "a.zip", 0) == "a.zip"  # IBM's keys
    plain = _settings(CDH_S3_KEY_PREFIX="{container}-", CDH_KEY_LAYOUT="plain")
    assert _key(plain, {}, "a.zip", 0) == "unknown-a.zip"


def test_the_default_layout_puts_what_ls_shows_in_the_key():
    info = {"namespace": "../../etc", "podname": "web/1", "timestamp": 1700000000, "signal": 11, "exe": "a~b",
            "uuid": "8d7f2c1e-0b7a-4a53-9d0e-3f1c2b4a5d6e"}
    key = _key(_settings(CDH_S3_KEY_PREFIX="cores/"), info, "a.zip", mtime=0)
    assert key == ("cores/2023-11-14/221320~11~~..!2F..!2Fetc~web!2F1~~a!7Eb~node-1~"
                   "8d7f2c1e-0b7a-4a53-9d0e-3f1c2b4a5d6e~~~a.zip")  # no "/" nor "~" in a value
    listed = keys.parse_listed(key)
    assert listed["time"] == 1700000000 and listed["zip_name"] == "a.zip"
    assert (listed["namespace"], listed["pod"], listed["exe"]) == ("../../etc", "web/1", "a~b")
    assert _key(_settings(), {}, "a.zip", mtime=1700000000) == "2023-11-14/221320~~~~~~~node-1~~~~a.zip"


def test_metadata_names_are_the_shared_ones_and_ascii():
    s = _settings()
    md = upload.object_metadata(s, {"namespace": "shop", "podname": "web", "container": None, "signal": 11,
                                    "exe": "crash\u00e9\n", "uuid": "u", "timestamp": 1700000000})
    assert set(md) == {"namespace", "pod", "node", "signal", "exe", "uuid", "timestamp"}
    assert set(md) <= set(keys.METADATA_NAMES)
    assert md["exe"] == "crash\\xe9?" and md["signal"] == "11" and md["node"] == "node-1"
