"""FHIR operations (``$name``) this server offers, for the CapabilityStatement, and how their
request bodies are read.

Each feature that adds an operation route registers its definition here, so the
CapabilityStatement and the OperationDefinitions served under ``/fhir/OperationDefinition``
always match the routes. Every operation reads its body with :func:`operation_input`.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from app.fhir.errors import FhirError
from app.fhir.validation import check_resource
from fhir_mappings.vocabulary import OPERATION_DEFINITION

_OPERATIONS: list[dict[str, Any]] = []


def register_operations(path: Path) -> None:
    """Register the OperationDefinitions described in the data file ``path``."""
    for op in json.loads(path.read_text())["operations"]:
        register_operation({
            "resourceType": "OperationDefinition", "id": op["id"], "url": f"{OPERATION_DEFINITION}/{op['id']}",
            "name": op["id"].replace("-", ""), "status": "active", "kind": "operation", "code": op["code"],
            "description": op["description"], "resource": [op["resource"]], "system": False, "type": op["type"],
            "instance": op["instance"],
            "parameter": [{"name": p["name"], "use": p["use"], "min": p["min"], "max": "1", "type": p["type"]}
                          for p in op["parameters"]],
        })


def register_operation(definition: dict[str, Any]) -> None:
    """Register an OperationDefinition resource (``code``, ``resource``, ``system``/``type``/``instance``)."""
    _OPERATIONS.append(definition)


def operation_summaries(base: str) -> list[dict[str, Any]]:
    return [
        {"name": d["code"], "resource": r, "definition": f"{base}/OperationDefinition/{d['id']}"}
        for d in _OPERATIONS for r in d.get("resource", [])
    ]


def operation_definitions() -> list[dict[str, Any]]:
    return list(_OPERATIONS)


def operation_input(doc: Any, params: dict[str, str]) -> tuple[dict[str, str], dict[str, Any] | None]:
    """The parameters (``params`` from the query string, plus the body's) and the input resource
    of an operation's body, which is a Parameters resource or the input resource itself (R4
    operations.html). A body that is not a JSON object, or a Parameters that is not valid, is a
    400 naming the element; the input resource is for the operation to check."""
    if not isinstance(doc, dict):
        found = "an array" if isinstance(doc, list) else "null" if doc is None else f"a {type(doc).__name__}"
        raise FhirError(400, "structure", f"An operation's body is a JSON object (a Parameters resource or the "
                        f"input resource), not {found}", expression=["Parameters"])
    if doc.get("resourceType") != "Parameters":
        return dict(params), doc
    check_resource(doc, expected_type="Parameters", served=False)
    out, resource = dict(params), None
    for p in doc.get("parameter") or []:
        if "resource" in p:
            resource = p["resource"]
            continue
        value = next((v for k, v in p.items() if k.startswith("value")), None)
        if isinstance(value, dict) and isinstance(value.get("reference"), str):
            value = value["reference"]  # valueReference: the reference is the parameter
        if value is not None:
            out[p["name"]] = str(value)
    return out, resource
