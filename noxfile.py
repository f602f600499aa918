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
