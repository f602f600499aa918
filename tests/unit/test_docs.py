"""The docs say what the code is: README's settings table is the settings table, and every file or
module that README.md, a docstring or a comment names exists (so a rename cannot leave one stale)."""

from __future__ import annotations

import ast
import io
import re
import subprocess
import tokenize
from functools import cache
from pathlib import Path

from cdh import config

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
# Where prose names files: Markdown, Python's docstrings, strings and comments, build files, C comments.
TEXT_SUFFIXES = {".py", ".md", ".toml", ".txt", ".c", ".cfg", ".proto", ""}
# cdh/..., packaging/..., tests/... as the text names them (a "<placeholder>" or glob is not a path).
PATH = re.compile(r"(?<![\w./-])((?:cdh|packaging|tests|dev|k8s-manifests|\.ci)/[\w./-]*\w)(?![<{*\w])")
# cdh.composer.cri.sources, cdh.keys.object_key ... (not cdh.pyz, cdh.io/... and other names)
MODULE = re.compile(r"(?<![\w./-])cdh(?:\.[A-Za-z_]\w*)+(?![\w/-])")
NOT_MODULES = ("cdh.pyz", "cdh.io", "cdh.test", "cdh.egg", "cdh.env")
# A Markdown document named by its bare file name: it must be one of this repository's.
DOCUMENT = re.compile(r"(?<![\w./-])([A-Z][A-Z0-9_-]*\.md)\b")


def test_readme_configuration_table_matches_the_settings():
    table = config.markdown_table()
    assert table in README.read_text(), \
        "README's Configuration table is stale: paste `cdh config --list --markdown`"


def test_every_setting_is_in_the_table():
    rows = config.markdown_table().splitlines()[2:]
    assert [r.split("`")[1] for r in rows] == [s.name for s in config.SPECS]


def tracked_text_files() -> list[Path]:
    names = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    files = [ROOT / n for n in names.splitlines() if not n.startswith("k8s-manifests/schemas/")]
    return [f for f in files if f.is_file() and (f.suffix in TEXT_SUFFIXES or f.name == "Containerfile")]


def prose(f: Path) -> list[tuple[int, str]]:
    """(line number, text) of what a reader reads: a Python file's strings and comments, else every line."""
    text = f.read_text(errors="replace")
    if f.suffix != ".py":
        return list(enumerate(text.splitlines(), 1))
    return [(tok.start[0], tok.string) for tok in tokenize.generate_tokens(io.StringIO(text).readline)
            if tok.type in (tokenize.STRING, tokenize.COMMENT)]  # 3.11: an f-string is one STRING


def test_every_path_named_in_the_repository_exists():
    missing = []
    for f in tracked_text_files():
        for n, text in prose(f):
            missing += [f"{f.relative_to(ROOT)}:{n}: {p}" for p in PATH.findall(text)
                        if not (ROOT / p).exists()]
    assert missing == []


def test_every_cdh_module_named_exists():
    missing = []
    for f in tracked_text_files():
        for n, text in prose(f):
            missing += [f"{f.relative_to(ROOT)}:{n}: {m}" for m in MODULE.findall(text)
                        if not m.startswith(NOT_MODULES) and not resolves(m)]
    assert missing == []


def test_every_document_named_is_in_the_repository():
    here = {p.name for p in tracked_text_files() if p.suffix == ".md"}
    missing = []
    for f in tracked_text_files():
        for n, text in prose(f):
            missing += [f"{f.relative_to(ROOT)}:{n}: {d}" for d in DOCUMENT.findall(text) if d not in here]
    assert missing == []


def resolves(dotted: str) -> bool:
    """``dotted`` is a module of cdh, or a module followed by a name it defines at its top level."""
    parts = dotted.split(".")
    if parts[-1].startswith("__"):  # cdh.__file__, cdh.__version__: every module has them
        parts = parts[:-1]
    for i in range(len(parts), 0, -1):
        module = module_file(parts[:i])
        if module is not None:
            return i == len(parts) or parts[i] in top_level_names(module)
    return False


def module_file(parts: list[str]) -> Path | None:
    base = ROOT.joinpath(*parts)
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


@cache
def top_level_names(module: Path) -> set[str]:
    names = set()
    for node in ast.parse(module.read_text()).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names |= {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
    if module.name == "__init__.py":  # a package's submodules are names of it too
        names |= {p.stem for p in module.parent.iterdir()
                  if p.suffix == ".py" or (p / "__init__.py").exists()}
    return names
