"""Taking a node over from the IBM Core Dump Handler: its backups kept, its files out of the way.

A node that ran IBM's agent may still hold (IBM's pod stopped without its preStop hook, or the hook
stopped half-way, which it often does: IBM #66, a missing ``.bak``):

- IBM's pattern in ``kernel.core_pattern``: ``|<D>/cdc -c=%c ... -d=<CORE_DIR> -h=%h -E=%E``
  (cdh/sysctl.py :func:`~cdh.sysctl.ibm_pattern`), pointing at IBM's composer in IBM's HOST_DIR ``D``;
- ``D/core_pattern.bak``, ``core_pipe_limit.bak``, ``suid_dumpable.bak``: **the node's real
  originals**, saved by IBM's agent when it first changed them;
- ``D/cdc`` (IBM's composer, an ELF binary), ``D/.env`` (its settings, unprefixed names),
  ``D/crictl`` (IBM's bundled v1.22) and ``D/crictl.yaml``, and ``D/composer.log`` (text lines).

:class:`Takeover` runs with every install, in two steps:

1. (before the sysctls are set) IBM's originals become cdh's backups (when cdh has none for that
   sysctl), so that uninstall restores the node as it was before IBM, also when IBM's HOST_DIR is
   not cdh's (GKE COS: IBM used /home/kubernetes/bin, cdh /home/kubernetes/bin/cdh). IBM's pattern
   itself is never backed up as an original (host.py asks :func:`~cdh.sysctl.ibm_pattern`).
2. (once cdh's composer and pattern are in place, so no crash finds no composer) IBM's files
   move into ``D/ibm-backup-<UTC time>/``, kept for the user: IBM's ``.env`` and ``cdc``,
   and in cdh's own HOST_DIR what cdh's composer would otherwise pick up (IBM's old crictl, a
   crictl.yaml cdh was not asked to write, IBM's text log where cdh writes JSON lines). In another
   directory the backups move too, once copied: an IBM preStop hook that still runs later then stops
   at its first missing ``.bak`` before it can restore IBM's view of the node or delete anything.
   Nothing else in ``D`` is touched (GKE's own crictl lives in /home/kubernetes/bin).
3. Every setting in IBM's ``.env`` that differs from what cdh will use is said, one line each:
   IBM's composer read it from there, and cdh's does not.

In cdh's own HOST_DIR (IBM's default, and OpenShift's /mnt/core-dump-handler) the backup files have
the same names as cdh's: IBM's are cdh's, kept in place. Stdlib only, like host.py.

What a node user could have planted is never trusted (README "Security"): IBM's directory is taken
over only when it is root's alone, as cdh's own HOST_DIR must be (else it is named and left as it
is), and what is read in it is opened without following a link or blocking, and used only when it
is a regular root file with one link (cdh/fsutil.py :func:`~cdh.fsutil.open_regular`).
"""

from __future__ import annotations

import os
import time

from cdh import fsutil, ondisk
from cdh.config import ConfigError, Settings, load, parse_env_text
from cdh.config.ibm import COMPOSER_ENV
from cdh.config.table import BY_ALIAS
from cdh.sysctl import MAX_BACKUP_BYTES, Sysctl, ibm_pattern

SYSCTLS = ("kernel.core_pattern", "kernel.core_pipe_limit", "fs.suid_dumpable")
IBM_ENV = ".env"
IBM_CRICTL = "crictl"
BACKUP_DIR_PREFIX = "ibm-backup-"
MAX_ENV_BYTES = 1 << 20


