"""Coordination of benefits: a prior payer's adjudication as a FHIR R4 ClaimResponse, and read
back from one for the next payer's claim.

A secondary (tertiary) Claim lists every payer in ``Claim.insurance`` by ``sequence``; the
entries before the focal one carry ``claimResponse``, the prior payer's adjudication built from
its 835 by :func:`payment_to_claim_response`. The 837P encoder (loops 2320/2330A/2330B/2430),
the CHC v3 JSON adapter (``otherSubscriberInformation``, ``lineAdjudicationInformation``) and
the sandbox read those facts through :func:`prior_payers`, so every form carries the same
numbers.

R4 has no element for the X12 CAS group code (CO, PR, OA, PI, CR): an adjustment's
``category`` is the group code (``GROUP_SYSTEM``, as on our ExplanationOfBenefits) and the
extension ``X12_ADJUSTMENT_GROUP`` says the same in one place readers can rely on; its
``reason`` is the CARC.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Mapping

import fhir_mappings.identifiers as ids
import fhir_mappings.vocabulary as vocabulary
import payer_adapters.x12.resources as R
from payer_adapters.x12.codes import ADJUDICATION, CARC_SYSTEM, GROUP_SYSTEM, describe
from payer_adapters.x12.decode_835 import Adjustment, ClaimPayment, Remittance
from payer_adapters.x12.errors import EncodeError
from payer_adapters.x12.fhir_835 import match_lines
from payer_adapters.x12.fhir_out import coding, concept, money

_Z = Decimal(0)
PAYMENT_TYPE = "http://terminology.hl7.org/CodeSystem/ex-paymenttype"


def _adjustment(a: Adjustment) -> dict[str, Any]:
    out: dict[str, Any] = {
        "extension": [{"url": vocabulary.X12_ADJUSTMENT_GROUP, "valueCode": a.group}],
        "category": concept(GROUP_SYSTEM, a.group, describe("adjustment_groups", a.group)),
        "reason": concept(CARC_SYSTEM, a.reason, describe("carc", a.reason)),
        "amount": money(a.amount),
    }
    if a.quantity is not None:
        out["value"] = float(a.quantity)
    return out


def payment_to_claim_response(rem: Remittance, cp: ClaimPayment, claim: Mapping[str, Any], *,
                              response_id: str) -> dict[str, Any]:
    """The payer's adjudication of ``claim`` in one 835 CLP as a ClaimResponse: per line the
    charge (``submitted``), the payment (``benefit``), the allowed amount (``eligible``) when
    given and each CAS adjustment; claim-level CAS in ``adjudication``; ``total`` with the
    patient's responsibility (CLP05); ``payment`` with the amount and the remittance date."""
    items = []
    for s, seq in zip(cp.services, match_lines(cp, dict(claim))):
        if seq is None:
            continue
        adjudication = [{"category": concept(ADJUDICATION, "submitted"), "amount": money(s.charge)},
                        {"category": concept(ADJUDICATION, "benefit"), "amount": money(s.paid)}]
        if s.allowed is not None:
            adjudication.append({"category": concept(ADJUDICATION, "eligible"), "amount": money(s.allowed)})
        adjudication += [_adjustment(a) for a in s.adjustments]
        items.append({"itemSequence": seq, "adjudication": adjudication})
    paid_on = rem.payment_date or rem.production_date
    response: dict[str, Any] = {
        "resourceType": "ClaimResponse", "id": response_id,
        "extension": [{"url": vocabulary.X12_CLAIM_STATUS, "valueCoding": coding(
            vocabulary.X12_835_CLAIM_STATUS, cp.status, describe("claim_status_835", cp.status))}],
        "status": "active", "type": claim.get("type") or concept(
            "http://terminology.hl7.org/CodeSystem/claim-type", "professional"),
        "use": "claim", "patient": claim.get("patient"), "created": paid_on or "1900-01-01",
        "insurer": claim.get("insurer"), "request": {"reference": f"Claim/{claim['id']}"},
        "outcome": "complete", "disposition": f"Adjudicated (835 CLP02 {cp.status})",
        "item": items,
        "total": [{"category": concept(ADJUDICATION, "submitted"), "amount": money(cp.charge)},
                  {"category": concept(ADJUDICATION, "benefit"), "amount": money(cp.paid)},
                  {"category": concept(vocabulary.ADJUDICATION, "patient-responsibility", "Patient responsibility"),
                   "amount": money(cp.patient_responsibility)}],
        "payment": {"type": concept(PAYMENT_TYPE, "complete"), "amount": money(cp.paid)},
    }
    if cp.payer_claim_control_number:
        response["identifier"] = [{"system": vocabulary.PAYER_CLAIM_NUMBER, "value": cp.payer_claim_control_number}]
    if cp.adjustments:
        response["adjudication"] = [_adjustment(a) for a in cp.adjustments]
    if paid_on:
        response["payment"]["date"] = paid_on
    if rem.trace_number:
        response["payment"]["identifier"] = {"system": vocabulary.PAYMENT_TRACE, "value": rem.trace_number}
    remarks = list(dict.fromkeys([*cp.remarks, *[r for s in cp.services for r in s.remarks]]))
    if remarks:
        response["processNote"] = [{"number": n, "type": "display", "text": f"{code}: {describe('rarc', code) or 'remark'}"}
                                   for n, code in enumerate(remarks, start=1)]
    return response


