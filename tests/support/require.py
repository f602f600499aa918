"""One way for a test to require its environment: skip here, fail in CI.

``require(condition, why)`` returns when ``condition`` holds. Otherwise the test is skipped with
``why`` on a developer's machine, and fails under ``CDH_REQUIRE_KERNEL=1``, which .ci/run sets: CI
installs everything the suites need (root, a writable core_pattern, gcc, gdb, unzip, openssl,
containerd, promtool, kubectl ...), so there a missing piece is a broken machine, not a reason to
pass quietly. Only a tool CI deliberately lacks (lldb) may skip with ``pytest.skip`` itself.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from types import ModuleType

import pytest

REQUIRE_VAR = "CDH_REQUIRE_KERNEL"  # the name predates the other requirements; CI sets it to 1


def required() -> bool:
    """True where a test that cannot run must fail (CI)."""
    return os.environ.get(REQUIRE_VAR) == "1"


def require(condition: object, why: str) -> None:
    """Go on when ``condition`` is true; else skip (``why``), or fail under CDH_REQUIRE_KERNEL=1."""
    if condition:
        return
    if required():
        pytest.fail(f"required ({REQUIRE_VAR}=1) but cannot run: {why}")
    pytest.skip(why)


def require_module(name: str, why: str) -> ModuleType:
    """:func:`require` that ``name`` can be imported; the module."""
    require(importlib.util.find_spec(name) is not None, why)
    return importlib.import_module(name)