class Takeover:
    """What IBM's agent left on this node (IBM's HOST_DIRs), adopted in two steps (module docstring)."""

    def __init__(self, settings: Settings, sysctl: Sysctl) -> None:
        self.settings = settings
        self.ours = os.path.realpath(settings.host_dir)
        self.ibm_core_dir: str | None = None
        self.dirs: list[str] = []
        found = ibm_pattern(sysctl.read("kernel.core_pattern"))
        if found is not None:
            self.dirs.append(found[0])
            self.ibm_core_dir = found[1]
        if _looks_like_ibm(settings.host_dir) and self.ours not in map(os.path.realpath, self.dirs):
            self.dirs.append(settings.host_dir)
        self.refused: list[str] = []
        self.dirs = [d for d in self.dirs if self._root_only(d)]

    def _root_only(self, d: str) -> bool:
        try:
            fsutil.check_dir(d)
        except FileNotFoundError:
            return False
        except OSError as err:
            self.refused.append(f"IBM Core Dump Handler found in {d}, which is not root's alone ({err}): "
                                "its backups are not adopted and its files are left as they are")
            return False
        return True

    def _same(self, d: str) -> bool:
        return os.path.realpath(d) == self.ours

    def adopt_backups(self) -> list[str]:
        """IBM's originals as cdh's backups, where cdh has none (IBM's HOST_DIR elsewhere)."""
        layout = ondisk.HostDir(self.settings.host_dir)
        done = self.refused + [f"IBM Core Dump Handler found in {d}: taking the node over" for d in self.dirs]
        for d in (d for d in self.dirs if not self._same(d)):
            for name in SYSCTLS:
                original = _head(ondisk.HostDir(d).backup(name), MAX_BACKUP_BYTES + 1)
                if (original is not None and len(original) <= MAX_BACKUP_BYTES
                        and not os.path.lexists(layout.backup(name))):
                    fsutil.atomic_write(layout.backup(name), original, mode=0o600)
                    done.append(f"{name}: the original {os.fsdecode(original)!r} from IBM's "
                                f"{ondisk.HostDir(d).backup(name)} is cdh's backup now")
        return done

    def move_aside(self) -> list[str]:
        """IBM's files out of cdh's and IBM's way, into ``D/ibm-backup-<time>/``; what differs in its
        ``.env``; IBM's zips cdh will not see."""
        done: list[str] = []
        for d in self.dirs:
            done += self._move_dir(d, same=self._same(d))
        core_dir = self.ibm_core_dir
        if core_dir and os.path.realpath(core_dir) != os.path.realpath(self.settings.core_dir):
            left = _zips(core_dir)
            if left:
                done.append(f"IBM's CORE_DIR {core_dir} holds {left} zip(s) cdh does not upload (it "
                            f"uploads from {self.settings.core_dir}): move them there to send them")
        return done

    def _move_dir(self, d: str, same: bool) -> list[str]:
        ibm = ondisk.HostDir(d)
        moving = [] if same else [ibm.backup(name) for name in SYSCTLS]
        env = os.path.join(d, IBM_ENV)
        done = _env_differences(self.settings, env) if os.path.isfile(env) else []
        moving.append(env)
        if not same or _is_elf(ibm.composer):
            moving.append(ibm.composer)
        if same:
            moving.append(os.path.join(d, IBM_CRICTL))
            if not self.settings.deploy_crictl_config:
                moving.append(ibm.crictl_config)
        if _is_text_log(ibm.composer_log):
            moving.append(ibm.composer_log)
        moving = [p for p in moving if os.path.lexists(p)]
        if moving:
            aside = os.path.join(d, BACKUP_DIR_PREFIX + time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()))
            os.makedirs(aside, mode=0o700, exist_ok=True)
            for path in moving:
                os.rename(path, os.path.join(aside, os.path.basename(path)))
            names = ", ".join(os.path.basename(p) for p in moving)
            done.append(f"IBM's {names} moved to {aside} (kept; cdh neither reads nor removes them)")
        return done


def _looks_like_ibm(d: str) -> bool:
    """IBM's agent was here: its .env (cdh never writes one), or a cdc that is an ELF binary."""
    return os.path.isfile(os.path.join(d, IBM_ENV)) or _is_elf(ondisk.HostDir(d).composer)


def _env_differences(settings: Settings, path: str) -> list[str]:
    """One line per IBM composer setting in ``path`` that cdh would not use as IBM's composer did."""
    head = _head(path, MAX_ENV_BYTES)
    if head is None:
        return []
    lines = head.decode("utf-8", "replace").splitlines()
    out = []
    for line in lines:
        try:
            parsed = parse_env_text(line, path)
        except ConfigError:
            continue
        for key, value in parsed.items():
            alias = COMPOSER_ENV.get(key)
            if alias is None:
                continue
            spec = BY_ALIAS[alias][0]
            try:
                theirs = load([{alias: value}]).values[spec.attr]
            except ConfigError as err:
                out.append(f"IBM's {path} has {key}={value!r}, which cdh cannot read ({err})")
                continue
            mine = settings.values.get(spec.attr)
            if theirs != mine and not (spec.attr == "event_dir" and str(theirs).lower() == str(mine).lower()):
                out.append(f"IBM's composer used {key}={value!r} ({path}); cdh uses "
                           f"{settings.env_name(spec.attr)}={settings.raw.get(spec.attr, '')!r}: "
                           f"set {alias} to keep IBM's")
    return out


def _head(path: str, size: int) -> bytes | None:
    """Up to ``size`` bytes of ``path`` if it is a regular root file with one link, else None (a FIFO,
    a link or a user's file planted in IBM's directory is never read, never waited on)."""
    try:
        fd = fsutil.open_regular(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        return os.read(fd, size)
    except OSError:
        return None
    finally:
        os.close(fd)


def _is_elf(path: str) -> bool:
    return _head(path, 4) == b"\x7fELF"


def _is_text_log(path: str) -> bool:
    """IBM's composer log (``LEVEL - time - message`` lines), not cdh's JSON lines."""
    head = _head(path, 1)
    return bool(head) and head != b"{"


def _zips(core_dir: str) -> int:
    try:
        return sum(ondisk.is_finished_zip(n) for n in os.listdir(core_dir))
    except OSError:
        return 0
