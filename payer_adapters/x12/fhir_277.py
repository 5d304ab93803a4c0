"""277 claim status records → FHIR: a ClaimResponse per claim (2200D/E) and an OperationOutcome per
level the payer refused (2200A/B/C), shaped like the 277CA's (``fhir_277ca``).

ClaimResponse: ``status`` active, ``type`` professional, ``use`` claim; ``identifier`` = REF*1K
(payer claim number) and TRN02 (``vocabulary.CLAIM_STATUS_TRACE``); ``request.identifier`` = our
patient control number (REF*EJ, else TRN02); ``outcome`` from the current status's category
(``data/stc_categories.json``: F… complete, A3/A4/A6–A8/E…/D0 error, others queued);
``disposition`` and ``processNote`` describe each status; the extension
``vocabulary.CLAIM_STATUS_LIFECYCLE`` carries where the claim stands (paid, denied, pending, …,
``data/claim_status_lifecycle.json``) and one ``vocabulary.X12_STC_STATUS`` per status its codes
and STC02 date; ``total`` = STC04 submitted / STC05 benefit; ``payment`` = STC05 with STC08 (else
STC06) and STC09 when the payer says it paid; 2220 lines become ``item[]``.

Ids derive from what identifies the answer (payer, BHT03/04, trace, claim numbers, statuses,
money), never from envelope control numbers.
"""
from __future__ import annotations

from typing import Any

import fhir_mappings.vocabulary as vocabulary
from payer_adapters.x12.codes import ADJUDICATION, table
from payer_adapters.x12.decode_277 import ClaimStatus, LineStatus277, Stc, StatusResponse277
from payer_adapters.x12.decode_277ca import LevelAck
from payer_adapters.x12.fhir_277ca import (
    level_rejection_to_fhir, line_sequences, status_concept, status_key, stc_claim_response,
)
from payer_adapters.x12.fhir_out import concept, entry, money, reference_by_identifier
from payer_adapters.x12.resources import NPI

PAYMENT_TYPE = "http://terminology.hl7.org/CodeSystem/ex-paymenttype"


