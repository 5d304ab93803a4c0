"""835 typed records → FHIR R4 ExplanationOfBenefit (one per CLP) + PaymentReconciliation.

Line matching: a 2110 line belongs to the Claim.item whose line-control-number extension equals its
REF*6R; without REF*6R, to the first unmatched item with the same procedure code and service date.
References to the claim, patient, payer and payee are logical (by identifier) unless the matching
Claim resources are passed in.
"""
from __future__ import annotations

from decimal import Decimal
from typing import Any, Iterable

import fhir_mappings.vocabulary as vocabulary
from payer_adapters.x12.codes import ADJUDICATION, CARC_SYSTEM, GROUP_SYSTEM, describe
from payer_adapters.x12.decode_835 import ClaimPayment, Remittance, ServicePayment
from payer_adapters.x12.fhir_out import coding, concept, entry, money, operation_outcome, reference_by_identifier
from payer_adapters.x12.resources import NPI, extension


def match_lines(claim_payment: ClaimPayment, claim: dict[str, Any] | None) -> list[int | None]:
    """For each 2110 line, the matching ``Claim.item.sequence`` (None when no item matches)."""
    if not claim:
        return [None] * len(claim_payment.services)
    items = claim.get("item") or []
    by_control = {extension(i, vocabulary.LINE_CONTROL_NUMBER): i["sequence"] for i in items if extension(i, vocabulary.LINE_CONTROL_NUMBER)}
    used: set[int] = set()
    out: list[int | None] = []
    for s in claim_payment.services:
        seq = by_control.get(s.line_control_number) if s.line_control_number else None
        if seq is None:
            for i in items:
                codes = [c.get("code") for c in (i.get("productOrService") or {}).get("coding") or []]
                if i["sequence"] not in used and s.code in codes and (
                        s.service_date is None or i.get("servicedDate") == s.service_date):
                    seq = i["sequence"]
                    break
        if seq is not None:
            used.add(seq)
        out.append(seq)
    return out


def _adjudications(charge: Decimal, paid: Decimal, allowed: Decimal | None, adjustments: Iterable,
                   remarks_note: list[int] | None = None) -> list[dict[str, Any]]:
    out = [{"category": concept(ADJUDICATION, "submitted"), "amount": money(charge)},
           {"category": concept(ADJUDICATION, "benefit"), "amount": money(paid)}]
    if allowed is not None:
        out.append({"category": concept(ADJUDICATION, "eligible"), "amount": money(allowed)})
    for a in adjustments:
        adj: dict[str, Any] = {
            "category": concept(GROUP_SYSTEM, a.group, describe("adjustment_groups", a.group)),
            "reason": concept(CARC_SYSTEM, a.reason, describe("carc", a.reason)),
            "amount": money(a.amount),
        }
        if a.quantity is not None:
            adj["value"] = float(a.quantity)
        out.append(adj)
    return out


def _item(s: ServicePayment, sequence: int, notes: dict[str, int]) -> dict[str, Any]:
    item: dict[str, Any] = {
        "sequence": sequence,
        "productOrService": concept("http://www.ama-assn.org/go/cpt" if s.qualifier == "HC" else
                                    f"https://x12.org/codes/product-service-id-qualifier/{s.qualifier}", s.code),
        "quantity": {"value": float(s.units or 1)},
        "adjudication": _adjudications(s.charge, s.paid, s.allowed, s.adjustments),
    }
    if s.modifiers:
        item["modifier"] = [concept("http://www.ama-assn.org/go/cpt", m) for m in s.modifiers if m]
    if s.service_date:
        if s.service_end and s.service_end != s.service_date:
            item["servicedPeriod"] = {"start": s.service_date, "end": s.service_end}
        else:
            item["servicedDate"] = s.service_date
    if s.line_control_number:
        item["extension"] = [{"url": vocabulary.LINE_CONTROL_NUMBER, "valueString": s.line_control_number}]
    if s.remarks:
        item["noteNumber"] = [notes[r] for r in s.remarks]
    return item


def _focal_coverage(claim: dict[str, Any] | None) -> dict[str, Any] | None:
    """The Coverage the claim billed (its focal insurance; a secondary claim lists the primary first)."""
    insurances = (claim or {}).get("insurance") or []
    focal = next((i for i in insurances if i.get("focal")), insurances[0] if insurances else {})
    return focal.get("coverage")


