"""A real containerd, driven the way kubelet drives it, crashing containers into the real kernel.

Fixtures:

- ``images`` (session): the pause image and two crasher images, OCI archives built here from
  busybox-static (tests/runtime/images.py).
- ``node`` (module): a private containerd started on its own socket, the images imported, and a
  :class:`~tests.runtime.kubelet.Kubelet` to make pods with. Torn down even when a test failed:
  pods removed through CRI, then whatever is left killed, unmounted and removed
  (:meth:`Containerd.cleanup`).
- ``installed`` (function): the composer installed by ``cdh.agent.host.install`` into a temporary
  HOST_DIR, on the self-contained runtime (tests/conftest.py ``image_runtime``), with
  ``CDH_CRI_ENDPOINT`` on our socket, inside the ``kernel`` fixture (tests/conftest.py: the
  machine-wide lock, sysctls restored).

Where containerd cannot run (not root, packages missing) the tests skip, unless
CDH_REQUIRE_KERNEL=1 (CI), which makes that a failure (tests/support/require.py).
"""

from __future__ import annotations

import os
import tempfile

import pytest

from tests.runtime import images as image_builder
from tests.runtime.containerd import Containerd, missing_tools
from tests.runtime.images import CRASHERS, PAUSE
from tests.runtime.kubelet import Kubelet
from tests.support.composer import installed_composer
from tests.support.require import require


def _unavailable() -> str | None:
    if os.geteuid() != 0:
        return "not root"
    missing = missing_tools()
    if missing:
        return f"missing {', '.join(missing)} (apt-get install containerd runc busybox-static; .ci/run does)"
    return None


@pytest.fixture(scope="session")
def images(tmp_path_factory) -> dict[str, image_builder.Image]:
    why = _unavailable()
    require(why is None, f"containerd cannot run here: {why}")
    d = str(tmp_path_factory.mktemp("images"))
    built = {PAUSE: image_builder.build(d, PAUSE, ["/bin/sleep", "2147483647"])}
    for name in CRASHERS:
        built[name] = image_builder.build(d, name, ["/bin/sh"])
    return built


class Node:
    """The running containerd, a kubelet for it, and where pods keep their logs."""

    def __init__(self, containerd: Containerd, kubelet: Kubelet, images: dict) -> None:
        self.containerd = containerd
        self.kubelet = kubelet
        self.images = images


@pytest.fixture(scope="module")
def node(images):
    # Short paths: unix socket paths have a 108-byte limit.
    base = tempfile.mkdtemp(prefix="cdh-ctrd-", dir="/tmp")
    containerd = Containerd(base, PAUSE)
    kubelet = None
    try:
        containerd.start()
        for image in images.values():
            containerd.import_image(image.archive, image.name.rsplit(":", 1)[0])
        os.makedirs(os.path.join(base, "pods"))
        os.makedirs(os.path.join(base, "triggers"))
        kubelet = Kubelet(containerd.client(), os.path.join(base, "pods"), os.path.join(base, "triggers"),
                          containerd.pod_uids)
        yield Node(containerd, kubelet, images)
    finally:
        problems = []
        if kubelet is not None:
            if not containerd.running:
                try:
                    containerd.start()  # a test stopped it: pods are removed through CRI, as kubelet would
                except RuntimeError as err:
                    problems.append(str(err))
            if containerd.running:
                problems += kubelet.remove_all()
            kubelet.client.close()
        problems += containerd.cleanup()
        assert not problems, "containerd teardown: " + "; ".join(problems)


@pytest.fixture
def installed(kernel, node, image_runtime):
    """The composer installed for real, on the self-contained runtime the image ships (so the CRI
    client runs with only what that runtime carries), asking our containerd; 5 log lines a container."""
    with installed_composer(image_runtime, CDH_CRI_ENDPOINT=node.containerd.endpoint, CDH_LOG_LINES="5",
                            CDH_CRI_TIMEOUT="10s") as settings:
        yield settings
