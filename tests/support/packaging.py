"""Build the zipapp and lay out the runtime with the scripts the Containerfile runs.

The fixtures (`pyz`, `image_runtime`, `image_entry` in tests/conftest.py) build once per session.
"""

from __future__ import annotations

import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def script(name: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, os.path.join(REPO, "packaging", name), *args],
                          check=True, capture_output=True, text=True)


def build_pyz(out: str) -> str:
    script("zipapp.py", "-o", out)
    return out


def lay_out_runtime(pyz: str, out: str) -> str:
    script("pyruntime.py", "--pyz", pyz, "--out", out)
    return out


def write_image_entry(runtime_dir: str, entry: str) -> str:
    """The image's /opt/cdh/cdh.pyz, written as the Containerfile writes it."""
    subprocess.run([f"{runtime_dir}/lib/ld.so", f"{runtime_dir}/bin/python3", "-m", "cdh.agent.pyruntime",
                    runtime_dir, entry], check=True, env={}, cwd="/")
    return entry
