"""``cdh doctor``: is this node ready to capture and upload a crash? One line per check, a fix for each
failure, exit 0 only when nothing failed.

Needs no running agent: it reads the kernel's sysctls, HOST_DIR and CORE_DIR, runs the installed
composer once on a tiny fake core (into a temporary directory, with its own log), asks the container
runtime for the node's pods (its CRI socket, else crictl, as the composer does), and writes, reads and
deletes a probe object in the bucket (and in each route's, with the route's own credentials). Settings
come from the environment and CDH_CONFIG_FILE as for the agent, over HOST_DIR/composer.env (what the
agent last wrote for the composer), so on a node with no settings at all it still finds CORE_DIR.

Where to run it: in the agent's pod (``kubectl -n cdh exec ds/cdh-agent -- /opt/cdh/cdh.pyz doctor``),
or on a node where the agent does not run, from the image with the host's root mounted:
``kubectl debug node/NODE -it --profile=sysadmin --image=<cdh image> -- /opt/cdh/cdh.pyz doctor
--host-root /host``; programs on the host (cdc, crictl) then run chrooted into it.

Checks: node.py (sysctls, composer, runtime, composer.env, a dry-run capture, CRI, CORE_DIR) and
bucket.py (the routes file, the probe objects).
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import asdict, dataclass

from cdh import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, config, ondisk

PASS, FAIL, SKIP = "pass", "fail", "skip"


@dataclass
class Check:
    name: str
    status: str
    detail: str
    hint: str = ""  # how to fix it, when it failed (or what would make a skipped check run)


@dataclass(frozen=True)
class Options:
    host_root: str = "/"
    min_free_bytes: int = 1 << 30
    as_json: bool = False


class Node:
    """Paths on the node, seen from here (under ``host_root``), and how to run the node's programs."""

    def __init__(self, host_root: str) -> None:
        self.root = os.path.abspath(host_root)

    def path(self, node_path: str) -> str:
        return node_path if self.root == "/" else os.path.join(self.root, node_path.lstrip("/"))


def load_settings(node: Node, environ: dict[str, str] | None = None) -> tuple[config.Settings, str | None]:
    """(settings, why composer.env could not be read): environment and CDH_CONFIG_FILE over composer.env."""
    env = dict(os.environ if environ is None else environ)
    first = config.from_environment("agent", env)
    layers: list[dict[str, str]] = []
    problem = None
    composer_env = node.path(ondisk.HostDir(first.host_dir).composer_env)
    if os.path.isfile(composer_env):
        try:
            layers.append(config.read_env_file(composer_env))
        except config.ConfigError as err:
            problem = str(err)
    layers.append(env)
    if first.config_file:
        layers.append(config.read_env_file(first.config_file))
    try:
        return config.load(layers, "agent"), problem
    except config.ConfigError as err:  # composer.env itself holds a bad value: report it, go on without it
        return first, problem or f"{composer_env}: {err}"


def run(opts: Options) -> int:
    from cdh.doctor import bucket
    from cdh.doctor import node as node_checks

    node = Node(opts.host_root)
    settings, env_problem = load_settings(node)
    checks = node_checks.run_all(settings, node, opts, env_problem)
    checks += bucket.check_all(settings)
    print(render_json(checks) if opts.as_json else render_text(checks))
    return EXIT_FAILURE if any(c.status == FAIL for c in checks) else EXIT_OK


def render_text(checks: list[Check]) -> str:
    width = max(len(c.name) for c in checks)
    lines = []
    for c in checks:
        fix = f"  -> fix: {c.hint}" if c.status == FAIL and c.hint else (
            f"  ({c.hint})" if c.status == SKIP and c.hint else "")
        lines.append(f"{c.status.upper():4}  {c.name:{width}}  {c.detail}{fix}")
    counts = {s: sum(c.status == s for c in checks) for s in (PASS, FAIL, SKIP)}
    lines.append(f"{counts[PASS]} passed, {counts[FAIL]} failed, {counts[SKIP]} skipped")
    return "\n".join(lines)


def render_json(checks: list[Check]) -> str:
    return json.dumps({"ok": not any(c.status == FAIL for c in checks),
                       "checks": [asdict(c) for c in checks]}, indent=2)


def main(host_root: str, min_free: str, as_json: bool) -> int:
    """``cdh doctor`` (cdh/cli.py parses the flags)."""
    from cdh.config.values import size

    try:
        min_free_bytes = size(0)(min_free)
    except ValueError as err:
        print(f"cdh doctor: --min-free={min_free!r} is not valid: {err}", file=sys.stderr)
        return EXIT_USAGE
    return run(Options(host_root=host_root, min_free_bytes=min_free_bytes, as_json=as_json))
