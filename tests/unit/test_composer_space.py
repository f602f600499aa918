"""The composer's side of the retention guard (cdh/retention.py): a core is cut short before a limit
breaks."""

from __future__ import annotations

import os

import pytest

from cdh import retention
from cdh.config import load

GiB = 1 << 30


def test_the_guard_counts_blocks_still_in_flight(tmp_path, monkeypatch):
    """With the parallel capture, bytes handed to the writer thread are not on disk yet: they count."""
    from cdh.composer import space

    monkeypatch.setattr(retention, "fs_space", lambda fd: (100 * GiB, 10 * GiB + 5 * (1 << 20)))
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        settings = load([{"CDH_KEEP_FREE": "10GiB", "CDH_MAX_USE": "off"}], scope="composer")
        in_flight = {"bytes": 0}
        guard = space.SpaceGuard(settings, fd, lambda: 0, lambda: in_flight["bytes"])
        guard.check(4 << 20)  # 5 MiB of room
        in_flight["bytes"] = 2 << 20
        with pytest.raises(space.OutOfSpace) as stop:
            guard.check(4 << 20)  # only 3 MiB once what is in flight lands
        assert stop.value.fields["limit"] == "CDH_KEEP_FREE" and stop.value.fields["room"] == 3 << 20
        guard.check(0)  # nothing to write is never refused
    finally:
        os.close(fd)
