"""Resources the payer side writes besides the Claim: rejection ClaimResponses and biller Tasks.

Ids are derived from what caused them (uuid5), so a job that runs twice writes the same
resource twice instead of two resources."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from app.fhir.dates import instant
from app.fhir.store import Unit
from app.fhir.tasks import task_input, work_item
from fhir_mappings.vocabulary import PAYER_ERROR, SERVER_NAMESPACE, stable_id

def put(unit: Unit, resource: dict[str, Any]) -> None:
    """Create or overwrite by id (idempotent posting)."""
    unit.update(resource["resourceType"], resource["id"], resource)


def issues_text(outcome: dict[str, Any]) -> list[str]:
    out = []
    for i in outcome.get("issue") or []:
        text = i.get("diagnostics") or (i.get("details") or {}).get("text") or i.get("code", "issue")
        out.append(str(text))
    return out


def rejection_response(claim: dict[str, Any], outcome: dict[str, Any], now: datetime, *, source: str) -> dict[str, Any]:
    """A ClaimResponse (outcome error) carrying the payer's reasons, for the Claim's record."""
    errors = []
    for i in outcome.get("issue") or []:
        coding = (i.get("details") or {}).get("coding") or [{"system": PAYER_ERROR,
                                                              "code": i.get("code", "processing")}]
        errors.append({"code": {"coding": coding[:1], "text": (i.get("diagnostics") or (i.get("details") or {}).get("text")
                                                                or i.get("code", "processing"))[:1000]}})
    return {
        "resourceType": "ClaimResponse", "id": stable_id(SERVER_NAMESPACE, "rejection", claim["id"], source),
        "status": "active", "type": claim.get("type"), "use": claim.get("use", "claim"),
        "patient": claim.get("patient"), "created": instant(now), "insurer": claim.get("insurer"),
        "request": {"reference": f"Claim/{claim['id']}"}, "outcome": "error",
        "disposition": f"Rejected ({source})", "error": errors or [{"code": {"text": "rejected"}}],
    }


def biller_task(unit: Unit, claim: dict[str, Any], code: str, display: str, description: str,
                reasons: list[str], now: datetime, *, key: str, about: list[str] | None = None) -> None:
    """One open Task per cause (``key``) asking a person to act on a claim or a message;
    ``about``: further resources it concerns (``Claim/id``), listed as inputs."""
    task = work_item(code, display, description, now, task_id=stable_id(SERVER_NAMESPACE, "task", code, key),
                     focus=f"Claim/{claim['id']}" if claim.get("id") else None, patient=claim.get("patient"),
                     inputs=[task_input("reason", valueString=r[:1000]) for r in reasons[:50]]
                     + [task_input("claim", valueReference={"reference": ref}) for ref in about or []])
    current = unit.current("Task", task["id"])
    if current is None or current.deleted:
        put(unit, task)
