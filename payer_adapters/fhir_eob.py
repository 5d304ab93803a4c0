"""A payer API's adjudication (a FHIR ``ClaimResponse``, outcome ``complete`` or ``partial``) as
the ``ExplanationOfBenefit`` the server keeps for every payment.

An 835 posts as ExplanationOfBenefits, and everything that reads money reads those: the claim's
paid total, A/R aging, the patient's balance and statements. A payer that answers through its
API sends a ClaimResponse instead; this turns it into the same record, so a claim a FHIR payer
paid leaves A/R and its patient responsibility reaches the statement. Adjudications are copied
as the payer sent them (the base ``adjudication`` categories, and the X12 group + CARC codings
payers use for adjustments); the item's service comes from the claim line it answers.
"""
from __future__ import annotations

from typing import Any

import fhir_mappings.vocabulary as vocabulary

ADJUDICATED = frozenset({"complete", "partial"})


def _payer_number(response: dict[str, Any]) -> str | None:
    return next((i.get("value") for i in response.get("identifier") or []
                 if i.get("system") == vocabulary.PAYER_CLAIM_NUMBER and i.get("value")), None)


def claim_response_to_eob(response: dict[str, Any], claim: dict[str, Any]) -> dict[str, Any] | None:
    """The EOB of ``response`` (the answer to ``claim``), or None when it adjudicated nothing
    (a rejection, a pended answer). Its id derives from the claim and the payer's claim number
    (else the answer's id), so the same adjudication answered again — a payer that mints a new
    resource id per ``$inquire`` — is the same EOB, never a second payment."""
    if response.get("outcome") not in ADJUDICATED or not (response.get("item") or response.get("payment")
                                                          or response.get("total")):
        return None
    lines = {int(i.get("sequence") or 0): i for i in claim.get("item") or []}
    items = []
    for n, answer in enumerate(response.get("item") or [], start=1):
        sequence = int(answer.get("itemSequence") or n)
        line = lines.get(sequence) or {}
        item: dict[str, Any] = {"sequence": sequence}
        for key in ("productOrService", "modifier", "servicedDate", "servicedPeriod", "quantity"):
            if line.get(key) is not None:
                item[key] = line[key]
        item.setdefault("productOrService", {"text": "service"})
        item["adjudication"] = list(answer.get("adjudication") or [])
        if answer.get("noteNumber"):
            item["noteNumber"] = answer["noteNumber"]
        items.append(item)
    focal = next((i for i in claim.get("insurance") or [] if i.get("focal")), None) or \
        ((claim.get("insurance") or [None])[0]) or {}
    eob: dict[str, Any] = {
        "resourceType": "ExplanationOfBenefit",
        "id": vocabulary.stable_id(vocabulary.SERVER_NAMESPACE, "eob", "claim-response", claim["id"],
                                   _payer_number(response) or str(response.get("id")), response["outcome"]),
        "status": "active",
        "type": claim.get("type") or response.get("type"),
        "use": "claim",
        "patient": claim.get("patient") or response.get("patient"),
        "created": response.get("created") or claim.get("created"),
        "insurer": claim.get("insurer") or response.get("insurer"),
        "provider": claim.get("provider"),
        "claim": {"reference": f"Claim/{claim['id']}"},
        "claimResponse": {"reference": f"ClaimResponse/{response['id']}"},
        "outcome": response["outcome"],
        "insurance": [{"focal": True, "coverage": focal.get("coverage") or {"display": "coverage"}}],
        "item": items,
    }
    for key in ("identifier", "disposition", "adjudication", "total", "payment", "processNote"):
        if response.get(key):
            eob[key] = response[key]
    if claim.get("billablePeriod"):
        eob["billablePeriod"] = claim["billablePeriod"]
    return {k: v for k, v in eob.items() if v is not None}