def status277_to_fhir(res: StatusResponse277, claims: dict[str, dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """One ClaimResponse per claim (file order), then one OperationOutcome per refused level.
    ``claims`` (patient control number → Claim) links the answers to our Claims."""
    claims = claims or {}
    out = [entry(claim_status_to_fhir(res, c, claims.get(c.claim_key)), *claim_status_identity(res, c))
           for c in res.claims]
    out += [entry(level_rejection_to_fhir(None, lvl, transaction="277"), *level_status_identity(res, lvl))
            for lvl in res.level_rejections]
    return out


def level_status_identity(res: StatusResponse277, lvl: LevelAck) -> tuple[str, ...]:
    """A refused level: who answered, the 277's BHT03/BHT04, the level, its ids and statuses."""
    return ("277-level", res.payer_id, res.reference, res.date or "", lvl.loop, lvl.entity, lvl.id_qualifier,
            lvl.id, lvl.trace or "", *(status_key(s) for s in lvl.statuses))


def _stc_key(stc: Stc) -> str:
    money_part = "/".join("" if v is None else str(v) for v in (stc.billed, stc.paid))
    return "|".join([*(status_key(s) for s in stc.statuses), money_part, stc.adjudication_date or "",
                     stc.check_date or "", stc.check_number, stc.message])


def claim_status_identity(res: StatusResponse277, c: ClaimStatus) -> tuple[str, ...]:
    """Who answered (2100A), the 277's BHT03/BHT04, the claim's trace and numbers, and every status
    with its money: the same answer delivered again maps onto the same ClaimResponse."""
    return ("277", res.payer_id, res.reference, res.date or "", c.loop, c.trace, c.patient_control_number or "",
            c.payer_claim_number or "", c.service_start or "", c.service_end or "",
            *(_stc_key(s) for s in c.stcs),
            *(f"{ln.line_control_number}|{ln.code}|{'/'.join(_stc_key(s) for s in ln.stcs)}" for ln in c.lines))


def _outcome(c: ClaimStatus) -> str:
    return (table("stc_categories").get(c.current.category) or {}).get("outcome", "queued")


def _provider(c: ClaimStatus) -> dict[str, Any]:
    if c.provider_npi or not c.provider_id:
        return reference_by_identifier("Organization", NPI, c.provider_npi)
    system = (table("id_qualifiers").get(c.provider_qualifier) or {}).get("system")
    return reference_by_identifier("Organization", system, c.provider_id) if system else {"type": "Organization"}


def _stc_extensions(stcs: list[Stc]) -> list[dict[str, Any]]:
    out = []
    for stc in stcs:
        for s in stc.statuses:
            parts: list[dict[str, Any]] = [{"url": "status", "valueCodeableConcept": status_concept(s)}]
            if stc.effective_date:
                parts.append({"url": "effectiveDate", "valueDate": stc.effective_date})
            out.append({"url": vocabulary.X12_STC_STATUS, "extension": parts})
    return out


def _amounts(billed: Any, paid: Any) -> list[dict[str, Any]]:
    out = []
    for code, value in (("submitted", billed), ("benefit", paid)):
        if value is not None:
            out.append({"category": concept(ADJUDICATION, code), "amount": money(value)})
    return out


def _item(line: LineStatus277, seq: int) -> dict[str, Any]:
    adjudication = [{"category": status_concept(s)} for s in line.statuses]
    for a in _amounts(line.charge, line.paid):
        adjudication.append(a)
    item: dict[str, Any] = {"itemSequence": seq, "adjudication": adjudication}
    if line.line_control_number:
        item["extension"] = [{"url": vocabulary.LINE_CONTROL_NUMBER, "valueString": line.line_control_number}]
    return item


def claim_status_to_fhir(res: StatusResponse277, c: ClaimStatus, claim: dict[str, Any] | None = None) -> dict[str, Any]:
    group_date = res.header.group.date
    created = res.date or c.current.date or f"{group_date[:4]}-{group_date[4:6]}-{group_date[6:8]}"
    identifiers = [{"system": vocabulary.CLAIM_STATUS_TRACE, "value": c.trace}]
    if c.payer_claim_number:
        identifiers.insert(0, {"system": vocabulary.PAYER_CLAIM_NUMBER, "value": c.payer_claim_number})
    statuses = c.statuses
    base = stc_claim_response(claim, member_id=c.member_id, payer=(c.payer_id, c.payer_name),
                              requestor=_provider(c), control_number=c.claim_key, created=created,
                              outcome=_outcome(c), statuses=statuses, messages=[stc.message for stc in c.stcs])
    out: dict[str, Any] = {
        "resourceType": "ClaimResponse",
        "extension": [{"url": vocabulary.CLAIM_STATUS_LIFECYCLE, "valueCoding": {
            "system": vocabulary.CLAIM_STATUS_LIFECYCLE_CODES, "code": c.lifecycle}}, *_stc_extensions(c.stcs)],
        "identifier": identifiers,
        **{k: v for k, v in base.items() if k != "resourceType"},
    }
    if out["outcome"] == "error":
        out["error"] = [{"code": status_concept(s)} for s in statuses if s.rejected] or [
            {"code": status_concept(c.current)}]
    total = _amounts(c.billed, c.paid)
    if total:
        out["total"] = total
    if c.paid and (c.check_number or c.check_date or c.adjudication_date):
        payment: dict[str, Any] = {"type": concept(PAYMENT_TYPE, "complete"), "amount": money(c.paid)}
        if c.check_date or c.adjudication_date:
            payment["date"] = c.check_date or c.adjudication_date
        if c.check_number:
            payment["identifier"] = {"system": vocabulary.PAYMENT_TRACE, "value": c.check_number}
        out["payment"] = payment
    if c.lines:
        seqs = line_sequences(c, claim)
        out["item"] = [_item(line, seq) for line, seq in zip(c.lines, seqs)]
    return out
