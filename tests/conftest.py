"""Fixtures shared by every test suite."""

from __future__ import annotations

import os

import pytest

# Shared helpers: real S3 server process, fault proxy (tests/support/).
pytest_plugins = ["tests.support.fixtures"]


@pytest.fixture
def kernel():
    """Exclusive use of the kernel's core dump sysctls (one lock for every suite); restored after.

    Skips where the machine does not allow it, unless CDH_REQUIRE_KERNEL=1 (CI): then it fails.
    """
    from tests.support import kernel as kernel_support
    from tests.support.require import require

    why = kernel_support.unavailable()
    require(why is None, f"the real kernel cannot be used here: {why}")
    with kernel_support.exclusive() as saved:
        yield saved


@pytest.fixture
def start_agent(tmp_path):
    """start_agent(env, args=("agent",)) -> Proc; every process started is killed at teardown."""
    from tests.support.agentproc import Proc

    procs: list[Proc] = []

    def start(env: dict[str, str], args: tuple[str, ...] = ("agent",)) -> Proc:
        proc = Proc(list(args), env, tmp_path / f"agent-{len(procs)}.log")
        procs.append(proc)
        return proc

    yield start
    for p in procs:
        p.stop()


@pytest.fixture
def host_dir(tmp_path):
    """A temporary HOST_DIR; private, as the agent creates it."""
    d = tmp_path / "host"
    d.mkdir(mode=0o700)
    return d


@pytest.fixture
def fake_sysctl(tmp_path):
    """A cdh.sysctl.Sysctl over a fake /proc/sys tree (core_pattern "core", pipe limit 0)."""
    from cdh.sysctl import Sysctl
    from tests.support.agentproc import fake_sysctl_root

    return Sysctl(fake_sysctl_root(tmp_path / "proc-sys"))


@pytest.fixture
def clean_env(monkeypatch):
    """No CDH_* or IBM setting leaks from the developer's shell into a test."""
    from cdh.config import BY_ALIAS, NOT_SETTINGS

    for name in list(os.environ):
        if (name.startswith("CDH_") or name in BY_ALIAS) and not name.startswith(NOT_SETTINGS):
            monkeypatch.delenv(name)
    return monkeypatch


# The zipapp and the runtime, built once per session by the scripts the Containerfile runs
# (tests/support/packaging.py): packaging tests, and the kernel tests that run the composer
# through the installed runtime.


@pytest.fixture(scope="session")
def pyz(tmp_path_factory):
    from tests.support.packaging import build_pyz

    return build_pyz(str(tmp_path_factory.mktemp("zipapp") / "cdh.pyz"))


@pytest.fixture(scope="session")
def image_runtime(pyz, tmp_path_factory):
    """The image's /opt/cdh/runtime (a pathlib.Path)."""
    from tests.support.packaging import lay_out_runtime

    out = tmp_path_factory.mktemp("image") / "runtime"
    lay_out_runtime(pyz, str(out))
    return out


@pytest.fixture(scope="session")
def image_entry(image_runtime):
    """The image's /opt/cdh/cdh.pyz, beside the runtime as in the image."""
    from tests.support.packaging import write_image_entry

    return write_image_entry(str(image_runtime), os.path.join(os.path.dirname(image_runtime), "cdh.pyz"))


@pytest.fixture(scope="session")
def agent_image(image_runtime, tmp_path_factory) -> str:
    """The agent image as `nox -s image` builds it (packaging/build_image.py), from ``image_runtime``:
    the archive's path."""
    from tests.support.packaging import build_image

    out = str(tmp_path_factory.mktemp("agent-image") / "cdh-image.tar")
    build_image(str(image_runtime), out)
    return out