def claim_to_eob(rem: Remittance, c: ClaimPayment, claim: dict[str, Any] | None = None) -> dict[str, Any]:
    notes: dict[str, int] = {}
    for r in [*c.remarks, *[r for s in c.services for r in s.remarks]]:
        notes.setdefault(r, len(notes) + 1)
    sequences = match_lines(c, claim)
    items = []
    taken = {s for s in sequences if s is not None}
    spare = iter(n for n in range(1, 10_000) if n not in taken)
    for s, seq in zip(c.services, sequences):
        items.append(_item(s, seq if seq is not None else next(spare), notes))
    patient = (claim or {}).get("patient") or reference_by_identifier(
        "Patient", vocabulary.MEMBER_ID, c.member_id)
    eob: dict[str, Any] = {
        "resourceType": "ExplanationOfBenefit",
        "extension": [{"url": vocabulary.X12_CLAIM_STATUS, "valueCoding": coding(
            vocabulary.X12_835_CLAIM_STATUS, c.status, describe("claim_status_835", c.status))}],
        "identifier": [{"system": vocabulary.PAYER_CLAIM_NUMBER, "value": c.payer_claim_control_number}]
        if c.payer_claim_control_number else [],
        "status": "active",
        "type": concept("http://terminology.hl7.org/CodeSystem/claim-type", "professional"),
        "use": "claim",
        "patient": patient,
        "created": rem.production_date or rem.payment_date or rem.header.group.date[:4] + "-"
        + rem.header.group.date[4:6] + "-" + rem.header.group.date[6:8],
        "insurer": (claim or {}).get("insurer") or reference_by_identifier(
            "Organization", vocabulary.PAYER_ID, rem.payer_id or rem.trace_originator, rem.payer_name or None),
        "provider": (claim or {}).get("provider") or reference_by_identifier(
            "Organization", NPI, rem.payee_npi, rem.payee_name or None),
        "claim": {"type": "Claim", "identifier": {"system": vocabulary.PATIENT_CONTROL_NUMBER, "value": c.patient_control_number},
                  **({"reference": f"Claim/{claim['id']}"} if claim and claim.get("id") else {})},
        "outcome": "complete",
        "insurance": [{"focal": True, "coverage": _focal_coverage(claim)
                       or reference_by_identifier("Coverage", vocabulary.MEMBER_ID, c.member_id)}],
        "item": items,
        "total": [
            {"category": concept(ADJUDICATION, "submitted"), "amount": money(c.charge)},
            {"category": concept(ADJUDICATION, "benefit"), "amount": money(c.paid)},
            {"category": concept(vocabulary.ADJUDICATION, "patient-responsibility", "Patient responsibility"),
             "amount": money(c.patient_responsibility)},
        ],
        "payment": {"amount": money(c.paid)},
    }
    if not eob["identifier"]:
        del eob["identifier"]
    if c.adjustments:
        eob["adjudication"] = _adjudications(c.charge, c.paid, None, c.adjustments)[2:]
    if rem.payment_date:
        eob["payment"]["date"] = rem.payment_date
    if rem.trace_number:
        eob["payment"]["identifier"] = {"system": vocabulary.PAYMENT_TRACE, "value": rem.trace_number}
    if c.period[0]:
        eob["billablePeriod"] = {"start": c.period[0], **({"end": c.period[1]} if c.period[1] else {})}
    if notes:
        eob["processNote"] = [{"number": n, "type": "display",
                               "text": f"{code}: {describe('rarc', code) or 'remark'}"} for code, n in notes.items()]
    if c.balance_errors:
        eob["disposition"] = "Does not balance: " + "; ".join(e.message for e in c.balance_errors)
    return eob


def remittance_key(rem: Remittance) -> tuple[str, ...]:
    """The ids' key: the payment identity (TRN02, payer id), so a second delivery of the same 835
    yields the same ids whatever its envelope. A decoded X12 835 always has a TRN02; a remittance
    assembled elsewhere without one falls back to the identifiers its header was given."""
    if rem.trace_number:
        return rem.payment_identity
    return rem.header.interchange.control_number, rem.header.control_number


def remittance_to_fhir(rem: Remittance, claims: dict[str, dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """Bundle entries: one EOB per claim, the PaymentReconciliation, and an OperationOutcome when
    the remittance does not balance."""
    claims = claims or {}
    key = remittance_key(rem)
    entries = []
    details = []
    for n, c in enumerate(rem.claims):
        e = entry(claim_to_eob(rem, c, claims.get(c.patient_control_number)), *key, n, c.patient_control_number)
        entries.append(e)
        details.append({"type": concept("http://terminology.hl7.org/CodeSystem/payment-type", "payment"),
                        "identifier": {"system": vocabulary.PATIENT_CONTROL_NUMBER, "value": c.patient_control_number},
                        "response": {"reference": f"ExplanationOfBenefit/{e['resource']['id']}",
                                     "type": "ExplanationOfBenefit"},
                        "amount": money(c.paid)})
    for p in rem.provider_adjustments:
        details.append({"type": concept("http://terminology.hl7.org/CodeSystem/payment-type", "adjustment"),
                        "identifier": {"system": vocabulary.X12_PLB_REASON + "/" + p.reason, "value": p.reference or p.reason},
                        "amount": money(-p.amount)})
    pr: dict[str, Any] = {
        "resourceType": "PaymentReconciliation",
        "identifier": [{"system": vocabulary.PAYMENT_TRACE, "value": rem.trace_number}] if rem.trace_number else [],
        "status": "active",
        "created": rem.production_date or rem.payment_date or "1900-01-01",
        "paymentDate": rem.payment_date or rem.production_date or "1900-01-01",
        "paymentAmount": money(rem.total_paid if rem.credit_debit != "D" else -rem.total_paid),
        "paymentIssuer": reference_by_identifier("Organization", vocabulary.PAYER_ID, rem.payer_id or rem.trace_originator,
                                                 rem.payer_name or None),
        "outcome": "error" if rem.balance_errors else "complete",
        "detail": details,
    }
    if rem.trace_number:
        pr["paymentIdentifier"] = {"system": vocabulary.PAYMENT_TRACE, "value": rem.trace_number}
    if not pr["identifier"]:
        del pr["identifier"]
    if rem.balance_errors:
        pr["disposition"] = "Does not balance: " + "; ".join(e.message for e in rem.balance_errors)
    entries.append(entry(pr, *key, "payment"))
    if rem.balance_errors:
        entries.append(entry(operation_outcome(rem.balance_errors), *key, "balance"))
    return entries
