"""No module of portal, inventory or checks imports itself back through others (any import, lazy ones included).

import-linter (.importlinter, run by scripts/test.sh) holds the layering between the apps; this holds the finer rule
that no two modules, in any app, depend on each other in a circle."""

import sys

import grimp


def _cycles(graph) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for imported in graph.find_modules_directly_imported_by(module):
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in on_stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == module:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    return found


def test_no_module_import_cycles():
    # given: every import statement of the three packages, module by module
    graph = grimp.build_graph("portal", "inventory", "checks", include_external_packages=False)
    # then
    assert len(graph.modules) > 80
    assert _cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle():
    # given: a graph where a -> b -> c -> a, and d on its own
    graph = grimp.ImportGraph()
    for module in ("x.a", "x.b", "x.c", "x.d"):
        graph.add_module(module)
    for importer, imported in (("x.a", "x.b"), ("x.b", "x.c"), ("x.c", "x.a"), ("x.d", "x.a")):
        graph.add_import(importer=importer, imported=imported)
    # then
    assert _cycles(graph) == [["x.a", "x.b", "x.c"]]
