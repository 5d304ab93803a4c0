"""Small builders shared by the FHIR mappers (``fhir_*.py``): entries with stable ids, money,
codeable concepts, logical references and the OperationOutcome that carries X12 errors."""
from __future__ import annotations

from decimal import Decimal
from typing import Any, Iterable

import fhir_mappings.vocabulary as vocabulary
from payer_adapters.x12.errors import X12Error

_ISSUE_CODE = {
    "X12SyntaxError": "structure", "EnvelopeError": "structure", "UnsupportedTransaction": "not-supported",
    "StructureError": "structure", "DataElementError": "value", "BalanceError": "business-rule",
    "EncodeError": "invalid",
}


def entry(resource: dict[str, Any], *key: object) -> dict[str, Any]:
    """A Bundle entry whose id derives from the resource type and ``key`` (what identifies the
    answer), so the same answer delivered again maps onto the same resource."""
    rid = vocabulary.stable_id(vocabulary.X12_NAMESPACE, resource["resourceType"], *key)
    resource["id"] = rid
    return {"fullUrl": f"urn:uuid:{rid}", "resource": resource}


def money(value: Decimal | None) -> dict[str, Any]:
    return {"value": float(value or 0), "currency": "USD"}


def coding(system: str, code: str, display: str | None = None) -> dict[str, Any]:
    """A Coding, with ``display`` only when there is one (a code table may not know the code)."""
    out: dict[str, Any] = {"system": system, "code": code}
    if display:
        out["display"] = display
    return out


def concept(system: str, code: str, display: str | None = None) -> dict[str, Any]:
    return {"coding": [coding(system, code, display)]}


def issue(err: X12Error, severity: str = "error") -> dict[str, Any]:
    out: dict[str, Any] = {
        "severity": severity,
        "code": _ISSUE_CODE.get(type(err).__name__, "processing"),
        "details": {"coding": [{"system": vocabulary.X12_ERROR, "code": f"{err.level}:{err.code}"}],
                    "text": str(err)},
        "diagnostics": err.message,
    }
    expr = err.fhir_expression()
    if expr:
        out["expression"] = expr
    return out


def operation_outcome(errors: Iterable[X12Error], severity: str = "error") -> dict[str, Any]:
    issues = [issue(e, severity) for e in errors]
    if not issues:
        issues = [{"severity": "information", "code": "informational", "diagnostics": "no errors"}]
    return {"resourceType": "OperationOutcome", "issue": issues}


def reference_by_identifier(rtype: str, system: str, value: str | None,
                            display: str | None = None) -> dict[str, Any]:
    ref: dict[str, Any] = {"type": rtype}
    if value:
        ref["identifier"] = {"system": system, "value": value}
    if display:
        ref["display"] = display
    return ref
