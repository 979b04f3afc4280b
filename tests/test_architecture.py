"""The package's import graph (issue 36): no cycles, no function-local import of the package dodging one, no
mode name compared as a string, no function over 60 lines. Static (AST) checks: fast, and exact for module-level imports."""

import ast
import re
from pathlib import Path

from tests.conftest import REPO

PACKAGE = REPO / "diffusion_lab"


def _module(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(tree: ast.Module) -> set[str]:
    """Package modules imported at module level (``from a.b import c`` counts ``a.b.c`` when that is a module)."""
    out = set()
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("diffusion_lab") and not node.level:
            out.add(node.module)
            out.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("diffusion_lab"))
    return out


def _graph() -> dict[str, set[str]]:
    files = {_module(p): p for p in PACKAGE.rglob("*.py")}
    return {m: {i for i in _imports(ast.parse(p.read_text())) if i in files and i != m} for m, p in files.items()}


def find_cycles(graph: dict[str, set[str]]) -> list[str]:
    """Every back edge of a depth-first search, as ``a -> b -> a``."""
    state, cycles = {}, []

    def visit(m, stack):
        state[m] = "open"
        for n in sorted(graph.get(m, ())):
            if state.get(n) == "open":
                cycles.append(" -> ".join([*stack[stack.index(n):], n]))
            elif n not in state:
                visit(n, [*stack, n])
        state[m] = "done"

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    return cycles


def test_find_cycles_finds_the_cycle_the_runs_module_had():
    graph = {"builders": {"init_from"}, "init_from": {"runs"}, "runs": {"builders", "errors"}, "errors": set()}
    assert find_cycles(graph) == ["builders -> init_from -> runs -> builders"]
    assert find_cycles({**graph, "runs": {"errors"}}) == []


def test_the_import_graph_has_no_cycle():
    assert not find_cycles(_graph())


def test_no_function_local_import_of_the_package():
    found = []
    for path in PACKAGE.rglob("*.py"):
        for fn in ast.walk(ast.parse(path.read_text())):
            if isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
                found += [f"{path.relative_to(REPO)}:{n.lineno}" for n in ast.walk(fn) if isinstance(n, ast.ImportFrom)
                          and (n.level or (n.module or "").startswith("diffusion_lab"))]
    assert not found, found


def test_the_lower_floors_never_import_a_task_or_the_app():
    graph = _graph()
    lower = [m for m in graph if not m.startswith(("diffusion_lab.tasks", "diffusion_lab.app", "diffusion_lab.__main__"))]
    upward = {m: sorted(i for i in graph[m] if i.startswith(("diffusion_lab.tasks", "diffusion_lab.app")))
              for m in lower}
    assert not {m: v for m, v in upward.items() if v}


def test_no_mode_name_is_compared_as_a_string():
    pattern = re.compile(r"mode (==|!=|in )")
    hits = [f"{p.relative_to(REPO)}:{i}" for p in PACKAGE.rglob("*.py")
            for i, line in enumerate(p.read_text().splitlines(), 1) if pattern.search(line)]
    assert not hits, hits


def test_no_function_is_longer_than_sixty_lines():
    """The review's size rule: a longer function is split into named steps (issue 36)."""
    long = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno >= 60:
                long.append(f"{path.relative_to(REPO)}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1})")
    assert not long, long


def test_no_module_imports_another_modules_private_names():
    """A ``_name`` is its module's own: a second user moves it to a public home (issue 36)."""
    hits = [f"{p.relative_to(REPO)}: {node.module}.{a.name}" for p in PACKAGE.rglob("*.py")
            for node in ast.walk(ast.parse(p.read_text()))
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("diffusion_lab")
            for a in node.names if a.name.startswith("_") and not a.name.startswith("__")]
    assert not hits, hits
