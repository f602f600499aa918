"""The intake queue: only finished zips, each once while queued, in flight or waiting to retry."""

from __future__ import annotations

import asyncio
import io
import os

from cdh.agent.intake import Intake
from cdh.agent.log import Log


def intake(tmp_path) -> Intake:
    return Intake(str(tmp_path), Log(stream=io.BytesIO()))


async def test_offers_only_finished_regular_zips_once(tmp_path):
    q = intake(tmp_path)
    for name in ("a.zip", ".a.zip.part", ".hidden.zip", "notes.txt"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "dir.zip").mkdir()
    os.symlink(tmp_path / "a.zip", tmp_path / "link.zip")
    assert q.sweep("test") == 1
    assert q.sweep("again") == 0
    path = await q.get()
    assert path == str(tmp_path / "a.zip")
    assert not q.offer(path)          # in flight
    q.retry_later(path, 3600)
    assert q.sweep("while waiting") == 0
    assert q.retry_now() == 1
    assert await q.get() == path
    q.finished(path)
    assert q.offer(path)              # done with it: a new appearance counts


async def test_close_wakes_waiting_workers(tmp_path):
    q = intake(tmp_path)
    waiter = asyncio.create_task(q.get())
    await asyncio.sleep(0)
    q.close()
    assert await waiter is None
    (tmp_path / "late.zip").write_bytes(b"x")
    assert q.sweep("after close") == 0
