"""FHIR operations (``$name``) this server offers, for the CapabilityStatement.

Each feature that adds an operation route registers its definition here, so the
CapabilityStatement and the OperationDefinitions served under ``/fhir/OperationDefinition``
always match the routes.
"""
from __future__ import annotations

from typing import Any

_OPERATIONS: list[dict[str, Any]] = []


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
