"""Rendered manifests for the tests. Without kubectl these tests skip with the reason, and fail under
CDH_REQUIRE_KERNEL=1 (CI, tests/support/require.py), as `nox -s manifests` does (see noxfile.py)."""

from __future__ import annotations

import shutil

import pytest

from tests.manifests.kustomize import MISSING_KUBECTL, OVERLAYS, render
from tests.support.require import require

# What users apply: every provider overlay and the example of a user's own overlay.
APPLIED = (*OVERLAYS, "examples/my-cluster", "examples/monitoring")


@pytest.fixture(scope="session")
def kubectl_present():
    require(shutil.which("kubectl"), MISSING_KUBECTL)


@pytest.fixture(params=APPLIED)
def target(request):
    return request.param


@pytest.fixture
def objs(kubectl_present, target):
    return render(target)


@pytest.fixture
def base(kubectl_present):
    return render("base")
