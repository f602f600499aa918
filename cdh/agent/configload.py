"""The agent's settings: checked at start (:func:`check`), loaded again on every reload (:func:`load`),
with the routes of ``CDH_ROUTES_FILE`` (:func:`load_routes`, cdh/routes.py).

A reload reads the same sources as the start (environment, ``CDH_CONFIG_FILE``,
``*_FILE`` secret files, the routes file and the key files of each route's credentials
directory). It is asked for by SIGHUP or by a change of the mounted config file, the
routes file or a key file (a rotated Secret: new keys without a restart): Kubernetes
updates a ConfigMap or Secret volume by writing a new timestamped directory and renaming
the ``..data`` symlink over, so we watch each file's directory for renames and writes of
``..data`` or the file's own name.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from cdh import config, destination, routes

if TYPE_CHECKING:
    from cdh.agent.log import Log
    from cdh.config import Settings

# Settings a running agent cannot take over without a restart (the watch, the
# composer's core_pattern, the listening port). A reload keeps the old value and says so.
RESTART_ONLY = ("host_dir", "core_dir", "event_dir", "metrics_port", "metrics_address", "manage_host")
CONFIGMAP_LINK = "..data"
SETTLE_S = 0.3  # a ConfigMap update is several events; reload once, after the last


def check(settings: Settings, need_bucket: bool | None = None) -> Settings:
    """What the agent needs beyond per-setting validation; raises ConfigError with one line.

    A bucket is needed to upload: by ``cdh sweep``, and by the agent when a trigger is on. An agent
    with neither bucket nor trigger keeps the cores on the node (IBM #48: "I run my own uploader").
    """
    if need_bucket is None:
        need_bucket = settings.has_trigger
    if need_bucket and not destination.configured(settings) and not settings.routes_file:
        raise config.ConfigError(
            "CDH_S3_BUCKET is not set: the agent needs a bucket to upload to (IBM name: S3_BUCKET_NAME), "
            "or CDH_DESTINATION (s3://, gs:// or azblob://); with no trigger set, no bucket is needed: "
            "the cores then stay on the node")
    if destination.configured(settings):
        destination.from_settings(settings)  # what the kind needs (an Azure account ...): one line if missing
    return settings


def load() -> Settings:
    return check(config.from_environment("agent"))


def load_routes(settings: Settings) -> routes.RouteTable:
    """The routes of ``CDH_ROUTES_FILE`` (none: every zip to the main destination); ConfigError with one
    line when the file is refused, or when it sends zips to a main destination that is not set."""
    table = routes.load(settings)
    if table.uses_main and not destination.configured(settings) and table is not routes.NONE:
        which = "default" if table.default == routes.MAIN else "unknown"
        raise config.ConfigError(f"{settings.env_name('routes_file')} {table.source}: {which}: main sends "
                                 "zips to CDH_DESTINATION (or CDH_S3_BUCKET), which is not set (set it, or "
                                 "make default: and unknown: keep or drop)")
    return table


def main_destination(settings: Settings, table: routes.RouteTable) -> destination.Destination | None:
    """The main destination, when any zip may go there (none without a bucket: the cores stay on the
    node, IBM #48)."""
    wanted = table.uses_main and destination.configured(settings)
    return destination.from_settings(settings) if wanted else None


def keep_restart_only(new: Settings, old: Settings) -> list[str]:
    """Carry the old values of restart-only settings into ``new``; names of those that differed."""
    kept = []
    for attr in RESTART_ONLY:
        if new.values.get(attr) != old.values.get(attr):
            kept.append(new.env_name(attr))
            new.values[attr] = old.values[attr]
            new.raw[attr] = old.raw[attr]
    return kept


def changed(new: Settings, old: Settings) -> list[str]:
    """Names (never values: some are secrets) of the settings a reload changed."""
    names = {spec.attr: spec.name for spec in config.SPECS}
    return [names[a] for a in new.values if new.values[a] != old.values.get(a)]


async def serve_until_stopped(stop: asyncio.Event, reload: asyncio.Event,
                              on_reload: Callable[[], Awaitable[None]]) -> None:
    """Wait for ``stop``; each time ``reload`` is set meanwhile (SIGHUP, a watched file changed),
    clear it and run ``on_reload``. The run phase of ``cdh agent`` and ``cdh host``."""
    while not stop.is_set():
        stopped = asyncio.ensure_future(stop.wait())
        hup = asyncio.ensure_future(reload.wait())
        await asyncio.wait({stopped, hup}, return_when=asyncio.FIRST_COMPLETED)
        stopped.cancel()
        hup.cancel()
        if reload.is_set() and not stop.is_set():
            reload.clear()
            await on_reload()


def watched_files(settings: Settings, table: routes.RouteTable = routes.NONE) -> list[str]:
    """The files whose change reloads the settings: CDH_CONFIG_FILE and every ``*_FILE`` key file,
    present or not (an optional Secret created later brings its keys in the same way), the Cloud
    Storage credentials file (a mounted key: google-auth reads it when the store is built), the routes
    file and each route's key files."""
    paths = [p for p in (settings.config_file, *settings.files.values(), settings.gcs_credentials_file,
                         settings.routes_file) if p]
    return paths + [os.path.join(r.credentials.directory, name) for r in table.routes if r.credentials
                    for name in routes.KEY_FILES[r.kind]]


async def watch_files(paths: list[str], on_change: Callable[[], None], log: Log) -> None:
    """Call ``on_change`` after any of the files at ``paths`` changes, until cancelled."""
    from asyncinotify import Inotify, Mask

    names: dict[str, set[str]] = {}
    for path in paths:
        directory, name = os.path.split(path)
        names.setdefault(directory, {CONFIGMAP_LINK}).add(name)
    with Inotify() as inotify:
        watched = {}
        for directory in names:
            try:
                watched[directory] = inotify.add_watch(
                    directory, Mask.MOVED_TO | Mask.CLOSE_WRITE | Mask.CREATE | Mask.ONLYDIR)
            except OSError as err:
                log.warning("config.watch_failed", dir=directory, error=err.strerror,
                            action="reload with SIGHUP only")
        if not watched:
            return
        events = aiter(inotify)
        while True:
            event = await anext(events)
            if event.watch is None or str(event.name) not in names.get(str(event.watch.path), ()):
                continue
            while True:  # settle: one reload for the burst of a ConfigMap swap
                try:  # asyncio.timeout: wait_for (3.11) can swallow a cancel (see composerlog.py)
                    async with asyncio.timeout(SETTLE_S):
                        await anext(events)
                except TimeoutError:
                    break
            on_change()
