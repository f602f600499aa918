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
    """Every module ``path`` imports (``from cdh import name`` counts cdh.<name> too, in case it is one)."""
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


def reaches(start: str, edges: dict[str, set[str]]) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for nxt in edges.get(todo.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def imports_of(package: str) -> set[str]:
    inside = [m for m in graph() if m == package or m.startswith(package + ".")]
    return {n for m in inside for n in graph()[m]}


def test_doctor_and_tools_import_nothing_of_the_agent():
    # What they share with it lives above both: cdh/ondisk.py, cdh/sysctl.py, cdh/store/, cdh/keys.py ...
    for package in ("cdh.doctor", "cdh.tools"):
        assert sorted(n for n in imports_of(package) if n.startswith("cdh.agent")) == [], package


def test_the_composer_reaches_nothing_of_the_agent_the_tools_or_the_doctor():
    g = graph()
    composer = [m for m in g if m.startswith("cdh.composer")]
    reached = set().union(*(reaches(m, g) for m in composer))
    never = ("cdh.agent", "cdh.tools", "cdh.doctor", "cdh.store")  # store: the clouds' clients
    assert sorted(n for n in reached if n.startswith(never)) == []


def test_the_daemon_imports_nothing_of_the_laptop_tools():
    assert sorted(n for n in imports_of("cdh.agent") if n.startswith("cdh.tools")) == []
