"""packaging/Containerfile without a container engine: it builds what the tests build and run.

The build stage runs the two scripts these tests run (zipapp.py, pyruntime.py); the final stage
holds only the runtime (+ /tmp), whose entrypoint test_host_runtime.py runs in a bare chroot.
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
    for src in re.findall(r"^COPY (?!--from)(.+) \S+$", "\n".join(stages()[0]), re.M):
        for path in src.split():
            assert os.path.exists(os.path.join(REPO, path)), path


def test_final_stage_is_the_runtime_alone_with_the_zipapp_as_entrypoint():
    final = stages()[-1]
    assert final[0] == "FROM scratch"
    assert [line for line in final if line.startswith("COPY")] == [
        "COPY --from=build /rootfs/ /", "COPY --from=build /opt/cdh /opt/cdh"]
    build = " ".join(stages()[0])
    # /opt/cdh/cdh.pyz is written by the function the image test below uses (image_entry).
    assert "-m cdh.agent.pyruntime /opt/cdh/runtime /opt/cdh/cdh.pyz" in build
    entry = json.loads(next(line for line in final if line.startswith("ENTRYPOINT"))[len("ENTRYPOINT"):])
    assert entry == ["/opt/cdh/cdh.pyz"]  # also what k8s-manifests run (command:, preStop)
    assert json.loads(next(line for line in final if line.startswith("CMD"))[len("CMD"):]) == ["agent"]


def test_nothing_names_one_architecture():
    with open(CONTAINERFILE) as f:
        code = "\n".join(line for line in f if not line.lstrip().startswith("#"))
    assert not re.search(r"x86_64|aarch64|amd64|arm64|ld-linux", code)
