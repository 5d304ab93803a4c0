"""The CapabilityStatement, generated from the same registry the router and indexer use."""
from __future__ import annotations

from typing import Any

from app import __version__
from app.fhir.registry import COMMON_PARAMS, INTERACTIONS, Registry

PARAM_DOCS = {"_id": "Logical id (comma-separated for OR)", "_lastUpdated": "When the resource last changed"}


def capability_statement(registry: Registry, *, base: str, date: str, operations: list[dict[str, Any]],
                         security: dict[str, Any] | None = None) -> dict[str, Any]:
    resources = []
    for name in sorted(registry.types):
        rt = registry.types[name]
        params = [{"name": p, "type": t, "documentation": PARAM_DOCS[p]} for p, t in COMMON_PARAMS.items()]
        params += [{"name": p.name, "type": p.type, **({"documentation": p.documentation} if p.documentation else {})}
                   for p in rt.params.values()]
        includes = [f"{name}:{p.name}" for p in rt.reference_params]
        revincludes = sorted(f"{other.name}:{p.name}" for other in registry.types.values() if not other.audit_trail
                             for p in other.reference_params if not p.targets or name in p.targets)
        offered = set(rt.interactions)
        entry: dict[str, Any] = {
            "type": name,
            "interaction": [{"code": code} for code in INTERACTIONS if code in offered],
            "versioning": "versioned-update" if "update" in offered else "no-version",
            "readHistory": "vread" in offered,
            "updateCreate": "update" in offered,
            "conditionalCreate": "create" in offered,
            "conditionalRead": "not-supported",
            "conditionalUpdate": "update" in offered,
            "conditionalDelete": "single" if "delete" in offered else "not-supported",
            "searchInclude": includes,
            "searchRevInclude": revincludes,
            "searchParam": params,
        }
        if rt.documentation:
            entry["documentation"] = rt.documentation
        ops = [{"name": op["name"], "definition": op["definition"]} for op in operations if op["resource"] == name]
        if ops:
            entry["operation"] = ops
        resources.append(entry)
    rest: dict[str, Any] = {"mode": "server"}
    if security:
        rest["security"] = security
    rest["resource"] = resources
    rest["interaction"] = [{"code": "transaction"}, {"code": "batch"}, {"code": "history-system"}]
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": date,
        "publisher": "TheraBridge",
        "kind": "instance",
        "software": {"name": "TheraBridge", "version": __version__},
        "implementation": {"description": "TheraBridge therapy billing integration server", "url": base},
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json", "json"],
        "rest": [rest],
    }
