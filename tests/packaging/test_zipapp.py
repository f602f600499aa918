"""dist/cdh.pyz: reproducible, our entry point, runnable by hand on a plain interpreter."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import zipfile

from tests.support.packaging import REPO, script


def sha256(path) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def test_same_inputs_give_the_same_bytes(pyz, tmp_path):
    again = tmp_path / "again.pyz"
    script("zipapp.py", "-o", str(again))
    assert sha256(again) == sha256(pyz)


def test_entry_skips_shivs_bootstrap_only_under_a_laid_out_runtime(pyz):
    with zipfile.ZipFile(pyz) as z:
        names = set(z.namelist())
        main = z.read("__main__.py").decode()
    with open(os.path.join(REPO, "packaging", "zipapp_main.py")) as f:
        assert main == f.read()
    assert "_bootstrap/__init__.py" in names and "environment.json" in names  # shiv's, for the fallback
    assert "site-packages/cdh/cli.py" in names and "site-packages/orjson/__init__.py" in names
    services = {n.split("/")[3] for n in names if n.startswith("site-packages/botocore/data/") and
                n.count("/") > 3}
    assert services == {"s3", "sts", "sso", "sso-oidc", "signin"}


def test_runs_by_hand_through_shivs_bootstrap(pyz, tmp_path):
    env = {"HOME": str(tmp_path), "PATH": os.environ.get("PATH", "")}  # shiv unpacks into ~/.shiv
    done = subprocess.run([sys.executable, "-I", str(pyz), "--version"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().startswith("cdh ")


def test_every_wheel_in_it_is_pinned(pyz):
    """Same inputs, same bytes only holds if no wheel resolves to whatever is newest on the day."""
    def norm(name: str) -> str:
        return name.lower().replace("-", "_")
    with open(os.path.join(REPO, "packaging", "constraints.txt")) as f:
        pins = dict(norm(line).strip().split("==") for line in f if "==" in line and line[0] != "#")
    with zipfile.ZipFile(pyz) as z:
        dists = [n.split("/")[1].removesuffix(".dist-info") for n in z.namelist()
                 if n.count("/") == 2 and n.endswith(".dist-info/METADATA")]
    wheels = {norm(name): version for name, version in (d.rsplit("-", 1) for d in dists)}
    wheels.pop("cdh", None)
    assert {name: pins.get(name) for name in wheels} == wheels
