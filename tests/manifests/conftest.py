"""Rendered manifests for the tests. Without kubectl these tests skip with the reason;
CI runs `nox -s manifests` as well, which fails instead (see noxfile.py)."""

from __future__ import annotations

import shutil

import pytest

from tests.manifests.kustomize import MISSING_KUBECTL, OVERLAYS, render

# What users apply: every provider overlay and the example of a user's own overlay.
APPLIED = (*OVERLAYS, "examples/my-cluster", "examples/monitoring")


@pytest.fixture(scope="session")
def kubectl_present():
    if shutil.which("kubectl") is None:
        pytest.skip(MISSING_KUBECTL)


@pytest.fixture(params=APPLIED)
def target(request):
    return request.param


@pytest.fixture
def objs(kubectl_present, target):
    return render(target)


@pytest.fixture
def base(kubectl_present):
    return render("base")
