"""The agent's host half: everything that needs privilege on the node, and nothing that talks to a network.

Install the composer and the sysctls at start (cdh/agent/host.py), rewrite composer.env when the
settings change, retire old runtimes now and then, restore the node at stop (CDH_UNINSTALL_ON_STOP).
It runs in one of two places:

- inside ``cdh agent`` (:class:`HostSide`; CDH_MANAGE_HOST, the default): one process, as outside
  Kubernetes, in the demo and the tests;
- alone, as ``cdh host`` (:func:`run`), in the DaemonSet's privileged container beside the unprivileged
  uploader, which then runs with CDH_MANAGE_HOST=false (:class:`ObservedHost`: it only looks at HOST_DIR,
  mounted read-only there). ``cdh host`` has no port, no S3 or API client and reads only the
  environment, the mounted ConfigMap and HOST_DIR. Its life: set up → wait (SIGHUP or a change of
  CDH_CONFIG_FILE: reload; every CDH_CHECK_INTERVAL: kernel.core_pattern checked, runtimes pruned) →
  SIGTERM/SIGINT: restore, exit 0. The preStop hook (``cdh uninstall``) runs in its container too.

The uploads take the same code path either way: the split changes who writes HOST_DIR, not how a zip
is sent.
"""

from __future__ import annotations

import asyncio
import errno
import os
import signal
from typing import TYPE_CHECKING

from cdh import EXIT_FAILURE, EXIT_OK, __version__, config, fsutil, ondisk
from cdh.agent import configload, host

if TYPE_CHECKING:
    from cdh.agent.log import Log
    from cdh.sysctl import Sysctl


class HostSide:
    """Sets up and restores the node from this process (CDH_MANAGE_HOST=true)."""

    def __init__(self, settings: config.Settings, sysctl: Sysctl, log: Log) -> None:
        self.settings = settings
        self.sysctl = sysctl
        self.log = log
        self.ready = False  # host setup done (readiness)

    async def set_up(self) -> None:
        """Install the composer and set the sysctls. A full disk must not stop the agent: its uploads
        are what free the space, and the composer already installed keeps capturing meanwhile.
        Raises HostError."""
        s = self.settings
        try:
            for line in await asyncio.to_thread(host.install, s, self.sysctl):
                self.log.info("host.setup", done=line)
        except OSError as err:
            if err.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise host.HostError(f"host setup failed in {s.host_dir}: {err}") from None
            self.log.error("host.setup_incomplete", host_dir=s.host_dir, error=str(err),
                           action="going on with the composer already installed; setup is tried again "
                                  "at the next reload or restart")
            return
        self.ready = True

    async def refresh(self, settings: config.Settings) -> None:
        """After a reload: composer.env follows the settings (or a cut-short setup is tried again)."""
        self.settings = settings
        if not self.ready:
            try:
                await self.set_up()
            except host.HostError as err:
                self.log.error("agent.host_setup_failed", error=str(err))
            return
        path = ondisk.HostDir(settings.host_dir).composer_env
        try:
            fsutil.write_if_changed(path, config.render_env(settings).encode(), mode=0o600)
        except OSError as err:
            self.log.error("host.composer_env_failed", path=path, error=err.strerror)

    async def tend(self) -> None:
        """Now and then: retire and remove runtimes an upgrade left that no composer uses any more."""
        while True:
            await asyncio.sleep(self.settings.check_interval_s)
            try:
                done = await asyncio.to_thread(host.prune_runtimes, self.settings)
            except OSError as err:
                self.log.warning("host.prune_failed", error=err.strerror)
                continue
            for line in done:
                if "removed" in line:
                    self.log.info("host.runtime_pruned", done=line)

    async def restore(self) -> None:
        if self.settings.uninstall_on_stop:
            for line in await asyncio.to_thread(host.uninstall, self.settings, self.sysctl):
                self.log.info("host.restore", done=line)


class ObservedHost:
    """CDH_MANAGE_HOST=false: `cdh host` in another container sets up and restores the node; the agent
    only looks. Ready once the composer is installed (kernel.core_pattern is checked on its own)."""

    def __init__(self, settings: config.Settings, log: Log) -> None:
        self.settings = settings
        self.log = log

    @property
    def ready(self) -> bool:
        return os.path.isfile(ondisk.HostDir(self.settings.host_dir).composer)

    async def set_up(self) -> None:
        self.log.info("host.managed_elsewhere", host_dir=self.settings.host_dir,
                      note="CDH_MANAGE_HOST=false: `cdh host` installs the composer and restores the node")

    async def refresh(self, settings: config.Settings) -> None:
        self.settings = settings

    async def tend(self) -> None:
        return

    async def restore(self) -> None:
        return


# ---------------------------------------------------------------- `cdh host`


def run(settings: config.Settings) -> int:
    """``cdh host``: until SIGTERM/SIGINT. Exit 1 when the host cannot be set up."""
    from cdh.agent.log import Log

    log = Log()
    log.configure(settings)
    return asyncio.run(Keeper(settings, log).serve())


class Keeper:
    """``cdh host``: :class:`HostSide` in a process of its own, with its reloads and checks."""

    def __init__(self, settings: config.Settings, log: Log) -> None:
        from cdh.agent.probes import CorePatternCheck
        from cdh.sysctl import Sysctl

        self.log = log
        self.host = HostSide(settings, Sysctl.here(), log)
        self.core_pattern = CorePatternCheck(self.host.sysctl, log)
        self._stop = asyncio.Event()
        self._reload = asyncio.Event()

    @property
    def settings(self) -> config.Settings:
        return self.host.settings

    async def serve(self) -> int:
        s = self.settings
        self.log.info("host.starting", pid=os.getpid(), version=__version__, host_dir=s.host_dir,
                      config_file=s.config_file)
        for note in s.notes:
            self.log.warning("config.note", note=note)
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGHUP, self._reload.set)
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stop.set)
        try:
            await self.host.set_up()
        except host.HostError as err:
            self.log.error("agent.host_setup_failed", error=str(err))
            return EXIT_FAILURE
        tasks = [asyncio.create_task(self.host.tend(), name="prune"),
                 asyncio.create_task(self._check(), name="checks")]
        if s.config_file:
            tasks.append(asyncio.create_task(
                configload.watch_files([s.config_file], self._reload.set, self.log), name="config-watch"))
        self.log.info("host.started", pid=os.getpid())
        await configload.serve_until_stopped(self._stop, self._reload, self.reload)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.host.restore()
        self.log.info("host.stopped", pid=os.getpid())
        return EXIT_OK

    async def reload(self) -> None:
        old = self.settings
        try:
            new = config.from_environment("agent")
        except config.ConfigError as err:
            self.log.error("config.rejected", error=str(err), action="keeping the previous settings")
            return
        kept = configload.keep_restart_only(new, old)
        self.log.configure(new)
        await self.host.refresh(new)
        self.log.info("config.reloaded", changed=configload.changed(new, old), kept_until_restart=kept)

    async def _check(self) -> None:
        """kernel.core_pattern now and every CDH_CHECK_INTERVAL: a change behind our back is logged once."""
        while True:
            self.core_pattern.check(self.settings.host_dir)
            await asyncio.sleep(self.settings.check_interval_s)
