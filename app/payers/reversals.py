"""Reversals, corrections and recoupments in an 835, and the payer's claim numbers it carries.

* A claim payment (CLP02 1/2/3/4/19/20/21) gives the claim the payer's number (CLP07), which a
  replacement or void of it must quote.
* A reversal (CLP02 ``22``, every amount negated) posts on the claim it reverses — matched by
  CLP01 and CLP07, since a correction billed under a new patient control number is reversed
  under the original's — as its own ``ExplanationOfBenefit`` with the negative payment. Its id
  derives from the original payment's, so the same reversal delivered again (in this 835 or a
  later one) overwrites itself instead of taking the money back twice. The replacement's payment
  usually follows in the same 835 and posts on the correction as any payment.
* A PLB recoupment (``data/recoupments.json``: WO overpayment recovery, FB forwarding balance)
  whose PLB03-2 names one of our claims (its payer number or patient control number) stays on
  the payment's ``PaymentReconciliation`` as a ``detail`` of type ``adjustment`` whose
  ``request`` is that Claim.

A claim's paid total (``paid_total``) is the sum of the payments of its ExplanationOfBenefits,
reversals negative: every posted payment counts once, whatever was delivered twice. PLB
recoupments are linked to the claim, not subtracted from it: the money a payer takes back for a
claim is its reversal; the PLB only says from which payment it is withheld.
"""
from __future__ import annotations

import json
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

from app.claims import corrections
from app.fhir.queries import escaped, find_resources
from app.fhir.store import Reader, Unit
from fhir_mappings.identifiers import patient_control_number
from fhir_mappings.vocabulary import PAYER_CLAIM_NUMBER, X12_835_CLAIM_STATUS, X12_CLAIM_STATUS, X12_NAMESPACE, stable_id
from payer_adapters.x12.decode_835 import ClaimPayment, Remittance

REVERSAL = "22"

Claim = dict[str, Any]


@lru_cache(maxsize=1)
def recoupment_reasons() -> frozenset[str]:
    data = json.loads((Path(__file__).parent / "data" / "recoupments.json").read_text())
    return frozenset(data["linked_to_claim"])


def is_reversal(cp: ClaimPayment) -> bool:
    return cp.status == REVERSAL


def claim_by_number(reader: Reader, number: str, pcn: str | None = None) -> Claim | None:
    """Our claim the payer numbered ``number`` (and billed under ``pcn``, when given)."""
    found = find_resources(reader, "Claim", [("identifier", f"{PAYER_CLAIM_NUMBER}|{escaped(number)}")])
    found = [c for c in found if corrections.payer_number(c) == number]
    if pcn is not None:
        found = [c for c in found if patient_control_number(c) == pcn]
    return max(found, key=lambda c: c["meta"]["lastUpdated"]) if found else None


def targets(unit: Unit, rem: Remittance, known: dict[str, Claim]) -> list[Claim | None]:
    """For each CLP, our claim it posts on: by CLP01; a reversal by CLP01 and CLP07 (the claim
    with that payer number, else the one with that patient control number)."""
    out: list[Claim | None] = []
    for cp in rem.claims:
        claim = known.get(cp.patient_control_number)
        if is_reversal(cp) and cp.payer_claim_control_number and corrections.payer_number(claim) != \
                cp.payer_claim_control_number:
            claim = claim_by_number(unit, cp.payer_claim_control_number, cp.patient_control_number) or claim
        out.append(claim)
    return out


def _status(eob: dict[str, Any]) -> str | None:
    return next((e.get("valueCoding", {}).get("code") for e in eob.get("extension") or []
                 if e.get("url") == X12_CLAIM_STATUS
                 and e.get("valueCoding", {}).get("system") == X12_835_CLAIM_STATUS), None)


def _amount(eob: dict[str, Any]) -> Decimal:
    return Decimal(str(((eob.get("payment") or {}).get("amount") or {}).get("value", 0)))


def original_payment(reader: Reader, claim_id: str, number: str) -> dict[str, Any] | None:
    """The payment (not a reversal) the payer made on ``Claim/claim_id`` under ``number``."""
    eobs = [e for e in find_resources(reader, "ExplanationOfBenefit", [("claim", f"Claim/{claim_id}")])
            if _status(e) != REVERSAL and e.get("status") == "active"
            and any(i.get("system") == PAYER_CLAIM_NUMBER and i.get("value") == number for i in e.get("identifier") or [])]
    return min(eobs, key=lambda e: e["meta"]["lastUpdated"]) if eobs else None


def prepare(unit: Unit, rem: Remittance, entries: list[dict[str, Any]], claims: list[Claim | None],
            by_pcn: Callable[[Unit, str], Claim | None]) -> None:
    """Before the 835's resources are stored: each reversal's EOB goes on the claim it reverses,
    keyed by the payment it reverses; PLB recoupments naming a claim of ours (by payer number,
    else by ``by_pcn``) are linked to it."""
    eobs = [e["resource"] for e in entries if e["resource"]["resourceType"] == "ExplanationOfBenefit"]
    recon = next((e["resource"] for e in entries if e["resource"]["resourceType"] == "PaymentReconciliation"), None)
    for n, (cp, eob, claim) in enumerate(zip(rem.claims, eobs, claims)):
        if not is_reversal(cp) or claim is None:
            continue
        eob["claim"] = {**eob["claim"], "reference": f"Claim/{claim['id']}"}
        for key in ("patient", "provider", "insurer"):
            if claim.get(key):
                eob[key] = claim[key]
        original = original_payment(unit, claim["id"], cp.payer_claim_control_number)
        if original is None:
            continue
        eob["id"] = stable_id(X12_NAMESPACE, "reversal", original["id"])
        if _amount(eob) != -_amount(original):
            eob["disposition"] = (f"Reversal of ExplanationOfBenefit/{original['id']} for {_amount(original)}; "
                                  f"the payer reversed {-_amount(eob)}")
        if recon is not None:
            recon["detail"][n]["response"] = {"reference": f"ExplanationOfBenefit/{eob['id']}",
                                              "type": "ExplanationOfBenefit"}
    if recon is not None:
        _link_recoupments(unit, rem, recon, by_pcn)


def _link_recoupments(unit: Unit, rem: Remittance, recon: dict[str, Any],
                      by_pcn: Callable[[Unit, str], Claim | None]) -> None:
    details = recon["detail"][len(rem.claims):]
    for p, detail in zip(rem.provider_adjustments, details):
        if p.reason not in recoupment_reasons() or not p.reference:
            continue
        claim = claim_by_number(unit, p.reference) or by_pcn(unit, p.reference)
        if claim is not None:
            detail["request"] = {"reference": f"Claim/{claim['id']}"}


def paid_total(reader: Reader, claim_id: str) -> Decimal:
    """What the payer has paid on ``Claim/claim_id``: the payments of its EOBs, reversals
    negative (each posted payment once: an answer delivered again overwrites itself)."""
    return sum((_amount(e) for e in find_resources(reader, "ExplanationOfBenefit", [("claim", f"Claim/{claim_id}")])
                if e.get("status") == "active"), Decimal(0))
