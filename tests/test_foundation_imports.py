"""The toolkit's modules import each other without cycles (issue #18: data flows one way).

The graph is read from the source with ``ast``: every ``import`` / ``from ... import`` of a ``toolkit`` module,
at module level AND inside functions (a lazy import hides a cycle, it does not remove it). Imports under
``if TYPE_CHECKING:`` are not run, so they are not edges. Nor is an import of a module's own ancestor package
(``from toolkit import __version__`` in ``toolkit._env``): Python imports every ancestor package before the
module itself, so that edge exists for every module whatever its source says.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "toolkit"


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST, here: str, is_package: bool, modules: set[str]) -> set[str]:
    """Toolkit modules imported anywhere in ``tree`` (``from pkg import name`` counts pkg.name when it is a
    module, else pkg)."""
    found: set[str] = set()
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _is_type_checking(node):
            stack.extend(node.orelse)
            continue
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name in modules)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here.split(".") if is_package else here.split(".")[:-1]
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                if sub in modules:
                    found.add(sub)
                elif target in modules:
                    found.add(target)
        stack.extend(ast.iter_child_nodes(node))
    return {m for m in found if not (here == m or here.startswith(m + "."))}


def import_graph() -> dict[str, set[str]]:
    files = sorted(PACKAGE.rglob("*.py"))
    modules = {module_name(p) for p in files}
    return {module_name(p): _imports(ast.parse(p.read_text(encoding="utf-8")), module_name(p),
                                     p.name == "__init__.py", modules) for p in files}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each as a sorted list."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def _path(graph: dict[str, set[str]], comp: list[str]) -> str:
    """One concrete cycle inside a component, as 'a -> b -> a'."""
    members = set(comp)
    start = comp[0]
    prev = {start: None}
    frontier = [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(graph[v] & members):
                if w == start:
                    chain = [v]
                    while prev[chain[-1]] is not None:
                        chain.append(prev[chain[-1]])
                    return " -> ".join([start, *reversed(chain[:-1]), start]) if len(chain) > 1 else \
                        f"{start} -> {start}"
                if w not in prev:
                    prev[w] = v
                    nxt.append(w)
        frontier = nxt
    return " <-> ".join(comp)


def test_the_graph_sees_lazy_and_relative_imports():
    tree = ast.parse("from . import b\nif TYPE_CHECKING:\n    import toolkit.c\n"
                     "def f():\n    from toolkit.a import d\n    import toolkit\n")
    modules = {"toolkit.a", "toolkit.a.b", "toolkit.a.d", "toolkit.c"}
    assert _imports(tree, "toolkit.a", True, modules) == {"toolkit.a.b", "toolkit.a.d"}
    assert cycles({"x": {"y"}, "y": {"x"}, "z": {"x"}}) == [["x", "y"]]
    assert _path({"x": {"y"}, "y": {"z"}, "z": {"x"}}, ["x", "y", "z"]) == "x -> y -> z -> x"


def test_toolkit_has_no_import_cycles():
    graph = import_graph()
    assert "toolkit.exercises.core" in graph and graph["toolkit.exercises.core"], "the graph found no imports"
    found = cycles(graph)
    assert not found, "import cycles in toolkit (move the shared part into a lower module): " + "; ".join(
        _path(graph, c) for c in found)
