"""The reliability suite: faults, hostile input and load against the real composer and agent.

One module per area (tests/reliability/test_<area>.py). Each test records what it observed in
its area's figures (tests/reliability/figures.py); the run ends with one summary line per area.
Real-kernel tests hold the ``kernel`` fixture (a machine-wide lock; the sysctls are restored).
"""

from __future__ import annotations

import shutil

import pytest

from tests.reliability import figures as figures_mod
from tests.reliability.node import Node, build_crasher
from tests.support.require import require


@pytest.fixture(scope="session")
def crasher(tmp_path_factory):
    require(shutil.which("gcc"), "gcc is needed to build the crasher (.ci/run installs it)")
    return build_crasher(tmp_path_factory.mktemp("reliability-crasher"))


@pytest.fixture
def node(kernel, image_runtime, crasher):
    n = Node(image_runtime, crasher)
    try:
        yield n
    finally:
        n.cleanup()


@pytest.fixture
def figures(request) -> figures_mod.Recorder:
    """This test's area's counters (the module's AREA, else its name: test_<area>.py)."""
    name = request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_")
    return figures_mod.Recorder(getattr(request.module, "AREA", None) or name)


@pytest.fixture(autouse=True)
def _one_attack_per_security_case(request):
    """Each test of a module with AREA = "security" is one case and one attack tried."""
    yield
    if getattr(request.module, "AREA", None) == "security":
        recorder = figures_mod.Recorder("security")
        recorder.case()
        recorder.faults(1)


def pytest_terminal_summary(terminalreporter):
    """One line per area that ran (figures.py), the lines the README's Reliability section quotes."""
    lines = figures_mod.summary_lines()
    if lines:
        terminalreporter.section("reliability figures")
        for line in lines:
            terminalreporter.write_line(line)
