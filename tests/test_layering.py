"""The package's import graph: no cycle, and data flowing one way.

Every module of ``optuna_lyap/`` is parsed with ``ast``; an import anywhere in it counts, at
module level or inside a function (a lazy import is still an arrow between two modules), except
under ``if TYPE_CHECKING:``, which never runs. ``from A import b`` is an arrow to ``A`` (importing
it runs ``A/__init__.py``) and, when ``A.b`` is a module, to ``A.b`` as well; a module's own
parent packages are not counted (they are always loaded first).
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "optuna_lyap"

# Cycles that run through modules other parts of the package are rewriting now, each named by
# its modules. Remove an entry when its cycle is gone (the test fails once it is, so that the
# entry cannot linger).
KNOWN_CYCLES: set[frozenset[str]] = set()


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted((ROOT / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_nodes(tree: ast.AST) -> Iterable[ast.Import | ast.ImportFrom]:
    """Every import in ``tree``, at any depth, except the bodies of ``if TYPE_CHECKING:``."""
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
            continue
        stack.extend(ast.iter_child_nodes(node))


def _absolute(module: str, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    is_package = MODULES[module].name == "__init__.py"
    base = module.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imports_of(module: str) -> dict[str, set[str]]:
    """``{imported name: line numbers}``: every absolute module name ``module`` imports
    (package modules and outside ones such as ``optuna`` alike)."""
    tree = ast.parse(MODULES[module].read_text(), filename=str(MODULES[module]))
    found: dict[str, set[str]] = {}

    def add(name: str, line: int) -> None:
        found.setdefault(name, set()).add(f"{MODULES[module].relative_to(ROOT)}:{line}")

    for node in _import_nodes(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name, node.lineno)
        else:
            target = _absolute(module, node)
            add(target, node.lineno)
            for alias in node.names:
                if f"{target}.{alias.name}" in MODULES:
                    add(f"{target}.{alias.name}", node.lineno)
    return found


GRAPH = {
    module: {name for name in imports_of(module) if name in MODULES and name != module}
    for module in MODULES
}


def _cycles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """The strongly connected components with more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[frozenset[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(frozenset(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def _path_through(component: frozenset[str]) -> list[str]:
    """One closed path through a cycle's modules, to show in a failure message."""
    start = min(component)
    path, seen = [start], {start}
    while True:
        nexts = sorted(w for w in GRAPH[path[-1]] if w in component)
        back = [w for w in nexts if w == start]
        fresh = [w for w in nexts if w not in seen]
        if back and len(path) > 1 or not fresh:
            return [*path, start]
        path.append(fresh[0])
        seen.add(fresh[0])


def test_the_parser_sees_lazy_imports() -> None:
    # tasks/_objective.py's own imports, one of them once written inside make_objective.
    assert "optuna_lyap._monitor" in GRAPH["optuna_lyap.tasks._objective"]
    assert "optuna_lyap" not in GRAPH["optuna_lyap.tasks._objective"]
    assert "optuna_lyap._checks" in GRAPH["optuna_lyap.lyapunov._spectrum"]


def test_no_import_cycle() -> None:
    found = set(_cycles(GRAPH))
    new = [c for c in found if c not in KNOWN_CYCLES]
    messages = [" -> ".join(_path_through(c)) + f"  (modules: {sorted(c)})" for c in new]
    assert not new, "import cycles among optuna_lyap's modules:\n" + "\n".join(messages)
    gone = [sorted(c) for c in KNOWN_CYCLES - found]
    assert not gone, f"these allowed cycles are gone; remove them from KNOWN_CYCLES: {gone}"


def _inside(module: str, packages: Iterable[str]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in packages)


ENGINES = ("optuna_lyap.lyapunov", "optuna_lyap.aelle")
ABOVE_THE_ENGINES = (
    "optuna_lyap.pruners",
    "optuna_lyap.samplers",
    "optuna_lyap.visualization",
    "optuna_lyap.cli",
    "optuna_lyap._prediction",
    "optuna_lyap._storage",
    "optuna_lyap._monitor",
    "optuna",
)


@pytest.mark.parametrize("module", [m for m in MODULES if _inside(m, ENGINES)])
def test_the_engines_know_no_optuna_and_nothing_above_them(module: str) -> None:
    bad = {
        name: lines
        for name, lines in imports_of(module).items()
        if _inside(name, ABOVE_THE_ENGINES) or name == PACKAGE
    }
    assert not bad, f"{module} imports from a higher layer: {bad}"


def test_the_spectrum_engine_knows_no_model() -> None:
    for module in (m for m in MODULES if _inside(m, ["optuna_lyap.lyapunov"])):
        bad = {n: s for n, s in imports_of(module).items() if _inside(n, ["optuna_lyap.aelle"])}
        assert not bad, f"{module} imports AeLLE: {bad}"


@pytest.mark.parametrize("module", ["optuna_lyap._checks", "optuna_lyap._random"])
def test_the_ground_floor_imports_nothing_from_the_package(module: str) -> None:
    bad = {n: s for n, s in imports_of(module).items() if _inside(n, [PACKAGE])}
    assert not bad, f"{module} imports from the package: {bad}"


def test_the_cycle_finder_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [frozenset("abc")]
