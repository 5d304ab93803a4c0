"""payer_adapters' imports run one way (the Layout section of ADAPTERS.md says which).

The contract and the errors import none of the adapters; the registry imports the adapters and
nothing imports the registry; the codec (``x12``) imports nothing else of the package, and its
decoders know nothing of FHIR; the package uses only ``vocabulary`` and ``identifiers`` of
fhir_mappings and nothing of the server. No import circle, and no import of the product inside a
function, where it would hide an edge of the graph.
"""
from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import grimp

PACKAGE = Path(__file__).resolve().parents[2] / "payer_adapters"

#: Each part of the package (a top-level module or subpackage) and the parts it may import.
ALLOWED: dict[str, set[str]] = {
    "contract": set(),
    "errors": set(),
    "oauth": {"errors"},
    "transports": {"errors"},
    "x12": set(),
    "chc_reports": {"x12"},
    "fhir_eob": set(),
    "chc_status": {"chc_reports", "contract", "errors", "x12"},
    "fhir_payer": {"contract", "errors", "oauth", "x12"},
    "clearinghouse_json": {"chc_status", "contract", "errors", "oauth", "x12"},
    "x12_files": {"contract", "errors", "transports", "x12"},
    "registry": {"contract", "fhir_payer", "clearinghouse_json", "x12_files", "x12"},
    "sandbox": {"x12"},
}
#: What the package may use of fhir_mappings.
MAPPINGS = {"fhir_mappings.vocabulary", "fhir_mappings.identifiers"}


@cache
def _graph() -> grimp.ImportGraph:
    return grimp.build_graph("payer_adapters", "fhir_mappings", include_external_packages=True, cache_dir=None)


def _ours() -> list[str]:
    return sorted(m for m in _graph().modules if m.startswith("payer_adapters"))


def _part(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_every_part_is_in_the_table() -> None:
    assert {_part(m) for m in _ours()} - {""} == set(ALLOWED)


def test_parts_import_only_what_the_table_allows() -> None:
    graph = _graph()
    for module in _ours():
        for imported in graph.find_modules_directly_imported_by(module):
            if imported.startswith("payer_adapters") and _part(imported) != _part(module):
                assert _part(imported) in ALLOWED[_part(module)], f"{module} imports {imported}"


def test_nothing_of_the_server_and_only_the_vocabulary_and_identifiers_of_the_mappings() -> None:
    graph = _graph()
    for module in _ours():
        for imported in graph.find_modules_directly_imported_by(module):
            assert imported.split(".")[0] != "app", f"{module} imports {imported}"
            if imported.startswith("fhir_mappings"):
                assert imported in MAPPINGS, f"{module} imports {imported}"


def test_decoders_know_nothing_of_fhir() -> None:
    graph = _graph()
    for module in _ours():
        if module.startswith("payer_adapters.x12.decode_"):
            imported = graph.find_modules_directly_imported_by(module)
            fhir = {m for m in imported if m.startswith(("payer_adapters.x12.fhir_", "fhir_mappings"))}
            assert not fhir, f"{module} imports {sorted(fhir)}"


def test_no_import_circle() -> None:
    graph = _graph()
    for module in _ours():
        for imported in graph.find_modules_directly_imported_by(module):
            if imported.startswith("payer_adapters"):
                back = graph.find_shortest_chain(importer=imported, imported=module)
                assert back is None, "import circle: " + " -> ".join((module, *back))


def _imports(path: Path) -> list[tuple[ast.stmt, str, list[str]]]:
    """(statement, module, names) of every import in a file."""
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            out.append((node, node.module, [a.name for a in node.names]))
        elif isinstance(node, ast.Import):
            out.extend((node, a.name, []) for a in node.names)
    return out


def test_codec_modules_import_their_siblings_never_the_package() -> None:
    """``payer_adapters.x12``'s ``__init__`` is its public face for the rest of the product; a
    module of the codec importing it would import itself."""
    for path in sorted((PACKAGE / "x12").glob("*.py")):
        if path.name == "__init__.py":
            continue
        for node, module, _ in _imports(path):
            assert module != "payer_adapters.x12", f"x12/{path.name}:{node.lineno} imports the package"


def test_the_product_is_imported_at_module_level() -> None:
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text())
        top = set(map(id, tree.body))
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)) and id(node) not in top:
                names = node.module if isinstance(node, ast.ImportFrom) else node.names[0].name
                assert (names or "").split(".")[0] not in ("payer_adapters", "fhir_mappings", "app"), \
                    f"{path.relative_to(PACKAGE)}:{node.lineno} imports {names} inside a function"
