"""The encrypted copy an encrypting route uploads (cdh/agent/staging.py): made within CORE_DIR's limits,
held under its lock, removed on every path; one left by a dead agent is removed by the janitor."""

from __future__ import annotations

import asyncio
import fcntl
import os
import stat
import time
from pathlib import Path

import pytest

from cdh import agecrypt, ondisk
from cdh.agent.janitor import Janitor
from cdh.agent.localzip import LocalZip
from cdh.agent.staging import NoRoom, Staging
from cdh.config import load
from tests.support.agekeys import keypair
from tests.support.loglines import Lines


@pytest.fixture
def core_dir(tmp_path):
    d = tmp_path / "host" / "cores"
    d.mkdir(parents=True)
    return d


def settings_for(core_dir, **extra):
    return load([{"CDH_HOST_DIR": str(core_dir.parent), "CDH_S3_BUCKET": "b", "CDH_MAX_USE": "off",
                  "CDH_KEEP_FREE": "0", **extra}])


def a_zip(core_dir, name="a-dump.zip", size=300_000):
    path = core_dir / name
    path.write_bytes(os.urandom(size))
    return str(path)


async def test_the_copy_opens_with_the_identity_and_is_gone_after(tmp_path, core_dir):
    ident, rcpt = keypair(tmp_path)
    path = a_zip(core_dir)
    staging = Staging(settings_for(core_dir))
    async with LocalZip(path) as held, staging.encrypted(held, (rcpt,)) as copy:
        assert copy.path == str(core_dir / ondisk.staged_name("a-dump.zip"))
        st = os.stat(copy.path)
        assert stat.S_IMODE(st.st_mode) == 0o600 and copy.size == st.st_size and copy.still_there()
        with open(copy.path, "rb") as f, pytest.raises(BlockingIOError):  # held under its lock
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        agecrypt.decrypt(copy.path, str(tmp_path / "plain"), agecrypt.read_identities(ident))
        assert (tmp_path / "plain").read_bytes() == Path(path).read_bytes()
        assert staging.reserved_bytes == agecrypt.size_bound(held.size, 1)
    assert os.listdir(core_dir) == ["a-dump.zip"] and staging.reserved_bytes == 0


async def test_removed_on_failure_and_on_cancel(tmp_path, core_dir):
    _, rcpt = keypair(tmp_path)
    path = a_zip(core_dir)
    staging = Staging(settings_for(core_dir))
    with pytest.raises(RuntimeError):
        async with LocalZip(path) as held, staging.encrypted(held, (rcpt,)):
            raise RuntimeError("the upload failed")
    assert os.listdir(core_dir) == ["a-dump.zip"]
    started = asyncio.Event()

    async def upload():
        async with LocalZip(path) as held, staging.encrypted(held, (rcpt,)):
            started.set()
            await asyncio.sleep(3600)

    task = asyncio.create_task(upload())
    await started.wait()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert os.listdir(core_dir) == ["a-dump.zip"] and staging.reserved_bytes == 0


async def test_a_copy_still_there_means_the_zip_is_too(tmp_path, core_dir):
    _, rcpt = keypair(tmp_path)
    path = a_zip(core_dir)
    async with LocalZip(path) as held, Staging(settings_for(core_dir)).encrypted(held, (rcpt,)) as copy:
        os.rename(path, path + ".moved")
        assert not copy.still_there()


async def test_no_room_under_the_limits_means_no_copy(tmp_path, core_dir):
    _, rcpt = keypair(tmp_path)
    path = a_zip(core_dir, size=3 << 20)
    # CORE_DIR may hold 9 MiB: the zips (3 + 1 MiB) and one copy fit, a second copy does not.
    staging = Staging(settings_for(core_dir, CDH_MAX_USE="9MiB"))
    other = a_zip(core_dir, "b-dump.zip", size=1 << 20)
    async with LocalZip(path) as held, staging.encrypted(held, (rcpt,)), LocalZip(other) as held_b:
        with pytest.raises(NoRoom, match="CDH_MAX_USE: CORE_DIR may hold at most 9437184 bytes"):
            async with staging.encrypted(held_b, (rcpt,)):
                pass
    assert sorted(os.listdir(core_dir)) == ["a-dump.zip", "b-dump.zip"]
    free = os.statvfs(core_dir).f_bavail * os.statvfs(core_dir).f_frsize
    staging.configure(settings_for(core_dir, CDH_KEEP_FREE=str(free - (1 << 20))))
    async with LocalZip(path) as held:
        with pytest.raises(NoRoom, match="CDH_KEEP_FREE"):
            async with staging.encrypted(held, (rcpt,)):
                pass


async def test_a_stale_copy_is_replaced(tmp_path, core_dir):
    ident, rcpt = keypair(tmp_path)
    path = a_zip(core_dir)
    (core_dir / ondisk.staged_name("a-dump.zip")).write_bytes(b"left by an agent that was killed")
    async with LocalZip(path) as held, Staging(settings_for(core_dir)).encrypted(held, (rcpt,)) as copy:
        agecrypt.decrypt(copy.path, str(tmp_path / "plain"), agecrypt.read_identities(ident))
    assert os.listdir(core_dir) == ["a-dump.zip"]


def test_the_janitor_removes_an_abandoned_copy_and_leaves_a_held_one(core_dir):
    janitor = Janitor(settings_for(core_dir), Lines())
    abandoned = core_dir / ondisk.staged_name("a-dump.zip")
    held = core_dir / ondisk.staged_name("b-dump.zip")
    young = core_dir / ondisk.staged_name("c-dump.zip")
    for p in (abandoned, held, young):
        p.write_bytes(b"age-encryption.org/v1\n...")
    old = time.time() - 3600
    os.utime(abandoned, (old, old))
    os.utime(held, (old, old))
    with open(held, "rb") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        janitor.run(janitor.parts)
    assert sorted(os.listdir(core_dir)) == sorted([held.name, young.name])
    [line] = janitor.log.events("retention.staged_removed")
    assert line["file"] == str(abandoned) and "encrypted again" in line["action"]
