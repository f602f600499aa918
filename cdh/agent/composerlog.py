"""The composer's log lines on the agent's stdout, so ``kubectl logs`` shows them.

The composer runs on the host under the kernel and appends JSON lines to
HOST_DIR/composer.log, renamed to composer.log.1 at CDH_COMPOSER_LOG_MAX_BYTES
(cdh/composer/log.py). The agent follows that file and re-emits each line through
its own log: the composer's ``ts``, ``level``, ``event`` and fields, plus
``"component": "composer"``; the agent's level filter and redaction apply, and the
metrics count what the lines say (cdh/agent/metrics.py). A line that is not a JSON
object is relayed as ``composer.unparsed`` with its text, capped.

- Rotation: the file is read by descriptor; when the path names a new file, the
  old one (now .1) is drained, and kept open a few seconds more for composers
  that still hold it, while the new one is read from its start.
- Restarts: the position (device, inode, offset) is saved in
  HOST_DIR/state/composer-log.position at most once a second (HOST_DIR/state exists: the
  agent's install made it, or the DaemonSet mounts it; an agent from before state/ kept it
  at HOST_DIR/.composer-log.position, which is read when state/ has none). A restart resumes there,
  in composer.log or in composer.log.1 if it was rotated meanwhile, and says so
  (``composer_log.resumed``, how many bytes behind); lines written while the agent
  was down are relayed once, with their own timestamps.
- First start (no position): from the end of the file, saying how much was
  skipped (``composer_log.following``): old lines are never replayed as new.

The log is opened without following a link or blocking, and relayed only when it is a
regular file with one link (cdh/fsutil.py): a FIFO planted at its path would otherwise
hold the event loop in open(2) at start, before the agent listens. A refusal is logged
once (``composer_log.unreadable``), then again only when the reason changes.

Environment contents never reach this path: the composer reads /proc/<pid>/environ
only into the zip (opt-in) and never logs it; the relay adds nothing of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from typing import TYPE_CHECKING

import orjson

from cdh import fsutil, ondisk
from cdh.jsonline import LEVELS

if TYPE_CHECKING:
    from cdh.agent.log import Log

COMPONENT = "composer"
CHUNK = 256 << 10
READ_MAX = 4 << 20       # per wake: a flood is relayed over several turns of the loop
MAX_LINE = 64 << 10      # a longer "line" is cut (the composer's are well under 4 KiB)
SHOWN_MAX = 2000         # characters of an unparsable line that are relayed
POLL_S = 2.0             # inotify wakes us; the poll covers lost events
KEEP_ROTATED_S = 10.0    # composers holding the old file may still append to it after a rotation
SAVE_EVERY_S = 1.0


class _Tail:
    """One open log file: its identity, how far it was read, and an unfinished last line."""

    def __init__(self, path: str, offset: int | None) -> None:  # offset None: from the end
        self.path = path
        self.fd = fsutil.open_regular(path, os.O_RDONLY)
        st = os.fstat(self.fd)
        self.ident = (st.st_dev, st.st_ino)
        self.offset = st.st_size if offset is None else offset
        self.partial = b""

    def lines(self, budget: int) -> list[bytes]:
        out: list[bytes] = []
        while budget > 0:
            chunk = os.pread(self.fd, min(CHUNK, budget), self.offset)
            if not chunk:
                break
            self.offset += len(chunk)
            budget -= len(chunk)
            *complete, self.partial = (self.partial + chunk).split(b"\n")
            out.extend(complete)
            if len(self.partial) > MAX_LINE:
                out.append(self.partial[:MAX_LINE])
                self.partial = b""
        return out

    @property
    def done_offset(self) -> int:
        """Where a restart must read again: the start of the unfinished line."""
        return self.offset - len(self.partial)

    def close(self) -> None:
        os.close(self.fd)


def relay_line(log: Log, raw: bytes) -> None:
    text = raw.decode("utf-8", "replace").strip()
    if not text:
        return
    try:
        obj = orjson.loads(text)
    except orjson.JSONDecodeError:
        obj = None
    if not isinstance(obj, dict) or not isinstance(obj.get("event"), str):
        log.emit("warning", "composer.unparsed", {"component": COMPONENT, "line": text[:SHOWN_MAX]})
        return
    level = obj.pop("level", "info")
    event = obj.pop("event")
    fields = {"ts": obj.pop("ts")} if "ts" in obj else {}  # the composer's time, not the relay's
    fields["component"] = COMPONENT
    fields.update((k, v) for k, v in obj.items() if k != "component")
    log.emit(level if level in LEVELS else "info", event, fields)


class ComposerLogRelay:
    def __init__(self, host_dir: str, log: Log) -> None:
        self.host_dir = host_dir
        files = ondisk.HostDir(host_dir)
        self.path, self.rotated_path = files.composer_log, files.rotated_log
        self.position_path = files.log_position
        self.legacy_position_path = files.legacy_log_position
        self.log = log
        self.current: _Tail | None = None
        self.rotated: _Tail | None = None
        self.rotated_until = 0.0
        self._saved: tuple[int, int, int] | None = None
        self._saved_at = 0.0
        self._refusal: str | None = None   # the last reason a file was not relayed, said once

    # ------------------------------------------------------------ start

    def open_at_start(self) -> None:
        pos = self._load_position()
        if pos is None:
            self.current = self._open(self.path, None)
            self.log.info("composer_log.following", path=self.path,
                          skipped_bytes=self.current.offset if self.current else 0,
                          note="lines from before the agent's first start stay in the file, not relayed")
            return
        ident, offset = pos[:2], pos[2]
        here, rotated = _stat(self.path), _stat(self.rotated_path)
        if here is not None and (here.st_dev, here.st_ino) == ident and here.st_size >= offset:
            self.current = self._open(self.path, offset)
            self.log.info("composer_log.resumed", path=self.path, offset=offset,
                          behind_bytes=here.st_size - offset)
        elif rotated is not None and (rotated.st_dev, rotated.st_ino) == ident and rotated.st_size >= offset:
            self.rotated = self._open(self.rotated_path, offset)
            self.rotated_until = time.monotonic() + KEEP_ROTATED_S
            self.current = self._open(self.path, 0)
            self.log.info("composer_log.resumed", path=self.rotated_path, offset=offset,
                          behind_bytes=rotated.st_size - offset + (here.st_size if here else 0))
        else:
            self.current = self._open(self.path, 0)
            self.log.warning("composer_log.gap", path=self.path,
                             note="rotated more than once since the saved position: lines in between "
                                  "were not relayed (composer.log.1 may hold some)")
        self._saved = pos

    def _load_position(self) -> tuple[int, int, int] | None:
        for path in (self.position_path, self.legacy_position_path):
            try:
                with os.fdopen(fsutil.open_regular(path, os.O_RDONLY), "rb") as f:
                    p = json.loads(f.read(4096))
                return int(p["dev"]), int(p["ino"]), int(p["offset"])
            except FileNotFoundError:
                continue
            except (OSError, ValueError, KeyError, TypeError) as err:
                self.log.warning("composer_log.position_unreadable", path=path, error=str(err),
                                 action="following from the end")
                return None
        return None

    def _open(self, path: str, offset: int | None) -> _Tail | None:
        try:
            tail = _Tail(path, offset)
        except FileNotFoundError:
            return None  # no crash yet: read it from its start when it appears
        except OSError as err:
            if err.strerror != self._refusal:
                self._refusal = err.strerror
                self.log.warning("composer_log.unreadable", path=path, error=err.strerror,
                                 action="not relayed; tried again at every wake")
            return None
        self._refusal = None
        return tail

    # ------------------------------------------------------------ follow

    def pump(self) -> int:
        """Relay every complete new line; returns how many."""
        n = 0
        if self.rotated is not None:
            n += self._relay(self.rotated)
            if time.monotonic() > self.rotated_until:
                self.rotated.close()
                self.rotated = None
        if self.current is None:
            self.current = self._open(self.path, 0)  # created after we started: every line is new
        if self.current is not None:
            n += self._relay(self.current)
            n += self._follow_rotation(self.current)
        self._save()
        return n

    def _relay(self, tail: _Tail) -> int:
        lines = tail.lines(READ_MAX)
        for raw in lines:
            relay_line(self.log, raw)
        return len(lines)

    def _follow_rotation(self, tail: _Tail) -> int:
        st = _stat(self.path)
        if st is None:
            return 0  # between the composer's rename and its create
        if (st.st_dev, st.st_ino) != tail.ident:
            if self.rotated is not None:
                self._relay(self.rotated)
                self.rotated.close()
            self.rotated, self.rotated_until = tail, time.monotonic() + KEEP_ROTATED_S
            self.current = self._open(self.path, 0)
            return self._relay(self.current) if self.current is not None else 0
        if st.st_size < tail.offset:
            self.log.warning("composer_log.truncated", path=self.path,
                             note="truncated in place: reading it from the start")
            tail.offset, tail.partial = 0, b""
            return self._relay(tail)
        return 0

    def _save(self, force: bool = False) -> None:
        if self.current is None:
            return
        pos = (*self.current.ident, self.current.done_offset)
        now = time.monotonic()
        if pos == self._saved or (not force and now - self._saved_at < SAVE_EVERY_S):
            return
        data = json.dumps({"dev": pos[0], "ino": pos[1], "offset": pos[2]}).encode()
        try:
            try:
                fsutil.atomic_write(self.position_path, data)
            except FileNotFoundError:  # no state/ yet (a HOST_DIR no install prepared): ours to make
                os.mkdir(os.path.dirname(self.position_path), 0o700)
                fsutil.atomic_write(self.position_path, data)
        except OSError as err:
            self.log.debug("composer_log.position_not_saved", error=err.strerror)
            return
        self._saved, self._saved_at = pos, now

    async def run(self) -> None:
        """Follow until cancelled (inotify on HOST_DIR, plus a slow poll)."""
        from asyncinotify import Inotify, Mask

        self.open_at_start()
        try:
            with Inotify() as inotify:
                with contextlib.suppress(OSError):  # no watch: the poll alone still relays
                    inotify.add_watch(self.host_dir, Mask.MODIFY | Mask.CREATE | Mask.MOVED_TO | Mask.ONLYDIR)
                events = aiter(inotify)
                while True:
                    self.pump()
                    # asyncio.timeout, not wait_for: in 3.11 wait_for swallows a cancel that comes
                    # as an event arrives, and the agent's stop then waited for this task forever.
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(POLL_S):
                            await anext(events)
        finally:
            self.close()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            if self.current is not None:
                self.pump()
            self._save(force=True)
        for tail in (self.current, self.rotated):
            if tail is not None:
                tail.close()
        self.current = self.rotated = None


def _stat(path: str) -> os.stat_result | None:
    try:
        return os.stat(path, follow_symlinks=False)
    except FileNotFoundError:
        return None
