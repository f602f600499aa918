"""The composer's entry point: ``main(args) -> int``, run by the kernel for every crash.

The order of work (README "Composer") is what keeps cores safe:

1. a one-line log summary, before anything heavy;
2. /proc facts of the crasher, while the kernel still holds it;
3. (only with a pod selector, or a filename template naming pod facts) ask
   the runtime who the pod is, bounded by one CRI timeout;
4. stream stdin into ``CORE_DIR/.<name>.zip.part`` (bounded memory);
5. close stdin: the kernel lets the dying process go;
6. the rest of the runtime metadata, then the small entries and dump-info;
7. finish, fsync, rename to ``<name>.zip``, fsync the directory; the event file.

Why step 3 is conditional: entry names inside the zip carry ``<name>``, and
the core entry's name is written before the core, so a name that needs the
pod must be known before streaming. Only then do we pay for a lookup while
the crasher is held; the default template never does.

Exit codes (IBM's): 0 captured or skipped by the selector, 1 error, 32 the
deadline was hit (the zip is still valid, and marked). Nothing raises back
into the kernel, and stdin is always released.
"""

from __future__ import annotations

import os
import resource
import sys
import time

from cdh import EXIT_FAILURE, EXIT_OK, ondisk
from cdh.composer import capture, kernel
from cdh.composer.log import ComposerLog
from cdh.composer.run import PROC_ROOT_VAR, Run

ENV_FILE_VAR = "CDH_COMPOSER_ENV"  # names the env-file for manual runs


def main(args: list[str]) -> int:
    started = time.monotonic()
    try:
        _protect_self()
        if args[:1] in (["--help"], ["-help"]):
            print(kernel.USAGE)
            return EXIT_OK
        return _compose(args, started)
    except BaseException as err:  # never fail back into the kernel
        _last_words(err)
        return EXIT_FAILURE
    finally:
        try:
            capture.release_stdin()
        except OSError:
            pass


def _protect_self() -> None:
    """No core dumps of our own, and fds 1 and 2 open (the kernel may give us none)."""
    # The kernel starts pipe helpers with RLIMIT_CORE = 1, its marker against recursion:
    # a helper that crashes with limit 1 is not piped to a new helper. 0 would lose
    # that protection (verified on 6.18), and any value below a page writes no file core.
    _, hard = resource.getrlimit(resource.RLIMIT_CORE)
    limit = 0 if hard == 0 else 1
    try:
        resource.setrlimit(resource.RLIMIT_CORE, (limit, limit))
    except (OSError, ValueError):
        pass
    for fd in (1, 2):
        try:
            os.fstat(fd)
        except OSError:
            null = os.open(os.devnull, os.O_RDWR)
            if null != fd:
                os.dup2(null, fd, inheritable=False)
                os.close(null)


def _last_words(err: BaseException) -> None:
    try:
        from cdh import jsonline

        os.write(2, jsonline.line("error", "compose.crashed", {"error": repr(err)[:500]}))
    except BaseException:
        pass


def _compose(args: list[str], started: float) -> int:
    kargs = kernel.parse(args)
    settings, config_errors = load_settings(kargs.core_dir)
    log = ComposerLog(settings.host_dir, settings.composer_log_level, settings.composer_log_max_bytes)
    uuid = new_uuid()
    log.context = {"uuid": uuid}
    log.info("compose.start", **kargs.summary())
    for error in config_errors:
        log.error("config.invalid", error=error, note="ignored; every other setting applies")
    if kargs.ignored:
        log.warning("args.ignored", args=kargs.ignored)
    deadline = started + settings.composer_timeout_s
    try:
        return Run(kargs, settings, log, uuid, deadline, started).execute()
    finally:
        log.close()


def load_settings(core_dir: str | None):
    """(settings, errors): composer.env beside us, then the environment, then ``-d``.

    A bad value must not lose the core: the offending variables are dropped
    (their defaults used) and the errors returned for the log.
    """
    from cdh import config

    errors: list[str] = []
    layers: list[dict[str, str]] = []
    env_file = os.environ.get(ENV_FILE_VAR) or os.path.join(
        os.path.dirname(os.path.realpath(sys.argv[0] or ".")), ondisk.COMPOSER_ENV)
    if os.path.isfile(env_file):
        try:  # a bad line costs that line only (cdh/config/envfile.py)
            layers.append(config.read_env_file(env_file, errors))
        except config.ConfigError as err:
            errors.append(str(err))
    layers.append({k: v for k, v in os.environ.items() if k not in (ENV_FILE_VAR, PROC_ROOT_VAR)})
    if core_dir:
        layers.append({"CDH_CORE_DIR": core_dir})
    try:
        return config.load(layers, scope="composer"), errors
    except config.ConfigError as err:
        errors.append(str(err))
    kept = [{k: v for k, v in layer.items() if _loads_alone(config, k, v, errors)} for layer in layers]
    try:
        return config.load(kept, scope="composer"), errors
    except config.ConfigError as err:  # a combination only: fall back to every default
        errors.append(str(err))
        return config.load([], scope="composer"), errors


def _loads_alone(config, name: str, value: str, errors: list[str]) -> bool:
    try:
        config.load([{name: value}], scope="composer")
        return True
    except config.ConfigError as err:
        if str(err) not in errors:
            errors.append(str(err))
        return False


def new_uuid() -> str:
    """A random (version 4) UUID, without importing ``uuid`` (it costs start-up time)."""
    b = bytearray(os.urandom(16))
    b[6] = (b[6] & 0x0F) | 0x40
    b[8] = (b[8] & 0x3F) | 0x80
    h = b.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"

