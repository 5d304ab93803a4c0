"""Imports run downhill only. The graph of every module of ``app``, ``payer_adapters`` and
``fhir_mappings`` (imports inside functions included, ``if TYPE_CHECKING`` ones not, package
``__init__`` modules counted as modules) has no circle, and no module imports one from a layer
above its own. README.md, Layout, explains the layers; a change that breaks them fails here with
the offending import and its line."""
from __future__ import annotations

from functools import lru_cache

import grimp
import pytest

PACKAGES = ("app", "fhir_mappings", "payer_adapters")

#: ``app``'s layers, top to bottom: a module belongs to the layer of its longest matching prefix.
APP_LAYERS: list[list[str]] = [
    # entry points: the CLI, the server factory, the one module that installs every hook
    ["app.cli", "app.main", "app.openapi_doc", "app.bootstrap", "app.loader", "app.migrations.env"],
    # the HTTP edge: routes, request authentication, the services a request needs
    ["app.fhir.routes", "app.claims.operations", "app.payers.routes", "app.payers.admin_routes", "app.payers.worklist_routes",
     "app.auth.admin_routes", "app.auth.oauth_routes", "app.auth.bearer", "app.auth.capability", "app.auth.pages",
     "app.auth.demo", "app.audit_routes", "app.services", "app.fhir.openapi", "app.rate_limit", "app.payers.demo",
     "app.billing.operations", "app.measures.routes", "app.web"],
    ["app.measures"],  # the revenue-cycle KPIs: claim facts kept from every layer below, their queries
    ["app.payers"],  # talking to payers: submission, inquiry, inbound, posting, eligibility
    ["app.billing"],  # the patient's share: balances, payments, statements, estimates
    ["app.claims"],  # the claim workflow and its lifecycle
    ["app.directory"],  # the payer directory
    ["app.jobs", "app.migrations"],  # the job queue's workers; schema upgrades
    # the FHIR store and API core, the audit trail
    ["app.fhir", "app.audit", "app.audit_trail", "app.x12_control"],
    ["app.outbox", "app.auth", "app.security", "app.ids", "app.log_safety"],  # tables and helpers the store uses
    ["app.db", "app.settings", "app"],
]

#: What ``payer_adapters`` may import of ``fhir_mappings``: the product's vocabulary and the one
#: identifier resolver, which every reader of identifiers uses.
SHARED_MAPPINGS = ("fhir_mappings.vocabulary", "fhir_mappings.identifiers")


@lru_cache(maxsize=1)
def graph() -> grimp.ImportGraph:
    return grimp.build_graph(*PACKAGES, include_external_packages=False, exclude_type_checking_imports=True,
                             cache_dir=None)


def _imports() -> list[tuple[str, str]]:
    g = graph()
    return [(m, d) for m in sorted(g.modules) for d in sorted(g.find_modules_directly_imported_by(m))]


def _where(importer: str, imported: str) -> str:
    lines = [d["line_number"] for d in graph().get_import_details(importer=importer, imported=imported)]
    return f"{importer} imports {imported} (line {', '.join(map(str, lines))})"


def _in(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def _app_layer(module: str) -> int:
    best: tuple[int, int] | None = None
    for n, layer in enumerate(APP_LAYERS):
        for prefix in layer:
            if _in(module, prefix) and (best is None or len(prefix) > best[1]):
                best = (n, len(prefix))
    assert best is not None, f"{module} belongs to no layer: add it to APP_LAYERS"
    return best[0]


def _circles() -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iteratively)."""
    g = graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(g.modules):
        if root in index:
            continue
        work = [(root, iter(sorted(g.find_modules_directly_imported_by(root))))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(g.find_modules_directly_imported_by(child)))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_no_import_circles() -> None:
    assert _circles() == []


@pytest.mark.parametrize("package", PACKAGES)
def test_packages_import_only_what_they_may(package: str) -> None:
    allowed = {"app": ("app", "fhir_mappings", "payer_adapters"), "payer_adapters": ("payer_adapters", *SHARED_MAPPINGS),
               "fhir_mappings": ("fhir_mappings",)}[package]
    wrong = [_where(m, d) for m, d in _imports() if _in(m, package) and not any(_in(d, a) for a in allowed)]
    assert wrong == []


def test_shared_mappings_stand_on_their_own() -> None:
    """The vocabulary and the identifier resolver import nothing else of fhir_mappings, so what
    payer_adapters may import brings nothing more with it."""
    wrong = [_where(m, d) for m, d in _imports() if m in SHARED_MAPPINGS
             and _in(d, "fhir_mappings") and d not in SHARED_MAPPINGS]
    assert wrong == []


def test_app_imports_run_downhill() -> None:
    wrong = [_where(m, d) + f" (layer {_app_layer(m)} -> {_app_layer(d)})"
             for m, d in _imports() if _in(m, "app") and _in(d, "app") and _app_layer(d) < _app_layer(m)]
    assert wrong == []
