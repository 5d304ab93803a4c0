"""Payments that match none of our claims: kept visible as unapplied until a person acts.

An 835 claim payment (CLP) whose patient control number names no claim of the practice is still
money received (or a denial of something billed under another system). Posting stores its
``ExplanationOfBenefit`` unlinked, marks it and its ``PaymentReconciliation.detail`` with the
``payment-application`` extension (``unapplied``) and opens a work item (``Task``, code
``payment-unapplied``) with the amount. A person then either links it to the claim it pays
(``$apply-payment``: the claim's lifecycle moves as if the 835 had named it) or returns it to
the payer (``$return-payment``); both close the work item and change the mark (``applied`` /
``returned``), so the payment never disappears from the books.
"""
from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from app.claims.lifecycle import move, paid_state_of
from app.fhir.dates import instant
from app.fhir.errors import FhirError
from app.fhir.extract import reference_target
from app.fhir.store import Unit, Version
from app.fhir.tasks import task_input, work_item
from app.payers.outcomes import put
from fhir_mappings.vocabulary import PAYMENT_APPLICATION, SERVER_NAMESPACE, stable_id

TASK_CODE = "payment-unapplied"


def application(resource: dict[str, Any]) -> str | None:
    """``unapplied``, ``applied`` or ``returned`` for a payment posted without a claim; else None."""
    return next((e.get("valueCode") for e in resource.get("extension") or [] if e.get("url") == PAYMENT_APPLICATION),
                None)


def _mark(resource: dict[str, Any], state: str) -> None:
    resource["extension"] = [e for e in resource.get("extension") or [] if e.get("url") != PAYMENT_APPLICATION] + [
        {"url": PAYMENT_APPLICATION, "valueCode": state}]


def task_id(eob_id: str) -> str:
    return stable_id(SERVER_NAMESPACE, "task", TASK_CODE, eob_id)


def mark_unapplied(eob: dict[str, Any], detail: dict[str, Any] | None) -> None:
    """Mark a payment posted without a claim (the EOB and its reconciliation detail), before storing."""
    _mark(eob, "unapplied")
    if detail is not None:
        _mark(detail, "unapplied")


def open_work_item(unit: Unit, eob: dict[str, Any], reconciliation_id: str | None, *, pcn: str, paid: Decimal,
                   payer_claim_number: str | None, trace: str | None) -> None:
    """The reconciliation work item of an unapplied payment (one per EOB; never reopened)."""
    if unit.current("Task", task_id(eob["id"])) is not None:
        return
    amount = {"value": float(paid), "currency": "USD"}
    inputs = [task_input("amount", valueMoney=amount), task_input("patient-control-number", valueString=pcn)]
    if payer_claim_number:
        inputs.append(task_input("payer-claim-number", valueString=payer_claim_number))
    if trace:
        inputs.append(task_input("trace-number", valueString=trace))
    if reconciliation_id:
        inputs.append(task_input("payment-reconciliation",
                                 valueReference={"reference": f"PaymentReconciliation/{reconciliation_id}"}))
    put(unit, work_item(
        TASK_CODE, "Unapplied payment",
        f"The payer's remittance{f' (trace {trace})' if trace else ''} pays {amount['value']:.2f} USD for patient "
        f"control number {pcn}, which matches no claim of this practice: link it to the claim it pays "
        "($apply-payment) or return it to the payer ($return-payment).", unit.now,
        task_id=task_id(eob["id"]), focus=f"ExplanationOfBenefit/{eob['id']}", business_status="unapplied",
        inputs=inputs))


def apply_payment(unit: Unit, eob_id: str, claim_ref: str) -> Version:
    """Link an unapplied payment to the claim it pays and post it there."""
    target = reference_target(claim_ref)
    if not target or target[0] != "Claim":
        raise FhirError(400, "invalid", f"claim must be a reference to a Claim (Claim/id), not {claim_ref!r}",
                        expression=["claim"])
    claim = unit.read("Claim", target[1]).resource()
    eob = _unapplied(unit, eob_id)

    def link(current: dict[str, Any]) -> bool:
        if application(current) != "unapplied":
            return False
        current["claim"] = {**(current.get("claim") or {}), "reference": f"Claim/{claim['id']}"}
        for key in ("patient", "provider"):
            if claim.get(key):
                current[key] = claim[key]
        if claim.get("insurance"):
            current["insurance"] = [{"focal": True, "coverage": claim["insurance"][0].get("coverage")}]
        _mark(current, "applied")
        return True

    written = unit.modify("ExplanationOfBenefit", eob_id, link)
    if written is None:
        raise _not_unapplied(eob_id, "it was settled meanwhile")
    move(unit, claim["id"], "accepted", paid_state_of(eob))
    _settle(unit, eob, "applied", {"type": {"text": "claim"}, "valueReference": {"reference": f"Claim/{claim['id']}"}},
            request=f"Claim/{claim['id']}")
    return written.version


def return_payment(unit: Unit, eob_id: str, reason: str | None) -> Version:
    """Record that an unapplied payment goes back to the payer (a refund or a recoupment to come)."""
    eob = _unapplied(unit, eob_id)

    def mark(current: dict[str, Any]) -> bool:
        if application(current) != "unapplied":
            return False
        _mark(current, "returned")
        return True

    written = unit.modify("ExplanationOfBenefit", eob_id, mark)
    if written is None:
        raise _not_unapplied(eob_id, "it was settled meanwhile")
    _settle(unit, eob, "returned", {"type": {"text": "reason"}, "valueString": (reason or "returned to the payer")[:1000]})
    return written.version


def _unapplied(unit: Unit, eob_id: str) -> dict[str, Any]:
    eob = unit.read("ExplanationOfBenefit", eob_id).resource()
    state = application(eob)
    if state != "unapplied":
        raise _not_unapplied(eob_id, f"it is {state}" if state else "it was posted on a claim")
    return eob


def _not_unapplied(eob_id: str, why: str) -> FhirError:
    return FhirError(409, "conflict", f"ExplanationOfBenefit/{eob_id} is not an unapplied payment: {why}",
                     expression=["ExplanationOfBenefit"])


def _settle(unit: Unit, eob: dict[str, Any], state: str, output: dict[str, Any], *, request: str | None = None) -> None:
    """Close the work item and mark the reconciliation's detail of the payment."""
    now: datetime = unit.now
    task = unit.current("Task", task_id(eob["id"]))
    reconciliation = None
    if task is not None and not task.deleted:
        refs = [i["valueReference"]["reference"] for i in task.resource().get("input") or []
                if (i.get("type") or {}).get("text") == "payment-reconciliation" and i.get("valueReference")]
        reconciliation = reference_target(refs[0]) if refs else None

        def close(current: dict[str, Any]) -> None:
            current.update(status="completed", lastModified=instant(now), businessStatus={"text": state},
                           output=[*(current.get("output") or []), output])

        unit.modify("Task", task.id, close)
    if reconciliation is None:
        return

    def settle_detail(current: dict[str, Any]) -> None:
        for detail in current.get("detail") or []:
            response = ((detail.get("response") or {}).get("reference") or "").rsplit("/", 1)[-1].rsplit(":", 1)[-1]
            if response == eob["id"] and application(detail) == "unapplied":
                _mark(detail, state)
                if request:
                    detail["request"] = {"reference": request}

    unit.modify(*reconciliation, settle_detail)
