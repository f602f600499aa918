"""Liveness pieces: the loop heartbeat and the task check."""

from __future__ import annotations

import asyncio
import time

from cdh.agent import probes


async def test_heartbeat_ages_when_the_loop_does_not_run_it():
    beat = probes.Heartbeat()
    beat.start()
    await asyncio.sleep(0)
    assert beat.ok()
    beat.last = time.monotonic() - probes.MAX_LAG_S - 1  # as after a loop blocked that long
    assert not beat.ok()
    await asyncio.sleep(probes.BEAT_S * 1.5)
    assert beat.ok()
    beat.stop()
    await asyncio.sleep(0)
    assert not beat.ok()  # a stopped heartbeat is not a live loop


async def test_tasks_alive_ignores_cancelled_ones_but_not_ended_ones():
    async def forever():
        await asyncio.Event().wait()

    async def ends():
        return None

    running, cancelled, ended = (asyncio.create_task(forever()), asyncio.create_task(forever()),
                                 asyncio.create_task(ends()))
    cancelled.cancel()
    await asyncio.sleep(0)
    assert probes.tasks_alive([running, cancelled])
    assert not probes.tasks_alive([running, ended])
    running.cancel()
