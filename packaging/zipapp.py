"""Build cdh.pyz with shiv, reproducibly: `nox -s zipapp`, or `python packaging/zipapp.py [-o OUT]`.

Settings come from shiv.toml. Steps: pip installs the pinned wheels (pyproject.toml's dependencies,
packaging/constraints.txt) into a staging site-packages, the cdh sources are copied beside them,
botocore's models are cut to the services the agent calls, native code loses its debug info, file
modes are normalised (the umask must not change the bytes); shiv packs that; then the zipapp's
``__main__`` is replaced by packaging/zipapp_main.py (skip shiv's bootstrap under a laid-out runtime).

Needs pip, shiv and (with strip_debug) binutils' ``strip`` on PATH. Runs on the build machine and
in the Containerfile: no cdh imports.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import subprocess
import sys
import tempfile
import tomllib
import zipfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MAIN_TEMPLATE = os.path.join(REPO, "packaging", "zipapp_main.py")
BOTOCORE_DATA = os.path.join("botocore", "data")


def load_settings(repo: str = REPO) -> tuple[dict, dict, list[str]]:
    with open(os.path.join(repo, "shiv.toml"), "rb") as f:
        toml = tomllib.load(f)
    with open(os.path.join(repo, "pyproject.toml"), "rb") as f:
        deps = tomllib.load(f)["project"]["dependencies"]
    return toml["shiv"], toml["cdh"], deps


def build(output: str, repo: str = REPO) -> str:
    """Build the zipapp at ``output``; returns its path."""
    shiv, cdh, deps = load_settings(repo)
    with tempfile.TemporaryDirectory(prefix="cdh-zipapp-") as tmp:
        stage = os.path.join(tmp, "site-packages")
        pip_install(stage, deps, os.path.join(repo, cdh["constraints"]))
        copy_package(os.path.join(repo, "cdh"), os.path.join(stage, "cdh"))
        prune_botocore(stage, cdh.get("botocore_services"))
        if cdh.get("strip_debug", False):
            strip_debug(stage)
        normalise(stage)
        raw = os.path.join(tmp, "shiv.pyz")
        run_shiv(stage, raw, shiv)
        os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
        replace_main(raw, output)
    return output


def pip_install(stage: str, deps: list[str], constraints: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         "--no-compile", "--only-binary=:all:", "--target", stage, "-c", constraints, *deps],
        check=True)


def copy_package(src: str, dst: str) -> None:
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


def prune_botocore(stage: str, services: list[str] | None) -> None:
    """Keep the top-level files of botocore/data and the named services' models."""
    data = os.path.join(stage, BOTOCORE_DATA)
    if services is None or not os.path.isdir(data):
        return
    for name in os.listdir(data):
        path = os.path.join(data, name)
        if os.path.isdir(path) and name not in services:
            shutil.rmtree(path)


def strip_debug(stage: str) -> None:
    """Drop debug sections (never symbols code needs) from every shared object."""
    strip = shutil.which("strip")
    if strip is None:
        sys.exit("packaging/zipapp.py: `strip` (binutils) is needed for strip_debug = true in shiv.toml")
    objects = sorted(p for p in walk_files(stage) if ".so" in os.path.basename(p))
    if objects:
        subprocess.run([strip, "--strip-debug", *objects], check=True)


def normalise(stage: str) -> None:
    """Modes independent of the umask; no byte-code (shiv skips it, the runtime compiles its own)."""
    for root, dirs, files in os.walk(stage):
        for d in [d for d in dirs if d == "__pycache__"]:
            shutil.rmtree(os.path.join(root, d))
            dirs.remove(d)
        for name in files:
            path = os.path.join(root, name)
            os.chmod(path, 0o755 if os.stat(path).st_mode & 0o111 else 0o644)


def run_shiv(stage: str, output: str, shiv: dict) -> None:
    args = [sys.executable, "-m", "shiv", "--site-packages", stage, "-o", output,
            "-e", shiv["entry_point"], "-p", shiv["python"]]
    args.append("--compressed" if shiv.get("compressed", True) else "--uncompressed")
    if shiv.get("reproducible"):
        args.append("--reproducible")
    subprocess.run(args, check=True)


def replace_main(raw: str, output: str) -> None:
    """Copy shiv's archive entry by entry (same names, times, modes, order) with our __main__.py.

    The archive's offsets count from its own start, not the file's, so `cdh install` can put any
    first line in front (HOST_DIR/cdc) and every zip reader still finds the entries.
    """
    with open(MAIN_TEMPLATE, "rb") as f:
        main_py = f.read()
    with open(raw, "rb") as f:
        shebang = f.readline()
    archive = io.BytesIO()
    with zipfile.ZipFile(raw) as src, zipfile.ZipFile(archive, "w") as dst:
        for info in src.infolist():
            data = main_py if info.filename == "__main__.py" else src.read(info)
            copy = zipfile.ZipInfo(info.filename, date_time=info.date_time)
            copy.compress_type = info.compress_type
            copy.external_attr = info.external_attr
            dst.writestr(copy, data)
    tmp = output + ".tmp"
    with open(tmp, "wb") as out:
        out.write(shebang + archive.getvalue())
    os.chmod(tmp, 0o755)
    os.replace(tmp, output)


def walk_files(top: str):
    for root, _dirs, files in os.walk(top):
        for name in files:
            yield os.path.join(root, name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", help="where to write the zipapp (default: shiv.toml's output_file)")
    ns = parser.parse_args(argv)
    output = ns.output or os.path.join(REPO, load_settings()[0]["output_file"])
    print(build(output))
    return 0


if __name__ == "__main__":
    sys.exit(main())
