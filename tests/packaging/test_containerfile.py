"""packaging/Containerfile without a container engine: it builds what the tests build and run.

The build stage runs the scripts these tests run (zipapp.py, pyruntime.py, build_image.py --rootfs);
the final stage copies build_image.py's three layer trees, which test_image.py shows are the members
of `nox -s image`'s layers, and sets the same config (entrypoint, environment, user, labels).
"""

from __future__ import annotations

import json
import os
import re

from tests.support.packaging import REPO

CONTAINERFILE = os.path.join(REPO, "packaging", "Containerfile")


def stages() -> list[list[str]]:
    with open(CONTAINERFILE) as f:
        text = re.sub(r"\\\n", " ", f.read())
    found: list[list[str]] = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("FROM "):
            found.append([line])
        elif line and not line.startswith("#") and found:
            found[-1].append(line)
    return found


def test_build_stage_runs_the_scripts_the_tests_run():
    build = " ".join(stages()[0])
    assert "packaging/zipapp.py -o /build/cdh.pyz" in build
    assert "packaging/pyruntime.py --pyz /build/cdh.pyz --out /opt/cdh/runtime" in build
    assert "packaging/build_image.py --runtime /opt/cdh/runtime --rootfs /layers" in build
    for src in re.findall(r"^COPY (?!--from)(.+) \S+$", "\n".join(stages()[0]), re.M):
        for path in src.split():
            assert os.path.exists(os.path.join(REPO, path)), path


def test_final_stage_is_the_three_layers_with_the_config_nox_image_writes():
    final = stages()[-1]
    assert final[0] == "FROM scratch"
    assert [line for line in final if line.startswith("COPY")] == [
        f"COPY --from=build /layers/{layer}/ /" for layer in build_image().LAYERS]
    entry = json.loads(next(line for line in final if line.startswith("ENTRYPOINT"))[len("ENTRYPOINT"):])
    assert entry == ["/opt/cdh/cdh.pyz"]  # also what k8s-manifests run (command:, preStop)
    assert json.loads(next(line for line in final if line.startswith("CMD"))[len("CMD"):]) == ["agent"]
    assert "USER 0:0" in final and "WORKDIR /" in final
    env = next(line for line in final if line.startswith("ENV "))[len("ENV "):].split()
    assert env == build_image().ENV
    label = next(line for line in final if line.startswith("LABEL "))
    keys = re.findall(r"(org\.opencontainers\.image\.[a-z]+)=", label)
    assert keys == list(build_image().labels("v", "r", "s", "c")), "labels differ from build_image.py's"


def build_image():
    """packaging/build_image.py as a module (it is a script: stdlib only, nothing runs at import)."""
    import importlib.util

    path = os.path.join(REPO, "packaging", "build_image.py")
    spec = importlib.util.spec_from_file_location("build_image", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_nothing_names_one_architecture():
    with open(CONTAINERFILE) as f:
        code = "\n".join(line for line in f if not line.lstrip().startswith("#"))
    assert not re.search(r"x86_64|aarch64|amd64|arm64|ld-linux", code)
