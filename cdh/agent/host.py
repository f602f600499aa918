"""Host setup: install the composer into HOST_DIR, set and restore the kernel's sysctls.

Used by ``cdh install`` / ``cdh uninstall`` and by the agent at start and stop.
Stdlib only. The sysctls and what "ours" means: cdh/sysctl.py; the files: cdh/ondisk.py.

Rules:
- ``kernel.core_pattern`` is at most 127 bytes; we read it back and refuse a
  truncated value with an error naming HOST_DIR.
- The original value of each sysctl is backed up once. When the current value
  is already ours (the agent restarted), the backup is kept, never replaced by
  our own value. On a node taken over from the IBM Core Dump Handler, IBM's
  backups are the originals (cdh/agent/takeover.py); IBM's pattern never is.
- Uninstall restores and removes the backups and succeeds when files are gone.
- The composer is replaced atomically, never copied over a running binary.
- HOST_DIR, CORE_DIR and EVENT_DIR are used only when root owns them and no one else can write
  in them (cdh/fsutil.py); an existing one is never chmodded. Refused: one line naming the setting,
  before anything is written or any sysctl changed.
- A backup is restored only when it is a regular file that root owns, with one link, in HOST_DIR,
  and its content is plausible (cdh/sysctl.py's ``implausible``: a piped program must exist, be
  root's and writable by root only); else the kernel's default is written and the reason said.
  Values are bytes: a node whose pattern is not UTF-8 is backed up and restored exactly.

The composer is HOST_DIR/cdc: the zipapp on the self-contained runtime copied into
HOST_DIR/runtime/<id>/ (cdh/agent/pyruntime.py), taken from CDH_RUNTIME_DIR or from the runtime
the agent itself runs on (the image's /opt/cdh/runtime). A development checkout has neither:
there cdc is a launcher script for the current interpreter and checkout.
"""

from __future__ import annotations

import os
import sys

from cdh import fsutil, ondisk
from cdh.agent import pyruntime
from cdh.agent.takeover import Takeover
from cdh.config import Settings, render_env
from cdh.sysctl import (
    CORE_PATTERN_MAX,
    MAX_BACKUP_BYTES,
    SAFE_DEFAULTS,
    Sysctl,
    core_pattern,
    host_root,
    ibm_pattern,
    implausible,
    is_ours,
)


class HostError(RuntimeError):
    """Host setup failed; the message says what and how to fix it."""


def desired_sysctls(settings: Settings) -> dict[str, str]:
    return {
        "kernel.core_pattern": core_pattern(settings.host_dir),
        "kernel.core_pipe_limit": str(settings.core_pipe_limit),
        "fs.suid_dumpable": str(settings.suid_dumpable),
    }


# ---------------------------------------------------------------- install


def install(settings: Settings, sysctl: Sysctl | None = None, composer: bytes | None = None) -> list[str]:
    """Install the composer and set the sysctls. Returns what was done, one line each."""
    sysctl = sysctl or Sysctl.here()
    layout = ondisk.HostDir(settings.host_dir)
    pattern = core_pattern(settings.host_dir)
    if len(pattern.encode()) > CORE_PATTERN_MAX:
        raise HostError(
            f"kernel.core_pattern would be {len(pattern.encode())} bytes, over the kernel's "
            f"{CORE_PATTERN_MAX}: use a shorter CDH_HOST_DIR (now {settings.host_dir!r})")
    done: list[str] = []
    check_dirs(settings, layout)
    takeover = Takeover(settings, sysctl)  # a node the IBM Core Dump Handler ran on
    done += takeover.adopt_backups()
    done += install_composer(settings, layout, composer)
    fsutil.write_if_changed(layout.composer_env, render_env(settings).encode(), mode=0o600)
    done.append(f"composer settings written to {layout.composer_env}")
    if settings.deploy_crictl_config:
        fsutil.write_if_changed(layout.crictl_config, crictl_yaml(settings).encode(), mode=0o600)
        done.append(f"crictl config written to {layout.crictl_config}")
    for name, value in desired_sysctls(settings).items():
        done.append(_apply(sysctl, layout, name, value))
    got = sysctl.read("kernel.core_pattern")
    if got != pattern:
        raise HostError(
            f"kernel.core_pattern reads back as {got!r}, not {pattern!r}: the kernel truncated or "
            f"refused it; check CDH_HOST_DIR ({settings.host_dir!r})")
    return done + takeover.move_aside()


def check_dirs(settings: Settings, layout: ondisk.HostDir) -> None:
    """HOST_DIR, CORE_DIR, EVENT_DIR and HOST_DIR/state made (0700; CORE_DIR and EVENT_DIR opened to
    the readers CDH_ZIP_FILE_MODE and CDH_EVENT_FILE_MODE name) or checked, never otherwise chmodded;
    HostError naming the setting when one is not root's alone."""
    for attr, path, mode in (("host_dir", settings.host_dir, 0o700),
                             ("core_dir", settings.core_dir, ondisk.dir_mode(settings.zip_file_mode)),
                             ("event_dir", settings.event_dir, ondisk.dir_mode(settings.event_file_mode)),
                             ("host_dir", layout.state, 0o700)):
        try:
            fsutil.check_dir(path, create=True, mode=mode, readers=True)
        except fsutil.UnsafePath as err:
            raise HostError(f"{settings.env_name(attr)}: {err}: it holds what root runs or reads on the "
                            "node, so it must be root's and writable by root only") from None


