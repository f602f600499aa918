"""Build the zipapp and lay out the runtime with the scripts the Containerfile runs.

The fixtures (`pyz`, `image_runtime`, `image_entry` in tests/conftest.py) build once per session.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def constant(script_name: str, name: str):
    """A constant of a packaging/ script, read without importing it (a script, not a module)."""
    with open(os.path.join(REPO, "packaging", script_name), encoding="utf-8") as f:
        tree = ast.parse(f.read())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == name for t in node.targets):
            return ast.literal_eval(node.value)
    raise KeyError(name)


# The agent's stack, which the composer must never load: the list packaging/pyruntime.py checks its
# measured import list against, so the tests and the packaging cannot disagree.
AGENT_ONLY: tuple[str, ...] = constant("pyruntime.py", "AGENT_ONLY")


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


def build_image(runtime_dir: str, out: str, *args: str) -> dict:
    """`nox -s image`'s last step: the image archive at ``out``; what it printed, as a dict
    (``image``, ``digest``, ``size`` ... by their first word)."""
    done = script("build_image.py", "--runtime", runtime_dir, "-o", out, *args)
    return {line.split()[0]: line.split(None, 1)[1] for line in done.stdout.splitlines() if line.strip()
            and not line.startswith(" ")}


def image_digest(archive: str) -> str:
    """The manifest digest the archive's index.json names (what a registry push keeps)."""
    import json
    import tarfile

    with tarfile.open(archive) as tar:
        return json.loads(tar.extractfile("index.json").read())["manifests"][0]["digest"]


def write_image_entry(runtime_dir: str, entry: str) -> str:
    """The image's /opt/cdh/cdh.pyz, written as the Containerfile writes it."""
    subprocess.run([f"{runtime_dir}/lib/ld.so", f"{runtime_dir}/bin/python3", "-m", "cdh.agent.pyruntime",
                    runtime_dir, entry], check=True, env={}, cwd="/")
    return entry