@dataclass
class PriorAdjustment:
    group: str
    reason: str
    amount: Decimal
    quantity: Decimal | None = None


@dataclass
class PriorLine:
    """One line as a prior payer adjudicated it (an 835 SVC → 837P 2430)."""

    paid: Decimal
    adjustments: list[PriorAdjustment] = field(default_factory=list)


@dataclass
class PriorPayer:
    """A payer before the focal one on a Claim (``Claim.insurance`` with a lower sequence) and
    what it decided (its ``claimResponse``): the facts of one 837P loop 2320."""

    sequence: int
    insurance: Mapping[str, Any]
    coverage: R.Resource
    payer: R.Resource | None
    payer_id: str
    payer_name: str
    response: R.Resource
    claim_number: str | None
    paid: Decimal
    patient_liability: Decimal
    date: str | None  # YYYY-MM-DD: the payer's adjudication (remittance) date
    adjustments: list[PriorAdjustment] = field(default_factory=list)  # claim level
    lines: dict[int, PriorLine] = field(default_factory=dict)  # by Claim.item.sequence


def _amount(a: Mapping[str, Any] | None) -> Decimal:
    return R.decimal(((a or {}).get("amount") or {}).get("value", 0))


def _group(adj: Mapping[str, Any]) -> str | None:
    found = R.extension(adj, vocabulary.X12_ADJUSTMENT_GROUP)
    return found or R.code(adj.get("category"), GROUP_SYSTEM)


def _adjustments(adjudications: list[Mapping[str, Any]]) -> list[PriorAdjustment]:
    out = []
    for a in adjudications:
        group = _group(a)
        if not group:
            continue
        reason = R.code(a.get("reason"), CARC_SYSTEM) or R.code(a.get("reason")) or ""
        qty = a.get("value")
        out.append(PriorAdjustment(group, reason, _amount(a), R.decimal(qty) if qty is not None else None))
    return out


def _category_total(adjudications: list[Mapping[str, Any]], code: str) -> Decimal | None:
    found = [a for a in adjudications if code in R.codes(a.get("category"))]
    return sum((_amount(a) for a in found), _Z) if found else None


def patient_liability(response: Mapping[str, Any]) -> Decimal:
    """What a payer's adjudication leaves the patient: its ``patient-responsibility`` total (an
    835's CLP05), else the sum of its ``PR`` adjustments, claim level and per line."""
    stated = _category_total(response.get("total") or [], "patient-responsibility")
    if stated is not None:
        return stated
    adjudications = [*(response.get("adjudication") or []),
                     *(a for item in response.get("item") or [] for a in item.get("adjudication") or [])]
    return sum((a.amount for a in _adjustments(adjudications) if a.group == "PR"), _Z)


def prior_payers(claim: Mapping[str, Any], idx: R.ResourceIndex) -> list[PriorPayer]:
    """The payers before the focal insurance of ``claim``, in sequence order, read from their
    ClaimResponses (which must be in ``idx``). Empty for a claim to its primary payer."""
    insurances = claim.get("insurance") or []
    focal = next((i for i in insurances if i.get("focal")), None)
    if focal is None:
        return []
    out = []
    for ins in sorted(insurances, key=lambda i: int(i.get("sequence", 0))):
        if ins is focal or int(ins.get("sequence", 0)) >= int(focal.get("sequence", 1)):
            continue
        if not ins.get("claimResponse"):
            raise EncodeError(f"Claim.insurance sequence {ins.get('sequence')} (a prior payer) has no claimResponse",
                                loop_id="2320", segment_id="SBR")
        response = idx.get(ins.get("claimResponse"), what="Claim.insurance.claimResponse ClaimResponse")
        coverage = idx.get(ins.get("coverage"), what="Claim.insurance.coverage Coverage")
        payer = idx.get(response.get("insurer"), what="ClaimResponse.insurer", required=False) \
            or idx.get(((coverage.get("payor") or [None])[0]), what="Coverage.payor", required=False)
        payer_id = ids.payer_id(payer, response.get("insurer")) or ""
        if not payer_id:
            raise EncodeError(f"prior payer (insurance sequence {ins.get('sequence')}) has no payer id",
                                loop_id="2330B", segment_id="NM1", element_position=9)
        claim_level = response.get("adjudication") or []
        lines = {int(item["itemSequence"]): PriorLine(_category_total(item.get("adjudication") or [], "benefit") or _Z,
                                                      _adjustments(item.get("adjudication") or []))
                 for item in response.get("item") or [] if item.get("itemSequence") is not None}
        adjustments = _adjustments(claim_level)
        paid_total = _amount(response.get("payment")) if response.get("payment") else \
            (_category_total(response.get("total") or [], "benefit") or _Z)
        liability = patient_liability(response)
        out.append(PriorPayer(
            sequence=int(ins.get("sequence", 0)), insurance=ins, coverage=coverage, payer=payer, payer_id=payer_id,
            payer_name=str((payer or {}).get("name") or (response.get("insurer") or {}).get("display") or payer_id),
            response=response, claim_number=R.identifier(response, vocabulary.PAYER_CLAIM_NUMBER),
            paid=paid_total, patient_liability=liability,
            date=((response.get("payment") or {}).get("date") or response.get("created") or "")[:10] or None,
            adjustments=adjustments, lines=lines))
    return out
