"""Build the zipapp and lay out the runtime with the scripts the Containerfile runs.

The fixtures (`pyz`, `image_runtime`, `image_entry` in tests/conftest.py) build once per session.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def pyruntime_constant(name: str):
    """A constant of packaging/pyruntime.py, read without importing it (it is a script, not a module)."""
    with open(os.path.join(REPO, "packaging", "pyruntime.py"), encoding="utf-8") as f:
        tree = ast.parse(f.read())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == name for t in node.targets):
            return ast.literal_eval(node.value)
    raise KeyError(name)


# The agent's stack, which the composer must never load: the list packaging/pyruntime.py checks its
# measured import list against, so the tests and the packaging cannot disagree.
AGENT_ONLY: tuple[str, ...] = pyruntime_constant("AGENT_ONLY")


def agent_only(modules) -> list[str]:
    """Those of ``modules`` that belong to the agent's stack (or are cdh.agent's)."""
    return sorted(n for n in modules if n.split(".")[0] in AGENT_ONLY or n.startswith("cdh.agent"))


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
