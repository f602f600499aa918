"""``cdh agent``: the node daemon. One :class:`Agent` whose life reads top to bottom:
start → run → stop (after uvicorn's server).

- start: host setup (composer, composer.env, sysctls; or, with CDH_MANAGE_HOST=false, left to
  `cdh host`: cdh/agent/hostside.py), the store, /healthz,
  storage check, triggers (startup sweep, inotify, interval, schedule), workers.
- run: wait for a flag. Signals only set flags: SIGHUP → reload; SIGTERM/SIGINT →
  stop; a second SIGTERM/SIGINT → stop now. A change of the mounted config file
  sets the reload flag too.
- stop: close the intake, give in-flight uploads ``CDH_GRACE_PERIOD``, cancel the
  rest (their zips stay for next time), restore the host if configured, exit 0.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time

from cdh import EXIT_FAILURE, EXIT_OK, __version__, config, destination, ondisk, routes
from cdh.agent import configload, host
from cdh.agent.hostside import HostSide, ObservedHost
from cdh.agent.intake import Intake, cancel_all
from cdh.agent.janitor import Janitor
from cdh.agent.log import Log, route_stdlib
from cdh.agent.retry import Backoff
from cdh.agent.stores import Stores
from cdh.agent.telemetry import Telemetry
from cdh.agent.upload import Outcome, Uploader
from cdh.sysctl import Sysctl

TYPE_CHECKING = False
if TYPE_CHECKING:
    from cdh.destination import Destination

CANCEL_TIMEOUT_S = 15.0  # after the grace period: cancelled uploads abort their multipart
STORAGE_RECHECK_MAX = 10  # while the bucket fails: re-check after 1, 2, 4 ... up to 10 check intervals


def run(settings: config.Settings) -> int:
    """Run the agent until SIGTERM/SIGINT. Raises ConfigError (exit 3) on a missing bucket."""
    import uvloop

    configload.check(settings)
    table = configload.load_routes(settings)
    log = Log()
    log.configure(settings)
    route_stdlib(log)
    _keep_secrets_out_of_our_core()
    if settings.include_proc_environ:
        log.warning("config.environ_capture", setting="CDH_INCLUDE_PROC_ENVIRON",
                    note="every zip will hold the crashing process's environment, which may hold secrets")
    return uvloop.run(Agent(settings, log, table).serve())


def _keep_secrets_out_of_our_core() -> None:
    """No memory of ours in a core dump: it holds the S3 keys, and our own composer would upload it.

    coredump_filter 0 leaves a core of headers and notes (registers, the crashing thread's
    state), which still says where we crashed. fs.suid_dumpable=2 dumps even non-dumpable
    processes, so PR_SET_DUMPABLE alone would not do.
    """
    try:
        with open("/proc/self/coredump_filter", "w") as f:
            f.write("0")
    except OSError:
        pass


class Agent:
    def __init__(self, settings: config.Settings, log: Log, table: routes.RouteTable = routes.NONE) -> None:
        self.settings = settings
        self.log = log
        self.sysctl = Sysctl.here()  # or the fake tree of CDH_TEST_SYSCTL_ROOT (cdh/sysctl.py)
        self.stores = Stores(log)
        self.stores.table = table  # opened with it at start; both swapped together on reload
        self.uploader = Uploader(settings, self.stores, log)
        self.intake = Intake(settings.core_dir, log, ondisk.dir_mode(settings.zip_file_mode))
        self.janitor = Janitor(settings, log)
        self.intake.on_part_closed = self.janitor.part_closed
        self.backoff = Backoff(settings.retry_min_s, settings.retry_max_s)
        # The host half (cdh/agent/hostside.py): here, or `cdh host` in another container.
        self.host = (HostSide(settings, self.sysctl, log) if settings.manage_host
                     else ObservedHost(settings, log))
        self.in_flight: set[str] = set()
        self.kept: set[str] = set()  # zips the routes keep on the node: routed again after a reload
        self._workers: dict[int, asyncio.Task] = {}
        self._triggers: list[asyncio.Task] = []
        self._storage_watch: asyncio.Task | None = None
        self._stop = asyncio.Event()
        self._now = asyncio.Event()
        self._reload = asyncio.Event()
        # Metrics, probes, Kubernetes Events, the composer's log relay: they read this agent's status
        # and hear what it logs and which zips it takes up, and change nothing.
        self.telemetry = Telemetry(self, self.sysctl, log)
        log.taps += self.telemetry.log_taps()
        self.uploader.on_zip = self.telemetry.zip_taken

    async def serve(self) -> int:
        try:
            await self.start()
        except host.HostError as err:
            self.log.error("agent.host_setup_failed", error=str(err))
            await self._close()
            return EXIT_FAILURE
        await self.run()
        await self.stop()
        return EXIT_OK

    # ------------------------------------------------------------ start

    async def start(self) -> None:
        s = self.settings
        table = self.stores.table
        dest = configload.main_destination(s, table)
        self.log.info("agent.starting", pid=os.getpid(), version=__version__, node=s.node_name,
                      core_dir=s.core_dir, kind=dest and dest.kind, bucket=dest and dest.bucket,
                      endpoint=dest and dest.endpoint, key_prefix=dest and dest.key_prefix_template,
                      config_file=s.config_file, routes_file=s.routes_file)
        for note in s.notes:
            self.log.warning("config.note", note=note)
        self._log_routes(table)
        self._install_signal_handlers()
        # a bad region or endpoint is a ConfigError: before the node changes
        await self.stores.open(dest, s, table)
        await self.host.set_up()
        await self.telemetry.start()
        await self.check_storage()
        self._storage_watch = asyncio.create_task(self._recheck_storage(), name="storage-check")
        self._start_triggers()
        self._resize_workers()
        self.log.info("agent.started", pid=os.getpid())

    def _install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGHUP, self._reload.set)
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._on_stop_signal)

    def _on_stop_signal(self) -> None:
        (self._now if self._stop.is_set() else self._stop).set()

    # ------------------------------------------------------------ status (telemetry.AgentStatus)

    @property
    def host_ready(self) -> bool:
        return self.host.ready

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    @property
    def storage_ok(self) -> bool | None:
        if not self.stores.destinations:
            return True  # no bucket and no trigger: cores stay on the node, there is no store to reach
        return self.uploader.storage_ok

    @property
    def storage(self) -> dict[str, bool]:
        return self.uploader.storage

    @property
    def kinds(self) -> dict[str, str]:
        return {dest.name: dest.kind for dest in self.stores.destinations}

    def running_tasks(self) -> tuple[list[asyncio.Task], list[asyncio.Task]]:
        """The upload workers the settings ask for, and the intake tasks: for the liveness probe."""
        workers = [t for i, t in self._workers.items() if i < self.settings.upload_concurrency]
        intake = [t for t in self._triggers if t.get_name().startswith("intake-")]
        return workers, intake

    def queue_depth(self) -> dict[str, int]:
        return {"queued": self.intake.queue.qsize(), "uploading": len(self.in_flight),
                "retry_wait": self.intake.waiting}

    # ------------------------------------------------------------ storage

    async def check_storage(self) -> None:
        """Check each destination's bucket once (the main one, each route's, with its own credentials),
        so a wrong bucket or key shows at start, not at the first crash."""
        for dest in self.stores.destinations:
            self.uploader.storage[dest.name] = ok = await self._check_one(dest)
            if ok:
                self.log.info("storage.ok", route=dest.name, kind=dest.kind, bucket=dest.bucket)

    async def _check_one(self, dest: Destination) -> bool:
        async with self.stores.lease(dest.name) as store:
            try:
                await store.check()
            except Exception as err:
                failure = store.failure(err)
                self.log.error("storage.unavailable", route=dest.name, kind=dest.kind, bucket=dest.bucket,
                               code=failure.code, permanent=failure.permanent, error=str(err) or repr(err),
                               action="zips stay on the node and are retried")
                return False
        return True

    def _log_routes(self, table: routes.RouteTable) -> None:
        """What the routes say, one line each (no secrets: directories and fingerprints only)."""
        if table is not routes.NONE:
            self.log.info("routes.loaded", file=table.source, routes=table.describe())

    async def _recheck_storage(self) -> None:
        """While the bucket is unreachable, check it again every CDH_CHECK_INTERVAL, then at growing
        intervals: readiness comes back by itself, without an upload or a reload."""
        wait = 1
        due = time.monotonic()
        while True:
            await asyncio.sleep(self.settings.check_interval_s)
            if self.storage_ok is not False:
                wait, due = 1, time.monotonic()
            elif time.monotonic() >= due:
                await self.check_storage()
                wait = min(wait * 2, STORAGE_RECHECK_MAX)
                due = time.monotonic() + wait * self.settings.check_interval_s

    def _start_triggers(self) -> None:
        s, intake, names = self.settings, self.intake, []
        if s.use_inotify:
            names.append("inotify")
            self._triggers.append(asyncio.create_task(intake.watch(), name="intake-inotify"))
        if s.interval_s:
            names.append(f"interval {s.interval_s:g}s")
            self._triggers.append(asyncio.create_task(intake.every(s.interval_s), name="intake-interval"))
        if s.schedule:
            names.append(f"schedule {s.schedule}")
            self._triggers.append(asyncio.create_task(intake.on_schedule(s.schedule), name="intake-schedule"))
        self._triggers.append(asyncio.create_task(self.janitor.every(), name="retention"))
        self._triggers.append(asyncio.create_task(self.host.tend(), name="host-tend"))
        if watched := configload.watched_files(s, self.stores.table):
            self._triggers.append(asyncio.create_task(
                configload.watch_files(watched, self._reload.set, self.log), name="config-watch"))
        if names:
            intake.sweep("start")
            self.log.info("intake.triggers", triggers=names)
        elif not destination.configured(s) and not s.routes_file:
            self.log.warning("intake.no_trigger", action="cores are kept on the node, for your own uploader "
                             "(no bucket and no trigger set: IBM's idle mode, IBM #48)",
                             hint="set a bucket and CDH_USE_INOTIFY, CDH_INTERVAL or CDH_SCHEDULE to upload")
        else:
            self.log.warning("intake.no_trigger", action="cores are kept on the node",
                             hint="set CDH_USE_INOTIFY, CDH_INTERVAL or CDH_SCHEDULE, or run `cdh sweep`")

    # ------------------------------------------------------------ workers

    def _resize_workers(self) -> None:
        for i in range(self.settings.upload_concurrency):
            if i not in self._workers or self._workers[i].done():
                self._workers[i] = asyncio.create_task(self._worker(i), name=f"upload-worker-{i}")

    async def _worker(self, index: int) -> None:
        while index < self.settings.upload_concurrency:  # after a reload to fewer, the extras leave
            path = await self.intake.get()
            if path is None:
                return
            self.in_flight.add(path)
            try:
                await self._upload(path)
            finally:
                self.in_flight.discard(path)

    async def _upload(self, path: str) -> None:
        result = await self.uploader.upload(path)
        outcome = result.outcome
        if outcome in (Outcome.DONE, Outcome.GONE, Outcome.DROPPED):
            self.intake.finished(path)
            self.backoff.forget(path)
            self.janitor.uploaded()
            return
        if outcome is Outcome.INVALID:
            return  # stays known: reported once, not retried until a restart
        if outcome is Outcome.KEPT:
            self.kept.add(path)  # stays known: reported once, routed again after a reload
            self.backoff.forget(path)
            return
        if outcome is Outcome.BUSY:
            delay = self.settings.retry_min_s
        else:
            delay = self.backoff.delay(path, permanent=outcome is Outcome.DENIED)
        self.intake.retry_later(path, delay)
        self.log.info("upload.retry_scheduled", file=path, outcome=outcome.value, in_s=round(delay, 2),
                      attempt=self.backoff.attempts.get(path, 0))

    # ------------------------------------------------------------ run

    async def run(self) -> None:
        await configload.serve_until_stopped(self._stop, self._reload, self.reload)

    async def reload(self) -> None:
        old = self.settings
        try:
            new = configload.load()
            table = configload.load_routes(new)
        except config.ConfigError as err:
            self.log.error("config.rejected", error=str(err),
                           action="keeping the previous settings and routes")
            return
        kept = configload.keep_restart_only(new, old)
        try:
            await self.stores.open(configload.main_destination(new, table), new, table)
        except Exception as err:
            self.log.error("config.rejected", error=f"cannot build the store's client: {err}",
                           action="keeping the previous settings")
            return
        self.settings = new
        self.log.configure(new)
        self.uploader.configure(new)
        self.janitor.configure(new)
        await self.host.refresh(new)
        self.backoff.reset(new.retry_min_s, new.retry_max_s)
        await self.telemetry.configure(new)
        await cancel_all(self._triggers)
        self._triggers = []
        self._log_routes(table)
        self.uploader.storage = {}
        await self.check_storage()
        for path in self.kept:  # routed again: the sweep below offers them
            self.intake.finished(path)
        self.kept.clear()
        self._start_triggers()
        self._resize_workers()
        requeued = self.intake.retry_now()
        self.log.info("config.reloaded", changed=configload.changed(new, old), requeued=requeued,
                      kept_until_restart=kept)

    # ------------------------------------------------------------ stop

    async def stop(self) -> None:
        grace = self.settings.grace_period_s
        self.log.info("agent.stopping", in_flight=len(self.in_flight), grace_period_s=grace)
        self.intake.close()
        await cancel_all(self._triggers)
        cut = await self._drain([t for t in self._workers.values() if not t.done()], grace)
        if cut:
            self.log.warning("agent.uploads_cut", files=cut, action="their zips stay for the next start")
        await self._close()
        await self.host.restore()
        self.log.info("agent.stopped", pid=os.getpid())

    async def _drain(self, workers: list[asyncio.Task], grace: float) -> list[str]:
        """Let ``workers`` finish within ``grace`` (or until a second signal); cancel the rest."""
        if not workers:
            return []
        finished = asyncio.ensure_future(asyncio.wait(workers))  # cancelling it leaves the workers be
        now = asyncio.ensure_future(self._now.wait())
        await asyncio.wait([finished, now], timeout=grace, return_when=asyncio.FIRST_COMPLETED)
        finished.cancel()
        now.cancel()
        cut = sorted(self.in_flight)
        pending = [t for t in workers if not t.done()]
        for t in pending:
            t.cancel()
        if pending:
            await asyncio.wait(pending, timeout=CANCEL_TIMEOUT_S)
        return cut

    async def _close(self) -> None:
        await self.telemetry.stop()
        if self._storage_watch is not None:
            self._storage_watch.cancel()
            await asyncio.gather(self._storage_watch, return_exceptions=True)
        await self.stores.close()
