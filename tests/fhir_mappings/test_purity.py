"""fhir_mappings stays pure and its imports run one way: nothing of the server, no clock,
randomness, network or files beyond its own data directory; no import circle inside the package
(the package ``__init__``, the public face, counted as a module); ``identifiers`` and
``vocabulary`` usable on their own."""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "fhir_mappings"
FORBIDDEN_MODULES = {"app", "payer_adapters", "random", "socket", "httpx", "requests", "sqlite3", "sqlmodel", "logging"}
FORBIDDEN_CALLS = {"now", "utcnow", "today", "time", "uuid4", "uuid1"}
INIT = "__init__"
#: Modules code outside the mapper may import; of the package they use only each other.
STANDALONE = {"identifiers", "vocabulary"}


def _modules() -> list[Path]:
    return sorted(PACKAGE.glob("*.py"))


def _internal_imports(tree: ast.AST) -> list[tuple[str, ast.stmt]]:
    """(module of fhir_mappings, import statement) for every import of the package in ``tree``;
    ``from fhir_mappings import x`` and ``import fhir_mappings`` name the package (``__init__``)."""
    found: list[tuple[str, ast.stmt]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            parts = node.module.split(".")
            if parts[0] == "fhir_mappings":
                found.append((parts[1] if len(parts) > 1 else INIT, node))
        elif isinstance(node, ast.ImportFrom) and node.level > 0:
            found.append((node.module.split(".")[0] if node.module else INIT, node))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "fhir_mappings":
                    found.append((parts[1] if len(parts) > 1 else INIT, node))
    return found


def _graph() -> dict[str, set[str]]:
    return {path.stem: {m for m, _ in _internal_imports(ast.parse(path.read_text()))} for path in _modules()}


def test_no_forbidden_imports() -> None:
    for path in _modules():
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                assert name.split(".")[0] not in FORBIDDEN_MODULES, f"{path.name} imports {name}"


def test_no_clock_or_random_ids() -> None:
    for path in _modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                assert node.func.attr not in FORBIDDEN_CALLS, f"{path.name} calls .{node.func.attr}()"


def test_submodules_import_siblings_never_the_package() -> None:
    """The ``__init__`` re-exports everything: a submodule importing it would import itself."""
    for module, imports in _graph().items():
        if module != INIT:
            assert INIT not in imports, f"{module}.py imports the package fhir_mappings; import the sibling module"


def test_package_imports_only_at_module_level() -> None:
    """An import of the package inside a function (or under TYPE_CHECKING) hides an edge of the
    graph; every one stands at the top of its module, where the cycle test sees it."""
    for path in _modules():
        tree = ast.parse(path.read_text())
        top = set(map(id, tree.body))
        for module, node in _internal_imports(tree):
            assert id(node) in top, f"{path.name}:{node.lineno} imports fhir_mappings.{module} below module level"


def test_no_import_cycle() -> None:
    graph = _graph()
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> None:
        if module in path:
            raise AssertionError("import cycle: " + " -> ".join(path[path.index(module):] + [module]))
        if module in done:
            return
        for target in sorted(graph.get(module, ())):
            visit(target, path + [module])
        done.add(module)

    for module in sorted(graph):
        visit(module, [])


def test_identifiers_and_vocabulary_stand_alone() -> None:
    graph = _graph()
    for module in STANDALONE:
        assert graph[module] <= STANDALONE - {module}, f"{module}.py imports {sorted(graph[module] - STANDALONE)}"
