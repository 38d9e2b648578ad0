"""What the package imports at run time must be among its declared run-time dependencies.

The test environment also holds the development extras, so an import of a test-only library from
``src/workplane`` passes every other test and fails only on a user's machine (where
``./scripts/serve`` installs ``requirements/main.lock``). This reads the imports from the source.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import PackageNotFoundError, packages_distributions, requires
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "src" / "workplane"


def _normalised(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _declared() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return {_normalised(re.split(r"[\s\[<>=!~;]", spec, maxsplit=1)[0]) for spec in project["dependencies"]}


def _installed_closure(names: set[str]) -> set[str]:
    """The declared distributions and what they require in turn (extras left out): what a user's
    ``pip install`` of the run-time lock brings."""
    seen: set[str] = set()
    todo = list(names)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            needs = requires(name) or []
        except PackageNotFoundError:
            continue
        for spec in needs:
            if "extra ==" not in spec:
                todo.append(_normalised(re.split(r"[\s\[<>=!~;(]", spec, maxsplit=1)[0]))
    return seen


def _imported_modules() -> dict[str, Path]:
    """Top-level module name → one file importing it, for every import in the package."""
    found: dict[str, Path] = {}
    for path in SOURCE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                found.setdefault(name.split(".")[0], path)
    return found


def test_every_third_party_import_is_a_declared_runtime_dependency() -> None:
    declared = _installed_closure(_declared())
    distributions = packages_distributions()
    undeclared = {}
    for module, path in _imported_modules().items():
        if module in sys.stdlib_module_names or module == "workplane":
            continue
        owners = {_normalised(d) for d in distributions.get(module, [])}
        # A module no installed distribution provides would fail at import anyway (other tests).
        if owners and not owners & declared:
            undeclared[module] = str(path.relative_to(ROOT))
    assert not undeclared, f"imported at run time but not brought by [project] dependencies: {undeclared}"


def test_the_check_sees_a_dev_only_library() -> None:
    # pytest is installed here (dev extra) and is not a run-time dependency: the check must notice it.
    owners = {_normalised(d) for d in packages_distributions().get("pytest", [])}
    assert owners
    assert not owners & _installed_closure(_declared())
