"""The import graph of cdh/, read statically (every import statement: top level, in functions, under
TYPE_CHECKING): no cycles, and each part imports only what it may."""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "cdh"


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def modules() -> dict[str, Path]:
    return {module_name(p): p for p in PACKAGE.rglob("*.py")}


def imported_names(path: Path) -> set[str]:
    """Every module ``path`` imports (``from cdh import x`` names cdh.x too, in case x is a module)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}: cdh imports absolutely"
            names.add(node.module)
            names |= {f"{node.module}.{a.name}" for a in node.names}
    return names


@cache
def graph() -> dict[str, set[str]]:
    """cdh module → the cdh modules it imports (a package's __init__ counts when a submodule is named)."""
    known = modules()
    return {name: {n for n in imported_names(path) if n in known and n != name}
            for name, path in known.items()}


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One cycle as a path of module names, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt):], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for start in sorted(edges):
        if start not in state and (found := visit(start)):
            return found
    return None


def test_the_graph_is_read():
    g = graph()
    assert "cdh.agent.telemetry" in g["cdh.agent.main"] and "cdh.composer.main" in g["cdh.cli"]


def test_no_import_cycle_inside_cdh():
    # A package's __init__ is imported with each of its modules; an edge back to it is not a cycle
    # of code, so only edges between modules that are not each other's package count.
    edges = {m: {n for n in targets if not m.startswith(n + ".")} for m, targets in graph().items()}
    assert find_cycle(edges) is None
