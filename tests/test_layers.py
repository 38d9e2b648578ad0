"""The import graph of ``src/workplane`` goes one way (docs/architecture.md).

Read from the source with ``ast`` — imports inside functions included, since a deferred import is as
much a dependency as one at the top — so the test needs nothing installed and imports nothing.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src"
PACKAGE = "workplane"

# Each top-level package or module of ``workplane`` and its layer: an import may go to its own
# package or to a lower layer, never up, and never sideways to another package of the same layer.
LAYERS: dict[str, int] = {
    # Foundations: plain values and rules, files, settings.
    PACKAGE: 0,  # the package itself (its version)
    "domain": 0,
    "files": 0,
    "settings": 0,
    "ui": 0,
    # Parsing and describing requests (no SQL); the agents, which speak HTTP only.
    "query": 1,
    "agents": 1,
    # The database: tables, migrations, dialects, data functions.
    "store": 2,
    # What is built on the store: access control, the metrics store, the server's own metrics.
    "auth": 3,
    "metrics": 3,
    "server_metrics": 3,
    # Background work and whole operations (ingestion, retention, preparing a store).
    "services": 4,
    # The HTTP API.
    "api": 5,
    # The server process.
    "app": 6,
    "serving": 6,
    # The command line: its subcommands, then the entry point that gathers them.
    "access_cli": 7,
    "agent_cli": 7,
    "cli": 8,
}


def _modules() -> dict[str, Path]:
    found = {}
    for path in (SRC / PACKAGE).rglob("*.py"):
        parts = path.relative_to(SRC).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _imports(modules: dict[str, Path]) -> dict[str, set[str]]:
    """Module → the ``workplane`` modules it imports (``from a.b import c`` is ``a.b.c`` when that
    is a module, else ``a.b``)."""
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets: set[str] = set()
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets.update(a.name for a in node.names if a.name.split(".")[0] == PACKAGE)
            elif isinstance(node, ast.ImportFrom):
                if node.level:  # relative: resolve against this module's package
                    base = name.split(".")[: len(name.split(".")) - node.level + (1 if is_package else 0)]
                    source = ".".join([*base, *([node.module] if node.module else [])])
                else:
                    source = node.module or ""
                if source.split(".")[0] != PACKAGE:
                    continue
                for alias in node.names:
                    nested = f"{source}.{alias.name}"
                    targets.add(nested if nested in modules else source)
        graph[name] = {t for t in targets if t != name}
    return graph


def _top(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, edges = work[-1]
            for target in edges:
                if target not in graph:
                    continue
                if target not in index:
                    index[target] = low[target] = len(index)
                    stack.append(target)
                    on_stack.add(target)
                    work.append((target, iter(sorted(graph[target]))))
                    break
                if target in on_stack:
                    low[node] = min(low[node], index[target])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        components.append(sorted(component))
    return components


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    return _imports(_modules())


def test_every_package_has_a_layer(graph: dict[str, set[str]]) -> None:
    assert {_top(m) for m in graph} <= set(LAYERS), "give a new package its layer in LAYERS"


def test_no_import_goes_up_or_sideways(graph: dict[str, set[str]]) -> None:
    wrong = sorted(
        f"{module} -> {target}"
        for module, targets in graph.items()
        for target in targets
        if _top(target) != _top(module) and LAYERS[_top(target)] >= LAYERS[_top(module)]
    )
    assert wrong == []


def test_no_import_cycle(graph: dict[str, set[str]]) -> None:
    assert _cycles(graph) == []


def test_parsing_and_the_domain_hold_no_sql() -> None:
    """``query`` parses and describes and ``domain`` holds values and rules: SQL is the store's."""
    for package in ("query", "domain"):
        for path in (SRC / PACKAGE / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                names = (
                    [a.name for a in node.names]
                    if isinstance(node, ast.Import)
                    else [node.module or ""]
                    if isinstance(node, ast.ImportFrom)
                    else []
                )
                assert not any(n.split(".")[0] == "sqlalchemy" for n in names), path


def test_the_checks_see_a_cycle_and_an_upward_import() -> None:
    """The checks themselves: a made-up graph with a cycle through two packages, one import of which
    goes up."""
    made_up = {"workplane.store.a": {"workplane.api.b"}, "workplane.api.b": {"workplane.store.a"}}
    assert _cycles(made_up) == [["workplane.api.b", "workplane.store.a"]]
    assert LAYERS[_top("workplane.api.b")] > LAYERS[_top("workplane.store.a")]
