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
    s = _settings(CDH_S3_KEY_PREFIX="{node}/{namespace}/{pod}/{date}/{hour}/")
    info = {"namespace": "../../etc", "podname": "web/1", "timestamp": 1700000000}
    key = _key(s, info, "a.zip", mtime=0)
    assert key == "node-1/.._.._etc/web_1/2023-11-14/22/a.zip"
    assert ".." not in key.split("/")
    assert _key(_settings(), info, "a.zip", 0) == "a.zip"
    assert _key(_settings(CDH_S3_KEY_PREFIX="{container}-"), {}, "a.zip", 0) == "unknown-a.zip"


def test_metadata_names_are_the_shared_ones_and_ascii():
    s = _settings()
    md = upload.object_metadata(s, {"namespace": "shop", "podname": "web", "container": None, "signal": 11,
                                    "exe": "crash\u00e9\n", "uuid": "u", "timestamp": 1700000000})
    assert set(md) == {"namespace", "pod", "node", "signal", "exe", "uuid", "timestamp"}
    assert set(md) <= set(keys.METADATA_NAMES)
    assert md["exe"] == "crash\\xe9?" and md["signal"] == "11" and md["node"] == "node-1"
