"""271 records → FHIR: a CoverageEligibilityResponse, plus an OperationOutcome when the payer
answered with AAA rejections.

Benefits use the HL7 ``benefit-type`` codes where one fits (copay, copay-percent, deductible,
visit) and ``vocabulary.BENEFIT_TYPE`` for what HL7 has no code for (remaining deductible,
out-of-pocket, remaining visits). The request is referenced by our trace number (TRN02).
"""
from __future__ import annotations

from typing import Any

import fhir_mappings.vocabulary as vocabulary
from payer_adapters.x12.codes import BENEFIT_TYPE, SERVICE_TYPE_SYSTEM, describe, table
from payer_adapters.x12.decode_271 import Eligibility, ServiceSummary
from payer_adapters.x12.errors import StructureError
from payer_adapters.x12.fhir_out import concept, entry, money, operation_outcome, reference_by_identifier
from payer_adapters.x12.resources import NPI


def eligibility_to_fhir(e: Eligibility, claims: Any = None) -> list[dict[str, Any]]:
    """The CoverageEligibilityResponse entry, then the AAA OperationOutcome when there are rejects."""
    key = eligibility_identity(e)
    entries = [entry(coverage_eligibility_response(e), *key)]
    if e.rejects:
        errs = [StructureError(f"AAA {r.reason}: {table('eligibility')['aaa_reasons'].get(r.reason, 'rejected')}"
                               f" (follow-up {r.follow_up or '-'})", segment_id="AAA", loop_id=r.loop_id,
                               code=r.reason) for r in e.rejects]
        entries.append(entry(operation_outcome(errs), *key, "aaa"))
    return entries


def eligibility_identity(e: Eligibility) -> tuple[str, ...]:
    """What identifies this answer across deliveries: the payer (2100A), the 271's BHT03 and
    creation date, our trace (TRN02) and the member — never envelope control numbers."""
    return ("271", e.payer_id, e.reference, e.created, e.trace_number or "", e.member_id or "",
            "dependent" if e.dependent else "subscriber")


def _benefits(s: ServiceSummary) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []

    def add(system: str, code: str, display: str, **value: Any) -> None:
        out.append({"type": concept(system, code, display), **value})

    if s.copay is not None:
        add(BENEFIT_TYPE, "copay", "Copayment per service", allowedMoney=money(s.copay))
    if s.coinsurance_percent is not None:
        pct = s.coinsurance_percent
        value = {"allowedUnsignedInt": int(pct)} if pct == int(pct) else {"allowedString": f"{pct}%"}
        add(BENEFIT_TYPE, "copay-percent", "Coinsurance percent", **value)
    if s.deductible_total is not None:
        extra = {"usedMoney": money(s.deductible_total - s.deductible_remaining)} \
            if s.deductible_remaining is not None else {}
        add(BENEFIT_TYPE, "deductible", "Deductible", allowedMoney=money(s.deductible_total), **extra)
    if s.deductible_remaining is not None:
        add(vocabulary.BENEFIT_TYPE, "deductible-remaining", "Deductible remaining",
            allowedMoney=money(s.deductible_remaining))
    if s.out_of_pocket_total is not None:
        add(vocabulary.BENEFIT_TYPE, "out-of-pocket", "Out-of-pocket maximum", allowedMoney=money(s.out_of_pocket_total))
    if s.out_of_pocket_remaining is not None:
        add(vocabulary.BENEFIT_TYPE, "out-of-pocket-remaining", "Out-of-pocket remaining",
            allowedMoney=money(s.out_of_pocket_remaining))
    if s.visits_total is not None:
        extra = {"usedUnsignedInt": int(s.visits_used)} if s.visits_used is not None else {}
        add(BENEFIT_TYPE, "visit", "Visits" + (f" per {table('eligibility')['time_period'].get(s.visits_period or '', 'period')}"),
            allowedUnsignedInt=int(s.visits_total), **extra)
    if s.visits_remaining is not None:
        add(vocabulary.BENEFIT_TYPE, "visit-remaining", "Visits remaining", allowedUnsignedInt=int(s.visits_remaining))
    return out


def coverage_eligibility_response(e: Eligibility) -> dict[str, Any]:
    """The CoverageEligibilityResponse: one insurance item per service type (and network) the 271
    names, with its benefits; AAA rejections as ``error``."""
    g = e.header.group
    day = e.created[:8] if len(e.created) >= 8 and e.created[:8].isdigit() else g.date
    created = f"{day[:4]}-{day[4:6]}-{day[6:8]}"  # BHT04, so a re-sent 271 reads the same
    items = []
    for s in e.summaries():
        item: dict[str, Any] = {
            "category": concept(SERVICE_TYPE_SYSTEM, s.service_type, describe("service_types", s.service_type)),
        }
        if s.in_network is not None:
            item["network"] = concept("http://terminology.hl7.org/CodeSystem/benefit-network",
                                      "in" if s.in_network else "out")
        if s.auth_required is not None:
            item["authorizationRequired"] = s.auth_required
        if s.active is not None:  # EB01 1–5 covered, 6–8 not: "covered" differs from "not mentioned"
            item["excluded"] = not s.active
        if s.messages:
            item["description"] = " ".join(s.messages)
        benefits = _benefits(s)
        if benefits:
            item["benefit"] = benefits
        items.append(item)  # one per service type the 271 names, even when it only confirms coverage
    res: dict[str, Any] = {
        "resourceType": "CoverageEligibilityResponse",
        "status": "active",
        "purpose": ["benefits", "validation"],
        "patient": reference_by_identifier("Patient", vocabulary.MEMBER_ID, e.member_id),
        "created": created,
        "request": {"type": "CoverageEligibilityRequest",
                    **({"identifier": {"system": vocabulary.ELIGIBILITY_TRACE, "value": e.trace_number}} if e.trace_number else {})},
        "requestor": reference_by_identifier("Organization", NPI, e.provider_npi),
        "outcome": "error" if e.rejects and not e.benefits else "complete",
        "insurer": reference_by_identifier("Organization", vocabulary.PAYER_ID, e.payer_id, e.payer_name or None),
    }
    if e.active is not None or items:
        ins: dict[str, Any] = {"coverage": reference_by_identifier("Coverage", vocabulary.MEMBER_ID, e.member_id,
                                                                   e.plan)}
        if e.active is not None:
            ins["inforce"] = e.active
        if "346" in e.plan_dates or "356" in e.plan_dates:
            ins["benefitPeriod"] = {"start": e.plan_dates.get("346") or e.plan_dates.get("356")}
        if items:
            ins["item"] = items
        res["insurance"] = [ins]
    if e.rejects:
        res["error"] = [{"code": concept("https://x12.org/codes/aaa-reject-reason", r.reason,
                                         table("eligibility")["aaa_reasons"].get(r.reason))} for r in e.rejects]
    if e.rejects:
        res["disposition"] = "Request rejected: " + ", ".join(r.reason for r in e.rejects)
    return res
