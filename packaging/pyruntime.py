"""Lay out a self-contained Python runtime for cdh: the image's /opt/cdh/runtime, and its host part.

    python packaging/pyruntime.py --pyz dist/cdh.pyz --out /opt/cdh/runtime [--python PYTHON]

The Containerfile runs this; so do the tests. From an interpreter (the real binary, not a pyenv shim:
its realpath is used) and the zipapp it writes::

    OUT/bin/python3            the interpreter, RUNPATH $ORIGIN/../lib
    OUT/bin/python3._pth       sys.path: stdlib, lib-dynload, site-packages (implies -I and -S)
    OUT/lib/ld.so              the dynamic loader (cdc's shebang runs it: the host's may differ or be absent)
    OUT/lib/*.so*              libpython, the C library, all the objects below load (RUNPATH $ORIGIN)
    OUT/lib/python3.X/         the standard library, compiled; lib-dynload/ (RUNPATH $ORIGIN/../..)
    OUT/site-packages/         the zipapp's site-packages, unpacked and compiled, + _cdh_runtime.py
    OUT/cdh.pyz, OUT/lock      the zipapp (source of HOST_DIR/cdc); composers hold a shared flock on lock
    OUT/runtime.json           id, sizes, the composer's import list, and host_files: the part that
                               `cdh install` copies to HOST_DIR/runtime/<id>/ (what the composer loads,
                               measured by importing what its code imports through this runtime)

Byte-code is unchecked-hash (no stat of sources per import; reproducible). Needs ldd, patchelf, strip.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import elf  # packaging/ is not a package: this runs as a script, here and in the Containerfile

HERE = os.path.dirname(os.path.abspath(__file__))
INTERPRETER = "bin/python3"
LOADER = "lib/ld.so"
MANIFEST = "runtime.json"
PYZ = "cdh.pyz"
LOCK = "lock"
# Never needed by cdh: tests, GUIs, IDLE, installers of pip, 2to3, the static libpython.
STDLIB_SKIP = {"test", "idlelib", "tkinter", "turtledemo", "ensurepip", "lib2to3", "pydoc_data",
               "site-packages", "__phello__", "__pycache__", "venv", "turtle.py", "sqlite3"}
DYNLOAD_SKIP = ("_test", "_ctypes_test", "xxlimited", "_xx", "_tkinter", "_curses", "readline",
                "nis", "ossaudiodev", "spwd", "audioop", "_sqlite3", "_crypt")
# What runs before the composer's own code: the zipapp's entry under a runtime, and cdh.cli, which
# hands a `cdc` run to cdh.composer.main before it imports anything else.
COMPOSER_ENTRY = ("_cdh_runtime", "cdh.cli")
# The packages whose every module the composer may run, imported whole: its own, and the stack trace
# (cdh/stack/ imports some modules only when first used). Other cdh modules count as far as these
# import them.
COMPOSER_PACKAGES = ("cdh/composer", "cdh/stack")
# The agent's stack: the composer must never load it. The tests measure a real composer run against
# this list (tests/packaging/test_host_runtime.py).
AGENT_ONLY = ("aiobotocore", "botocore", "aiohttp", "uvloop", "asyncio", "aiofiles", "asyncinotify",
              "croniter", "prometheus_client", "argparse", "logging", "yaml", "pyrage")


def layout(python: str, pyz: str, out: str) -> dict:
    if os.path.exists(out) and os.listdir(out):
        sys.exit(f"packaging/pyruntime.py: {out} is not empty")
    facts = query(os.path.realpath(python))
    copy_interpreter(facts, out)
    copy_stdlib(facts, out)
    unpack_site_packages(pyz, out)
    deps = bundle_libraries(out)
    elf.strip_debug(sorted({os.path.join(out, p) for p in deps if not p.startswith("site-packages/")}
                           | {os.path.join(out, p) for p in libraries(out) if strippable(p)}))
    patch_runpaths(out, facts)
    compile_bytecode(facts, out)
    open(os.path.join(out, LOCK), "w").close()
    modules = probe(out)
    host = host_files(out, facts["tag"], modules, deps)
    manifest = {
        "id": runtime_id(out, host), "python": facts["version"], "machine": facts["machine"],
        "loader": facts["loader_name"], "interpreter": INTERPRETER, "loader_path": LOADER, "pyz": PYZ,
        "host_bytes": sum(os.path.getsize(os.path.join(out, p)) for p in host),
        "image_bytes": tree_bytes(out), "composer_modules": sorted(modules), "host_files": host,
    }
    with open(os.path.join(out, MANIFEST), "w") as f:
        json.dump(manifest, f, indent=1, sort_keys=True)
    return manifest


def query(python: str) -> dict:
    code = ("import os, sys, sysconfig; print(repr({'version': sys.version.split()[0],"
            " 'short': '%d.%d' % sys.version_info[:2], 'stdlib': sysconfig.get_path('stdlib'),"
            " 'dynload': sysconfig.get_config_var('DESTSHARED'), 'tag': sys.implementation.cache_tag,"
            " 'machine': os.uname().machine}))")
    facts = ast.literal_eval(subprocess.run([python, "-I", "-S", "-c", code], check=True,
                                            capture_output=True, text=True).stdout)
    facts["python"] = python
    facts["loader_name"] = os.path.basename(elf.interpreter(python))
    return facts


def copy_interpreter(facts: dict, out: str) -> None:
    os.makedirs(os.path.join(out, "bin"))
    os.makedirs(os.path.join(out, "lib"))
    shutil.copy2(facts["python"], os.path.join(out, INTERPRETER))
    stdlib = f"../lib/python{facts['short']}"
    with open(os.path.join(out, INTERPRETER + "._pth"), "w") as f:
        f.write(f"{stdlib}\n{stdlib}/lib-dynload\n../site-packages\n")


def copy_stdlib(facts: dict, out: str) -> None:
    dst = os.path.join(out, "lib", f"python{facts['short']}")
    skip = STDLIB_SKIP | {os.path.basename(facts["dynload"])}

    def ignore(directory: str, names: list[str]) -> set[str]:
        top = os.path.samefile(directory, facts["stdlib"])
        return {n for n in names if n == "__pycache__" or n.endswith(".pyc") or (top and n in skip)
                or n.startswith("config-")}

    shutil.copytree(facts["stdlib"], dst, ignore=ignore)
    dynload = os.path.join(dst, "lib-dynload")
    os.makedirs(dynload)
    for name in sorted(os.listdir(facts["dynload"])):
        if name.endswith(".so") and not name.startswith(DYNLOAD_SKIP):
            shutil.copy2(os.path.join(facts["dynload"], name), dynload)


def unpack_site_packages(pyz: str, out: str) -> None:
    site = os.path.join(out, "site-packages")
    with zipfile.ZipFile(pyz) as z:
        for info in z.infolist():
            if info.filename.startswith("site-packages/") and not info.is_dir():
                path = z.extract(info, out)
                os.chmod(path, (info.external_attr >> 16) & 0o777 or 0o644)
    shutil.copy2(os.path.join(HERE, "_cdh_runtime.py"), site)
    shutil.copy2(pyz, os.path.join(out, PYZ))


def objects(out: str) -> list[str]:
    """Relative paths of the ELF objects the runtime runs: the interpreter and every extension module."""
    found = [INTERPRETER]
    for top in ("lib", "site-packages"):
        for root, _dirs, files in os.walk(os.path.join(out, top)):
            for name in files:
                rel = os.path.relpath(os.path.join(root, name), out)
                if ".so" in name and not rel.startswith("lib/lib") and elf.is_elf(os.path.join(out, rel)):
                    found.append(rel)
    return sorted(f for f in found if os.path.dirname(f) != "lib")


def bundle_libraries(out: str) -> dict[str, list[str]]:
    """Copy every library each object loads into lib/; returns object → the lib/ files it needs."""
    deps: dict[str, list[str]] = {}
    real_out = os.path.realpath(out)
    for obj in objects(out):
        needs = []
        for dep in elf.ldd(os.path.join(out, obj)):
            if os.path.realpath(dep.path).startswith(real_out + os.sep):
                continue  # a wheel's own .libs: already inside, found through its RUNPATH
            rel = LOADER if dep.is_loader else f"lib/{dep.name}"
            if not os.path.exists(os.path.join(out, rel)):
                shutil.copy2(os.path.realpath(dep.path), os.path.join(out, rel))
            needs.append(rel)
        deps[obj] = sorted(set(needs))
    return deps


def libraries(out: str) -> list[str]:
    return sorted(f"lib/{n}" for n in os.listdir(os.path.join(out, "lib")) if n != "python3" and
                  os.path.isfile(os.path.join(out, "lib", n)))


def strippable(rel: str) -> bool:
    # The loader and the C library come stripped from the distribution; leave them byte-identical.
    return rel != LOADER and not os.path.basename(rel).startswith(("libc.so", "ld-"))


def patch_runpaths(out: str, facts: dict) -> None:
    """Make every object find its libraries in lib/, relative to itself ($ORIGIN), wherever OUT is."""
    elf.set_runpath(os.path.join(out, INTERPRETER), ["$ORIGIN/../lib"])
    for rel in libraries(out):
        path = os.path.join(out, rel)
        # The loader and libc are loaded before anything else: glibc's own files stay untouched.
        if rel != LOADER and set(elf.needed(path)) - {facts["loader_name"], "libc.so.6"}:
            elf.set_runpath(path, ["$ORIGIN"])
    for rel in objects(out):
        if rel == INTERPRETER:
            continue
        path = os.path.join(out, rel)
        to_lib = "$ORIGIN/" + os.path.relpath(os.path.join(out, "lib"), os.path.dirname(path))
        own = [p for p in elf.runpath(path) if p.startswith("$ORIGIN")]  # a wheel's .libs
        elf.set_runpath(path, [*own, to_lib])


def compile_bytecode(facts: dict, out: str) -> None:
    # Compiled by the interpreter being packaged (same magic number); paths in the byte-code are
    # rewritten from OUT to / so the files do not depend on where the runtime was laid out.
    subprocess.run([facts["python"], "-I", "-m", "compileall", "-q", "-j", "0",
                    "--invalidation-mode", "unchecked-hash", "-s", out, "-p", "/",
                    os.path.join(out, "lib"), os.path.join(out, "site-packages")],
                   check=True, stdout=subprocess.DEVNULL)


def probe(out: str) -> dict[str, str | None]:
    """Import what the composer imports through the new runtime, run as a zipapp the way cdc is:
    the entry, every module of its packages, and every module those name in an import statement
    (at any depth: the zstd codec and the CRI client are imported when first used). What they
    import in turn is whatever importing them loads, so the list is measured, never written down:
    a module the composer stops using leaves the host part with the next build."""
    modules, maybe = composer_imports(out)
    main = ("import importlib, sys\n"
            f"for name in {[*COMPOSER_ENTRY, *modules]!r}:\n    importlib.import_module(name)\n"
            f"for name in {maybe!r}:  # `from x import y`: y may be a module\n"
            "    try:\n        importlib.import_module(name)\n"
            "    except ModuleNotFoundError as err:\n        if err.name != name:\n            raise\n"
            "spec = lambda m: getattr(getattr(m, '__spec__', None), 'origin', None)\n"
            "sys.stdout.write(repr({n: spec(m) for n, m in sys.modules.items()}))\n")
    with tempfile.TemporaryDirectory(prefix="cdh-probe-") as tmp:
        app = os.path.join(tmp, "probe.pyz")
        with zipfile.ZipFile(app, "w", zipfile.ZIP_DEFLATED) as z:
            z.writestr("__main__.py", main)
        done = subprocess.run([os.path.join(out, LOADER), os.path.join(out, INTERPRETER), app],
                              env={}, cwd="/", capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"packaging/pyruntime.py: the new runtime failed to import the composer:\n{done.stderr}")
    modules = ast.literal_eval(done.stdout)
    leaked = sorted(n for n in modules if n.split(".")[0] in AGENT_ONLY or n.startswith("cdh.agent"))
    if leaked:
        sys.exit(f"packaging/pyruntime.py: the composer imports the agent's modules: {leaked}")
    return {n: f for n, f in modules.items() if n != "__main__"}


def composer_imports(out: str) -> tuple[list[str], list[str]]:
    """(modules, maybe modules): every module of the composer's packages (COMPOSER_PACKAGES, sub-packages
    included) and what their import statements name, at any depth but under ``if TYPE_CHECKING:``;
    for ``from x import y``, x is a module and x.y maybe one."""
    site = os.path.join(out, "site-packages")
    modules, maybe = set(), set()
    walks = (os.walk(os.path.join(site, package)) for package in COMPOSER_PACKAGES)
    for root, _dirs, files in (w for walk in walks for w in walk):
        package = os.path.relpath(root, site).replace(os.sep, ".")
        for name in (n for n in files if n.endswith(".py")):
            modules.add(package + ("" if name == "__init__.py" else "." + name[:-3]))
            with open(os.path.join(root, name), encoding="utf-8") as f:
                imported, named = imports_in(ast.parse(f.read()))
            modules |= imported
            maybe |= named
    return sorted(modules), sorted(maybe - modules)


def imports_in(tree: ast.AST) -> tuple[set[str], set[str]]:
    """(modules, maybe modules) named by the import statements in ``tree``."""
    modules, maybe = set(), set()
    todo = [tree]
    while todo:
        node = todo.pop()
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            todo += node.orelse  # annotations only: never imported at run time
            continue
        if isinstance(node, ast.Import):
            modules |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module != "__future__":
            modules.add(node.module)
            maybe |= {f"{node.module}.{a.name}" for a in node.names}
        todo += ast.iter_child_nodes(node)
    return modules, maybe


def host_files(out: str, tag: str, modules: dict[str, str | None], deps: dict[str, list[str]]) -> list[str]:
    """The part of OUT the composer uses: its modules (+ byte-code), their libraries, the loader."""
    files = {INTERPRETER, INTERPRETER + "._pth", LOADER, LOCK, *deps[INTERPRETER]}
    for origin in modules.values():
        if not (origin and os.path.isabs(origin)):
            continue  # built in, frozen, or a namespace package
        rel = os.path.relpath(origin, out)
        if rel.startswith(".."):
            continue  # the probe's own zip
        files.add(rel)
        if rel.endswith(".py"):
            head, name = os.path.split(rel)
            files.add(os.path.join(head, "__pycache__", f"{name[:-3]}.{tag}.pyc"))
        files.update(deps.get(rel, ()))
    return sorted(files)


def runtime_id(out: str, files: list[str]) -> str:
    """Content hash of the host part: a new interpreter, library or cdh gets a new directory."""
    h = hashlib.sha256()
    for rel in files:
        with open(os.path.join(out, rel), "rb") as f:
            h.update(rel.encode() + b"\0" + hashlib.sha256(f.read()).digest())
    return h.hexdigest()[:12]


def tree_bytes(top: str) -> int:
    return sum(os.path.getsize(os.path.join(r, n)) for r, _d, fs in os.walk(top) for n in fs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pyz", required=True, help="the zipapp (nox -s zipapp → dist/cdh.pyz)")
    parser.add_argument("--out", required=True, help="the runtime directory to create")
    parser.add_argument("--python", default=sys.executable, help="interpreter to package (default: this one)")
    ns = parser.parse_args(argv)
    m = layout(ns.python, ns.pyz, ns.out)
    print(f"runtime {m['id']}: python {m['python']} ({m['machine']}), "
          f"image {m['image_bytes'] / 2**20:.1f} MiB, host part {m['host_bytes'] / 2**20:.1f} MiB "
          f"in {len(m['host_files'])} files, "
          f"composer imports {len(m['composer_modules'])} modules")
    return 0


if __name__ == "__main__":
    sys.exit(main())
