"""The one entry point: ``cdh <command>``; invoked under the name ``cdc`` it is the composer.

The composer path is taken before anything else is imported: it runs for
every crash while the kernel holds the dying process, so it must not pay for
argparse or the agent's stack.
"""

from __future__ import annotations

import os
import sys

from cdh import EXIT_CONFIG, EXIT_FAILURE, EXIT_OK, ondisk

COMPOSER_NAMES = (ondisk.COMPOSER, ondisk.COMPOSER + ".pyz")


def run() -> None:
    """What every entry point runs (the ``cdh`` script, ``python -m cdh``, the zipapp): :func:`main`,
    then the exit. A one-shot command (``sweep``, ``ls``, ``get``, ``doctor`` ...) ends without the
    interpreter's teardown, which only frees memory (botocore's and aiohttp's objects: 0.15 s of a
    0.6 s ``cdh sweep`` of a small zip here); when main() returns its work is done and written. What
    was registered with atexit (logging's flush; a caller's coverage or I/O meter) still runs. The
    composer and the agent exit as usual."""
    argv = sys.argv
    code = main(argv)
    if os.path.basename(argv[0]) in COMPOSER_NAMES or len(argv) < 2 or argv[1] in ("compose", "agent"):
        sys.exit(code)
    import atexit  # here: the composer's import list is measured (packaging/pyruntime.py)

    atexit._run_exitfuncs()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except BrokenPipeError:  # `cdh ls | head`: the reader left
        pass
    os._exit(code)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv if argv is None else argv)
    if os.path.basename(argv[0]) in COMPOSER_NAMES:
        return _compose(argv[1:])
    if len(argv) > 1 and argv[1] == "compose":
        return _compose(argv[2:])
    return _dispatch(argv[1:])


def _compose(args: list[str]) -> int:
    from cdh.composer.main import main as compose

    return compose(args)


def _dispatch(args: list[str]) -> int:
    import argparse

    from cdh import __version__

    parser = argparse.ArgumentParser(
        prog="cdh", description="Kubernetes core dump handler: capture crashes, upload them to S3.")
    parser.add_argument("--version", action="version", version=f"cdh {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser("compose", help="the composer (what the kernel runs; see `cdh compose -h`)")
    sub.add_parser("agent", help="run the node agent: host setup, intake, upload (the DaemonSet)")
    sub.add_parser("host", help="run the agent's host half alone: install, keep composer.env current, "
                                "restore at stop (the DaemonSet's privileged container)")
    sub.add_parser("install", help="install the composer into HOST_DIR and set the sysctls, once")
    sub.add_parser("uninstall", help="restore the sysctls and remove the composer")
    sweep = sub.add_parser("sweep", help="upload zips now (all in CORE_DIR, or the files given)")
    sweep.add_argument("files", nargs="*", metavar="FILE")
    cfg = sub.add_parser("config", help="validate the settings and routes, and print them (secrets hidden)")
    cfg.add_argument("--list", action="store_true", help="list every setting with its default")
    cfg.add_argument("--markdown", action="store_true", help="with --list: as a Markdown table")
    doctor = sub.add_parser("doctor", help="check this node: core_pattern, composer, CRI, disk, bucket")
    doctor.add_argument("--json", action="store_true", help="one JSON object instead of lines")
    doctor.add_argument("--host-root", default="/", metavar="DIR",
                        help="the node's root as mounted here (kubectl debug node: /host)")
    doctor.add_argument("--min-free", default="1GiB", metavar="SIZE",
                        help="least free space CORE_DIR should have (default 1GiB)")
    from cdh.tools.commands import add_commands  # ls, get, inspect: argparse only until run

    tools = add_commands(sub)
    ns = parser.parse_args(args)
    handler = {
        "agent": _agent, "host": _host, "install": _install, "uninstall": _uninstall,
        "sweep": _sweep, "config": _config, "doctor": _doctor, **tools,
    }[ns.command]
    from cdh.config import ConfigError

    try:
        return handler(ns)
    except ConfigError as err:
        print(f"cdh: {err}", file=sys.stderr)
        return EXIT_CONFIG
    except BrokenPipeError:
        if ns.command in ("agent", "host"):
            raise
        # `cdh ls | head`: the reader left; end quietly, as the Python docs advise.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK


def _settings():
    from cdh import config

    return config.from_environment("agent")


def _install(ns) -> int:
    from cdh.agent import host

    try:
        for line in host.install(_settings()):
            print(line)
    except (host.HostError, OSError) as err:  # OSError: a disk or permission error, one line too
        print(f"cdh install: {err}", file=sys.stderr)
        return EXIT_FAILURE
    return EXIT_OK


def _uninstall(ns) -> int:
    from cdh import config
    from cdh.agent import host

    try:
        settings = _settings()
    except config.ConfigError as err:
        # This is the DaemonSet's preStop hook: an invalid or vanished env-file (a bad edit, the ConfigMap
        # deleted with the namespace) must not leave kernel.core_pattern pointing at a removed composer.
        # The environment is what the DaemonSet pins, HOST_DIR included.
        print(f"cdh uninstall: {err}; using the environment alone", file=sys.stderr)
        env = {k: v for k, v in os.environ.items() if k != "CDH_CONFIG_FILE"}
        settings = config.from_environment("agent", env)
    for line in host.uninstall(settings):
        print(line)
    return EXIT_OK


def _agent(ns) -> int:
    from cdh.agent.main import run

    return run(_settings())


def _host(ns) -> int:
    from cdh.agent.hostside import run

    return run(_settings())


def _sweep(ns) -> int:
    from cdh.agent.sweep import run

    return run(_settings(), ns.files)


def _doctor(ns) -> int:
    from cdh.doctor import main

    return main(ns.host_root, ns.min_free, ns.json)


def _config(ns) -> int:
    from cdh import config

    if ns.list and ns.markdown:
        print(config.markdown_table())
        return EXIT_OK
    if ns.list:
        for name, aliases, default, doc in config.describe():
            alias = f" (IBM: {aliases})" if aliases else ""
            print(f"{name}{alias}\n    default: {default}\n    {doc}")
        return EXIT_OK
    settings = _settings()
    for spec in config.SPECS:
        value = settings.raw.get(spec.attr, "")
        shown = "<set>" if spec.secret and value else value
        print(f"{spec.name}={shown}" + (f"  # from {settings.sources[spec.attr]}"
                                        if settings.sources[spec.attr] != spec.name else ""))
    for note in settings.notes:
        print(f"# note: {note}")
    if settings.routes_file:
        from cdh import routes

        for line in routes.load(settings).describe():  # a bad file: one line, exit 3, as any setting
            print(f"# {line}")
    return EXIT_OK