def install_composer(settings: Settings, layout: ondisk.HostDir, composer: bytes | None = None) -> list[str]:
    """cdc on the bundled runtime; or ``composer`` as given; or, in a checkout, the launcher."""
    source = settings.runtime_dir or pyruntime.running_runtime()
    if composer is None and source:
        try:
            return pyruntime.install(settings.host_dir, source, layout.composer)
        except pyruntime.RuntimeInstallError as err:
            raise HostError(str(err)) from None
    fsutil.write_if_changed(layout.composer, composer or launcher_script(), mode=0o700)
    how = "as given" if composer else "development launcher for this interpreter and checkout"
    return [f"composer installed at {layout.composer} ({how})"]


def prune_runtimes(settings: Settings) -> list[str]:
    """Remove runtimes retired by an upgrade once no composer uses them (the agent calls this now
    and then: install retires the old runtime but may not remove it yet)."""
    current = _current_runtime(ondisk.HostDir(settings.host_dir))
    return pyruntime.prune(settings.host_dir, keep=current) if current else []


def _current_runtime(layout: ondisk.HostDir) -> str | None:
    """The runtime id cdc's first line names, or None (a launcher, or no cdc)."""
    try:
        with open(layout.composer, "rb") as f:
            first = f.readline(4096).decode(errors="replace")
    except FileNotFoundError:
        return None
    return layout.runtime_id(first)


def _apply(sysctl: Sysctl, layout: ondisk.HostDir, name: str, value: str) -> str:
    current = sysctl.read(name)
    backup = layout.backup(name)
    # Ours (a restart), or IBM's (its backups are the originals: cdh/agent/takeover.py): not an original.
    ours = (is_ours(current, layout.path) or ibm_pattern(current) is not None
            if name == "kernel.core_pattern" else False)
    if not ours and current != value and not os.path.lexists(backup):
        fsutil.atomic_write(backup, sysctl.read_bytes(name), mode=0o600)  # saved once, never replaced
    if current != value:
        sysctl.write(name, value)
        return f"{name} = {value!r} (was {current!r})"
    return f"{name} = {value!r} (unchanged)"


def launcher_script() -> bytes:
    """A composer that runs this interpreter and this cdh package (development checkouts only:
    it needs the host's Python; real installs use the bundled runtime)."""
    import cdh

    pkg_parent = os.path.dirname(os.path.dirname(os.path.abspath(cdh.__file__)))  # holds cdh/
    return (
        # One word: Linux passes everything after the interpreter as a single argument,
        # and Python rejects "-I -S" ("Unknown option: - ").
        f"#!{sys.executable} -IS\n"
        "# cdh composer launcher written by `cdh install` (development install).\n"
        "import sys\n"
        f"sys.path[:0] = {[pkg_parent, *_site_dirs()]!r}\n"
        "from cdh.cli import main\n"
        "sys.exit(main())\n"
    ).encode()


def _site_dirs() -> list[str]:
    # -S skips site for a faster start, so name the dirs that hold isal / zstandard.
    import site

    return [p for p in site.getsitepackages() if os.path.isdir(p)]


def crictl_yaml(settings: Settings) -> str:
    endpoint = settings.cri_endpoint or settings.cri_endpoint_hint or "unix:///run/containerd/containerd.sock"
    return f"runtime-endpoint: {endpoint}\nimage-endpoint: {endpoint}\ntimeout: 10\n"


# ---------------------------------------------------------------- uninstall


def uninstall(settings: Settings, sysctl: Sysctl | None = None) -> list[str]:
    """Restore the sysctls and remove what install wrote. Cores and events are kept."""
    sysctl = sysctl or Sysctl.here()
    layout = ondisk.HostDir(settings.host_dir)
    done: list[str] = []
    for name in desired_sysctls(settings):
        done.append(_restore(sysctl, layout, name))
    for path in (layout.composer, layout.composer_env, layout.crictl_config):
        if fsutil.remove_quietly(path):
            done.append(f"removed {path}")
    return done + pyruntime.remove_all(settings.host_dir)


def _restore(sysctl: Sysctl, layout: ondisk.HostDir, name: str) -> str:
    backup = layout.backup(name)
    current = sysctl.read(name)
    if name == "kernel.core_pattern" and not is_ours(current, layout.path):
        fsutil.remove_quietly(backup)
        return f"{name} left as {current!r}: it is not ours"
    try:
        original = trusted_backup(layout, name)
    except FileNotFoundError:
        if name != "kernel.core_pattern":
            return f"{name} left as {current!r}: no backup"
        original, why = None, "no backup"  # never leave a pattern pointing at a removed composer
    except (OSError, ValueError) as err:
        original, why = None, f"{os.path.basename(backup)} ignored ({err})"
    if original is None:
        sysctl.write(name, SAFE_DEFAULTS[name])
        fsutil.remove_quietly(backup)
        return f"{name}: {why}; set to {os.fsdecode(SAFE_DEFAULTS[name])!r}"
    sysctl.write(name, original)
    fsutil.remove_quietly(backup)
    unchecked = original.startswith(b"|") and _host_hidden()
    return f"{name} restored to {os.fsdecode(original)!r}" + (
        " (its program is not visible from this pod: not checked)" if unchecked else "")


def trusted_backup(layout: ondisk.HostDir, name: str) -> bytes:
    """The value backed up for ``name``, if it may be written back (see the module docstring);
    FileNotFoundError when there is none, UnsafePath or ValueError (saying why) otherwise."""
    fsutil.check_dir(layout.path)
    fd = fsutil.open_regular(layout.backup(name), os.O_RDONLY)
    try:
        data = os.read(fd, MAX_BACKUP_BYTES + 1)
    finally:
        os.close(fd)
    if len(data) > MAX_BACKUP_BYTES:
        raise ValueError(f"over {MAX_BACKUP_BYTES} bytes")
    value = data.removesuffix(b"\n")
    why = implausible(name, value, layout.path)
    if why:
        raise ValueError(why)
    return value


def _host_hidden() -> bool:
    root = host_root()
    if root is None:
        return True
    os.close(root)
    return False
