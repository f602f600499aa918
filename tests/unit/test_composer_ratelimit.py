"""CDH_RATE_LIMIT: what a crash is counted by, the sliding window, and failing open."""

from __future__ import annotations

import json
import os
import stat

import pytest

from cdh import ondisk
from cdh.composer import ratelimit
from cdh.config import ConfigError, load

UID = "0a1b2c3d-1111-2222-3333-444455556666"
CID = "c" * 64


@pytest.mark.parametrize("cgroup", [
    f"0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID.replace('-', '_')}.slice/"
    f"cri-containerd-{CID}.scope\n",
    f"4:pids:/kubepods/burstable/pod{UID}/{CID}\n0::/\n",
    f"0::/kubepods/pod{UID}/crio-{CID}/container\n",
])
def test_the_pod_uid_counts_so_a_restarted_container_shares_its_limit(cgroup):
    assert ratelimit.pod_uid(cgroup) == UID
    assert ratelimit.key_for(cgroup, CID, "/usr/bin/app", "app") == f"pod:{UID}:/usr/bin/app"


def test_without_a_pod_the_container_or_the_program_counts():
    assert ratelimit.key_for(f"0::/docker/{CID}\n", CID, "/bin/x", "x") == f"container:{CID}:/bin/x"
    assert ratelimit.key_for("0::/user.slice\n", None, "", "x") == "host:x"
    assert len(ratelimit.key_for("0::/\n", None, "/" + "a" * 5000, "")) == ratelimit.MAX_KEY_CHARS


def test_n_per_window_then_skipped_and_the_window_slides(tmp_path):
    limit = (3, 600.0)
    assert [ratelimit.check(str(tmp_path), "k", limit, now=1000 + i) for i in range(3)] == [None] * 3
    why = ratelimit.check(str(tmp_path), "k", limit, now=1010)
    assert why and "3 cores of this container in the last 10m" in why and "CDH_RATE_LIMIT 3/10m" in why
    assert ratelimit.check(str(tmp_path), "other", limit, now=1010) is None  # per key
    assert ratelimit.check(str(tmp_path), "k", limit, now=1599) is not None  # skips are not counted
    assert ratelimit.check(str(tmp_path), "k", limit, now=1600.5) is None    # the first one left the window
    state = tmp_path / ondisk.RATE_LIMIT_STATE
    assert stat.S_IMODE(state.stat().st_mode) == 0o600
    assert json.loads(state.read_text())["k"] == [1001, 1002, 1600.5]


def test_fails_open(tmp_path):
    state = tmp_path / ondisk.RATE_LIMIT_STATE
    state.write_bytes(b"\x00{not json")  # a composer killed mid-write
    assert ratelimit.check(str(tmp_path), "k", (1, 60.0), now=5) is None
    assert ratelimit.check(str(tmp_path), "k", (1, 60.0), now=6) is not None  # and it is sane again
    assert ratelimit.check(str(tmp_path / "no-host-dir"), "k", (1, 60.0)) is None
    assert ratelimit.check(str(tmp_path), "k", None) is None
    state.unlink()
    os.symlink("/etc/passwd", state)  # never followed
    assert ratelimit.check(str(tmp_path), "k", (1, 60.0)) is None
    assert os.path.islink(state)


def test_state_stays_bounded(tmp_path, monkeypatch):
    monkeypatch.setattr(ratelimit, "MAX_KEYS", 5)
    for i in range(20):
        ratelimit.check(str(tmp_path), f"k{i}", (1, 600.0), now=100 + i)
    kept = json.loads((tmp_path / ondisk.RATE_LIMIT_STATE).read_text())
    assert sorted(kept) == [f"k{i}" for i in range(15, 20)]


@pytest.mark.parametrize(("raw", "expected"), [("5/10m", (5, 600.0)), ("1/30s", (1, 30.0)),
                                               ("off", None), ("0", None), ("", None)])
def test_setting(raw, expected):
    assert load([{"CDH_RATE_LIMIT": raw}], scope="composer").rate_limit == expected


@pytest.mark.parametrize("raw", ["5", "x/10m", "-1/10m", "5/soon", "5/0s"])
def test_bad_setting_is_one_line_naming_it(raw):
    with pytest.raises(ConfigError, match=r"^CDH_RATE_LIMIT=.* is not valid: COUNT/DURATION"):
        load([{"CDH_RATE_LIMIT": raw}])
