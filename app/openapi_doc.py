"""The served OpenAPI document; ``openapi/openapi.json`` is a copy kept in step by a test.

FastAPI describes each route as it is declared, which for the FHIR API says little: the
handlers read their query and body themselves. ``install`` makes ``GET /openapi.json`` serve
FastAPI's document with the FHIR part rewritten per resource type (``app/fhir/openapi.py``):
search parameters, request bodies, operations with their parameters, answers as the server
sends them (``application/fhir+json``; an OperationOutcome on every error, 400 where FastAPI
would say 422) and the SMART security schemes.
"""
from __future__ import annotations

import copy
from typing import Any, Callable

from fastapi import FastAPI

from app.auth.discovery import smart_configuration
from app.fhir.openapi import describe_fhir, tags
from app.fhir.operations import operation_definitions

# FastAPI's description of a request it could not parse; the server answers those with 400 and
# an OperationOutcome instead (``app.main``'s handler for RequestValidationError).
_FASTAPI_VALIDATION = ("HTTPValidationError", "ValidationError")


def _validation_errors_as_outcomes(operation: dict[str, Any]) -> None:
    responses = operation.get("responses", {})
    if "422" in responses and "HTTPValidationError" in str(responses["422"]):
        del responses["422"]
        responses.setdefault("400", {"$ref": "#/components/responses/Error400"})


def describe(app: FastAPI, document: dict[str, Any]) -> dict[str, Any]:
    """``document`` (FastAPI's, for ``app``) with the FHIR API described for generic clients."""
    services = app.state.services
    scopes = smart_configuration(services.settings)["scopes_supported"]
    paths, parts = describe_fhir(document["paths"], services.registry, operation_definitions(), scopes)
    for path, item in paths.items():
        for operation in item.values():
            _validation_errors_as_outcomes(operation)
            if path.startswith("/admin/") or path == "/admin":
                operation.setdefault("security", [{"bearer": []}])
    schemas = {name: schema for name, schema in document.get("components", {}).get("schemas", {}).items()
               if name not in _FASTAPI_VALIDATION}
    document["paths"] = paths
    document["components"] = {**parts, "schemas": {**schemas, **parts["schemas"]}}
    document["tags"] = tags(services.registry)
    document["info"]["description"] = (
        f"{app.description} The FHIR R4 (4.0.1) API is under `/fhir`, described per resource type with its "
        "search parameters; every FHIR interaction except `metadata` needs a SMART access token.")
    return document


def install(app: FastAPI) -> None:
    """Serve the described document at ``/openapi.json`` (built on first use, then kept)."""
    fastapi_document: Callable[[], dict[str, Any]] = app.openapi
    built: list[dict[str, Any]] = []

    def openapi() -> dict[str, Any]:
        if not built:
            built.append(describe(app, copy.deepcopy(fastapi_document())))
        return built[0]

    app.openapi = openapi  # type: ignore[method-assign]
