"""``cdh sweep [FILE...]``: upload zips now, once, and say what happened.

Without files: every finished zip in CORE_DIR. With files: those, each of which
must be a finished zip inside CORE_DIR (anything else is an error: the agent
never uploads from elsewhere). Each goes where CDH_ROUTES_FILE says, as the agent's
would. Exit 0 when every file was uploaded (or was already taken by the agent, which
holds its lock, or kept or dropped by the routes), 1 otherwise.

A file the agent is uploading right now (its lock is held) is waited for up to
CDH_GRACE_PERIOD: when it then disappears, the agent uploaded it.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time

from cdh import EXIT_FAILURE, EXIT_OK, config, ondisk, routes
from cdh.agent import configload
from cdh.agent.log import Log, route_stdlib
from cdh.agent.stores import Stores
from cdh.agent.upload import Outcome, Uploader


def run(settings: config.Settings, files: list[str]) -> int:
    import uvloop

    configload.check(settings, need_bucket=True)
    table = configload.load_routes(settings)
    log = Log()
    log.configure(settings)
    route_stdlib(log)
    paths = select(settings.core_dir, files, log)
    if paths is None:
        return EXIT_FAILURE
    return uvloop.run(sweep(settings, paths, log, table))


def select(core_dir: str, files: list[str], log: Log) -> list[str] | None:
    """The zips to upload; None (after one error line each) when a given file is not acceptable."""
    if not files:
        try:
            names = os.listdir(core_dir)
            return sorted(os.path.join(core_dir, n) for n in names if ondisk.is_finished_zip(n))
        except OSError as err:
            log.error("sweep.failed", dir=core_dir, error=err.strerror)
            return None
    root = os.path.realpath(core_dir)
    chosen, bad = [], False
    for f in files:
        path = os.path.abspath(f)
        real = os.path.realpath(path)
        if os.path.dirname(real) != root or not ondisk.is_finished_zip(os.path.basename(real)):
            print(f"cdh sweep: {f}: not a finished zip in CDH_CORE_DIR ({core_dir})", file=sys.stderr)
            bad = True
        elif not os.path.isfile(real):
            print(f"cdh sweep: {f}: no such file", file=sys.stderr)
            bad = True
        else:
            chosen.append(real)
    return None if bad else chosen


async def sweep(settings: config.Settings, paths: list[str], log: Log,
                table: routes.RouteTable = routes.NONE) -> int:
    stores = Stores(log)
    await stores.open(configload.main_destination(settings, table), settings, table)
    uploader = Uploader(settings, stores, log)
    gate = asyncio.Semaphore(settings.upload_concurrency)

    async def one(path: str) -> Outcome | None:
        async with gate:
            return await _upload_waiting(uploader, path, settings.grace_period_s)

    try:
        results = await asyncio.gather(*(one(p) for p in paths))
    finally:
        await stores.close()
    failed = results.count(None)
    kept, dropped = results.count(Outcome.KEPT), results.count(Outcome.DROPPED)
    log.info("sweep.done", files=len(paths), uploaded=len(paths) - failed - kept - dropped, failed=failed,
             kept=kept, dropped=dropped)
    return EXIT_OK if failed == 0 else EXIT_FAILURE


async def _upload_waiting(uploader: Uploader, path: str, wait_s: float) -> Outcome | None:
    """What became of ``path``: DONE (or GONE: the agent took it), KEPT or DROPPED by the routes, or None
    (it failed, and stays for the agent)."""
    deadline = time.monotonic() + wait_s
    while True:
        result = await uploader.upload(path)
        if result.outcome in (Outcome.DONE, Outcome.GONE, Outcome.KEPT, Outcome.DROPPED):
            return result.outcome
        if result.outcome is not Outcome.BUSY or time.monotonic() >= deadline:
            if result.outcome is Outcome.BUSY:
                uploader.log.error("sweep.busy", file=path,
                                   error="held by another process until the deadline")
            return None
        await asyncio.sleep(0.5)
