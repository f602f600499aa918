"""The retention guard's shared pieces (cdh/retention.py): the two limits in bytes, and CORE_DIR's usage."""

from __future__ import annotations

import os

import pytest

from cdh import retention
from cdh.config import ConfigError, load

GiB = 1 << 30


@pytest.mark.parametrize(("env", "max_use", "keep_free"), [
    ({}, 25 * GiB, 10 * GiB),                                   # defaults: 25% / 10% of 100 GiB
    ({"CDH_MAX_USE": "off", "CDH_KEEP_FREE": "2GiB"}, None, 2 * GiB),
    ({"CDH_MAX_USE": "1.5GiB", "CDH_KEEP_FREE": "0"}, int(1.5 * GiB), 0),
    ({"CDH_MAX_USE": "50%", "CDH_KEEP_FREE": "off"}, 50 * GiB, 0),
])
def test_limits_in_bytes(env, max_use, keep_free):
    limits = retention.Limits(load([env], scope="composer"), 100 * GiB)
    assert (limits.max_use, limits.keep_free) == (max_use, keep_free)


@pytest.mark.parametrize(("env", "name"), [({"CDH_MAX_USE": "-1GiB"}, "CDH_MAX_USE"),
                                           ({"CDH_KEEP_FREE": "120%"}, "CDH_KEEP_FREE"),
                                           ({"CDH_KEEP_FREE": "lots"}, "CDH_KEEP_FREE")])
def test_bad_limits_are_one_line_naming_the_setting(env, name):
    with pytest.raises(ConfigError, match=rf"^{name}=.* is not valid: a size such as 10GiB, or a percentage"):
        load([env])


def test_room_is_the_tighter_limit():
    limits = retention.Limits(load([{"CDH_MAX_USE": "10GiB", "CDH_KEEP_FREE": "5GiB"}]), 100 * GiB)
    assert limits.room(used=8 * GiB, free=50 * GiB) == (2 * GiB, "CDH_MAX_USE")
    assert limits.room(used=1 * GiB, free=6 * GiB) == (1 * GiB, "CDH_KEEP_FREE")


def test_usage_counts_regular_files_only(tmp_path):
    (tmp_path / "a.zip").write_bytes(b"x" * 10000)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "big").write_bytes(b"x" * 100000)
    os.symlink("/usr/bin/python3", tmp_path / "link.zip")
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        assert 10000 <= retention.dir_usage(fd) < 20000
        assert retention.dir_usage(fd) == retention.dir_usage(fd)  # the handle is not consumed
    finally:
        os.close(fd)
