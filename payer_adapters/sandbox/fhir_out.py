"""FHIR R4 answers of the sandbox: ClaimResponse (in the Da Vinci PAS style) and
CoverageEligibilityResponse.

Adjudication categories use the base ``adjudication`` code system (submitted, eligible, benefit)
plus the CARC as ``reason`` (system ``https://x12.org/codes/claim-adjustment-reason-codes``) and
the group code in the same coding list's sibling (``…/claim-adjustment-group-codes``), the same
shape the codec gives 835 EOBs.
"""
from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

import fhir_mappings.vocabulary as vocabulary
from payer_adapters.sandbox.engine import Benefits, ClaimResult, Ledger
from payer_adapters.x12.codes import (
    ADJUDICATION, BENEFIT_TYPE, CARC_SYSTEM, GROUP_SYSTEM, SERVICE_TYPE_SYSTEM, STC_STATUS_SYSTEM,
)
from payer_adapters.x12.fhir_out import money

#: The simulated payer's own resource ids (not a TheraBridge namespace: the server derives its
#: ids from these, so they stay as they are).
NS = uuid.UUID("6f1c1f0e-7d8a-4c1e-9b5e-2f7c0a5d9e11")


def _adj(code: str, amount: Decimal, reason: tuple[str, str] | None = None) -> dict[str, Any]:
    a: dict[str, Any] = {"category": {"coding": [{"system": ADJUDICATION, "code": code}]}, "amount": money(amount)}
    if reason:
        group, carc = reason
        a["category"] = {"coding": [{"system": GROUP_SYSTEM, "code": group}]}
        a["reason"] = {"coding": [{"system": CARC_SYSTEM, "code": carc}]}
    return a


def claim_response(result: ClaimResult, request: dict[str, Any], *, now: datetime, queued: bool = False,
                   carc_text: dict[str, str] | None = None) -> dict[str, Any]:
    """The ClaimResponse for a submitted Claim; ``queued`` gives the pended form (outcome
    ``queued``, no adjudication yet) that the client follows up with ``$inquire``."""
    c = result.claim
    rid = vocabulary.stable_id(NS, result.icn, "queued" if queued else "final")
    out: dict[str, Any] = {
        "resourceType": "ClaimResponse", "id": rid, "status": "active",
        "identifier": [{"system": vocabulary.PAYER_CLAIM_NUMBER, "value": result.icn}],
        "type": request.get("type") or {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/claim-type",
                                                    "code": "professional"}]},
        "use": request.get("use", "claim"), "patient": request.get("patient") or {"display": "patient"},
        "created": now.isoformat(), "insurer": request.get("insurer") or {"display": c.payer_id},
        "request": {"identifier": {"system": vocabulary.PATIENT_CONTROL_NUMBER, "value": c.pcn}},
    }
    if request.get("id"):
        out["request"]["reference"] = f"Claim/{request['id']}"
    if queued:
        out["outcome"] = "queued"
        out["disposition"] = "Pended for review; use $inquire"
        return out
    if result.rejected:
        out["outcome"] = "error"
        out["disposition"] = "Rejected by front-end edits"
        out["error"] = [{"code": {"coding": [{"system": STC_STATUS_SYSTEM, "code": f"{e.category}:{e.status}"}], "text": e.text},
                         **({"itemSequence": e.line.sequence} if e.line else {})} for e in result.edits]
        return out
    out["outcome"] = "complete"
    out["disposition"] = "Voided" if result.void else "Processed" if result.status == "1" else "Denied"
    items = []
    notes = []
    for lr in result.lines:
        adj = [_adj("submitted", lr.line.charge)]
        if lr.allowed is not None:
            adj.append(_adj("eligible", lr.allowed))
        adj.append(_adj("benefit", lr.paid))
        adj += [_adj("", amount, (g, carc)) for g, carc, amount in lr.adjustments]
        item: dict[str, Any] = {"itemSequence": lr.line.sequence or 1, "adjudication": adj}
        for rarc in lr.remarks:
            notes.append({"number": len(notes) + 1, "type": "display", "text": rarc})
            item["noteNumber"] = [len(notes)]
        items.append(item)
    out["item"] = items
    out["total"] = [_adj("submitted", c.total), _adj("benefit", result.paid)]
    out["payment"] = {"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/ex-paymenttype",
                                           "code": "complete"}]}, "amount": money(result.paid)}
    if notes:
        out["processNote"] = notes
    return out


def eligibility_response(ben: Benefits, request: dict[str, Any], ledger: Ledger, *, now: datetime) -> dict[str, Any]:
    """CoverageEligibilityResponse with one item per service type (copay, coinsurance, visits
    allowed/used, deductible, authorizationRequired)."""
    rid = vocabulary.stable_id(NS, "elig", request.get("id"), ben.member_id)
    out: dict[str, Any] = {
        "resourceType": "CoverageEligibilityResponse", "id": rid, "status": "active",
        "purpose": request.get("purpose") or ["benefits"], "patient": request.get("patient") or {"display": "patient"},
        "created": now.isoformat(), "request": {"reference": f"CoverageEligibilityRequest/{request.get('id')}"}
        if request.get("id") else {"display": "request"},
        "insurer": request.get("insurer") or {"display": "payer"},
    }
    if request.get("identifier"):
        out["identifier"] = request["identifier"]
    if not ben.found:
        out["outcome"] = "error"
        out["error"] = [{"code": {"coding": [{"system": "https://x12.org/codes/aaa-reject-reason", "code": "75"}],
                                  "text": "Subscriber/insured not found"}}]
        return out
    out["outcome"] = "complete"
    cov = (request.get("insurance") or [{}])[0].get("coverage") or {"display": "coverage"}
    items = []
    m = ben.member
    for st in ben.service_types:
        benefits: list[dict[str, Any]] = []
        if m.get("copay"):
            benefits.append({"type": {"coding": [{"system": BENEFIT_TYPE, "code": "copay"}]}, "allowedMoney": money(Decimal(str(m["copay"])))})
        if m.get("coinsurance"):
            benefits.append({"type": {"coding": [{"system": BENEFIT_TYPE, "code": "copay-percent"}]},
                             "allowedUnsignedInt": int(round(float(m["coinsurance"]) * 100))})
        total, used = ben.visits(st, ledger)
        if total is not None:
            benefits.append({"type": {"coding": [{"system": BENEFIT_TYPE, "code": "visit"}]},
                             "allowedUnsignedInt": int(total), "usedUnsignedInt": int(used)})
        d = m.get("deductible") or {}
        if d.get("total"):
            benefits.append({"type": {"coding": [{"system": BENEFIT_TYPE, "code": "deductible"}]},
                             "allowedMoney": money(Decimal(str(d["total"]))),
                             "usedMoney": money(Decimal(str(d["total"])) - ben.deductible_remaining(ledger))})
        item: dict[str, Any] = {"category": {"coding": [{"system": SERVICE_TYPE_SYSTEM, "code": st}]},
                                "authorizationRequired": ben.auth_required(st)}
        if benefits:
            item["benefit"] = benefits
        if m.get("visit_limit_note"):
            item["description"] = m["visit_limit_note"]
        items.append(item)
    out["insurance"] = [{"coverage": cov, "inforce": ben.active, **({"item": items} if ben.active else {})}]
    return out
