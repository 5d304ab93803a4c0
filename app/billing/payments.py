"""Patient payments and patient adjustments, as ``PaymentReconciliation``s.

R4 ``PaymentReconciliation.paymentIssuer`` may only be an Organization, so a patient's payment
is shaped like this (and only this shape counts in the ledger):

- the ``patient-payment`` extension, ``valueCode`` = how it was paid (``cash``, ``card``,
  ``check``, ``other``);
- one ``detail``: ``type`` ``payment`` (money received) or ``adjustment`` (a write-off or
  discount the practice grants), ``submitter`` = the Patient, ``payee`` = the practice,
  ``date``, ``amount`` (positive, at most two decimals); ``paymentAmount`` the same amount;
- optional ``paymentIdentifier.value``: the receipt, check or card reference;
- optional ``payment-credit`` extension (``true``): a payment above the balance is kept as a
  credit. Without it, paying more than is owed is refused; an adjustment never goes beyond it.

Clients create them with ``POST /fhir/PaymentReconciliation`` (checked by :func:`guard`, the
store's client-write guard for the type); the command line records them with :func:`record`.
A recorded patient payment is not changed or deleted by a client: a mistake is undone with an
adjustment, so the ledger keeps what happened.
"""
from __future__ import annotations

from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

from app.billing.ledger import (
    CENT, PAYMENT_TYPE, Ledger, dec, ensure_account, ledger, money, practice_reference, read_patient, terms,
)
from app.fhir.errors import FhirError
from app.fhir.extract import reference_target
from app.fhir.store import Reader, Unit, Version
from app.fhir.validation import check_resource
from fhir_mappings.vocabulary import PATIENT_PAYMENT, PAYMENT_CREDIT

KINDS = ("payment", "adjustment")


def is_patient_payment(resource: dict[str, Any] | None) -> bool:
    """Whether a PaymentReconciliation is a patient's (marked, or naming a Patient as submitter)."""
    if not resource:
        return False
    marked = any(e.get("url") == PATIENT_PAYMENT for e in resource.get("extension") or [])
    by_patient = any(((d.get("submitter") or {}).get("reference") or "").startswith("Patient/")
                     for d in resource.get("detail") or [])
    return marked or by_patient


def parse_amount(text: str, *, expression: str) -> Decimal:
    """A positive amount with at most two decimals (``25``, ``25.5``, ``25.00``); else a 400."""
    try:
        amount = Decimal(str(text).strip())
    except (InvalidOperation, ValueError):
        raise FhirError(400, "invalid", f"The amount must be a number like 25.00, not {text!r}",
                        expression=[expression]) from None
    if not amount.is_finite() or amount <= 0:
        raise FhirError(400, "invalid", f"The amount must be more than zero, not {text}", expression=[expression])
    if amount != amount.quantize(CENT):
        raise FhirError(400, "invalid", f"The amount has at most two decimals (cents), not {text}",
                        expression=[expression])
    return amount.quantize(CENT)


def build(patient_id: str, amount: Decimal, *, kind: str = "payment", method: str = "cash", when: date,
          reference: str | None = None, credit: bool = False, payee: dict[str, Any] | None = None,
          now: str) -> dict[str, Any]:
    """A patient payment (or adjustment) PaymentReconciliation (see the module's docstring)."""
    detail: dict[str, Any] = {
        "type": {"coding": [{"system": PAYMENT_TYPE, "code": kind}]},
        "submitter": {"reference": f"Patient/{patient_id}"},
        "date": when.isoformat(),
        "amount": money(amount),
    }
    if payee:
        detail["payee"] = payee
    resource: dict[str, Any] = {
        "resourceType": "PaymentReconciliation",
        "extension": [{"url": PATIENT_PAYMENT, "valueCode": method}],
        "status": "active", "created": now, "paymentDate": when.isoformat(), "paymentAmount": money(amount),
        "outcome": "complete",
        "disposition": "Patient payment" if kind == "payment" else "Patient account adjustment",
        "detail": [detail],
    }
    if credit:
        resource["extension"].append({"url": PAYMENT_CREDIT, "valueBoolean": True})
    if reference:
        resource["paymentIdentifier"] = {"value": reference}
    return resource


def check(reader: Reader, resource: dict[str, Any], *, server_reader: Reader) -> tuple[str, Decimal, Ledger]:
    """Check a patient payment: its shape, the patient (of this practice), the amount, and that
    it does not take the balance below zero unless it is marked as credit. Returns (patient id,
    amount, the ledger before it). Every problem is a FhirError naming the element."""
    where = "PaymentReconciliation"
    method = next((e.get("valueCode") for e in resource.get("extension") or [] if e.get("url") == PATIENT_PAYMENT), None)
    if method not in terms()["payment_methods"]:
        raise FhirError(400, "invalid", f"A patient payment carries the extension {PATIENT_PAYMENT} with how it was "
                        f"paid ({', '.join(terms()['payment_methods'])})", expression=[f"{where}.extension"])
    details = resource.get("detail") or []
    if len(details) != 1:
        raise FhirError(400, "invalid", "A patient payment has exactly one detail (the patient's payment or "
                        "adjustment)", expression=[f"{where}.detail"])
    d = details[0]
    kind = next((c.get("code") for c in (d.get("type") or {}).get("coding") or [] if c.get("system") == PAYMENT_TYPE),
                None)
    if kind not in KINDS:
        raise FhirError(400, "invalid", f"detail.type is payment or adjustment ({PAYMENT_TYPE})",
                        expression=[f"{where}.detail[0].type"])
    target = reference_target(((d.get("submitter") or {}).get("reference")) or "")
    if not target or target[0] != "Patient":
        raise FhirError(400, "invalid", "detail.submitter names the Patient who pays (Patient/id)",
                        expression=[f"{where}.detail[0].submitter"])
    read_patient(reader, target[1], expression=f"{where}.detail[0].submitter")
    raw = (d.get("amount") or {}).get("value")
    amount = parse_amount(getattr(raw, "text", None) or (repr(raw) if isinstance(raw, float) else str(raw)),
                          expression=f"{where}.detail[0].amount")
    if dec((resource.get("paymentAmount") or {}).get("value")) != amount:
        raise FhirError(400, "invalid", "paymentAmount equals the detail's amount",
                        expression=[f"{where}.paymentAmount"])
    before = ledger(server_reader, target[1])
    credit = any(e.get("url") == PAYMENT_CREDIT and e.get("valueBoolean") for e in resource.get("extension") or [])
    if amount > before.balance and not (kind == "payment" and credit):
        raise FhirError(422, "business-rule",
                        f"The {kind} of {amount} is more than the balance of {before.balance}; "
                        + ("mark it as credit (extension payment-credit) to keep the difference on account"
                           if kind == "payment" else "an adjustment cannot go beyond the balance"),
                        expression=[f"{where}.detail[0].amount"])
    return target[1], amount, before


def _server_reader(unit: Unit) -> Reader:
    """A reader on the same transaction with the server's view: the ledger always counts every
    entry, whoever asks."""
    return Reader(unit.ts.store.for_tenant(unit.tenant_id), unit.conn)


def guard(unit: Unit, incoming: dict[str, Any] | None, current: Version | None) -> dict[str, Any] | None:
    """The client-write guard of PaymentReconciliation: patient payments are checked on create
    and never changed or deleted afterwards; a payer's reconciliation is stored as written."""
    stored = current.resource() if current is not None else None
    if is_patient_payment(stored):
        raise FhirError(422, "business-rule", f"PaymentReconciliation/{stored['id']} is a recorded patient payment; "
                        "it is not changed or deleted. Record an adjustment instead.",
                        expression=["PaymentReconciliation"])
    if incoming is None or not is_patient_payment(incoming):
        return incoming
    server = _server_reader(unit)
    target = reference_target((((incoming.get("detail") or [{}])[0].get("submitter") or {}).get("reference")) or "")
    if target and target[0] == "Patient":
        unit.lock("patient-balance", target[1])  # one payment at a time per patient
    check(unit, incoming, server_reader=server)
    return incoming


def record(unit: Unit, patient_id: str, amount: Decimal, *, kind: str = "payment", method: str = "cash",
           when: date | None = None, reference: str | None = None, credit: bool = False) -> tuple[Version, Ledger]:
    """Record a patient payment (server-side: the command line). Returns it and the ledger after."""
    unit.lock("patient-balance", patient_id)
    patient = read_patient(unit, patient_id)
    resource = build(patient_id, amount, kind=kind, method=method, when=when or unit.now.date(), reference=reference,
                     credit=credit, payee=practice_reference(unit, patient),
                     now=unit.now.isoformat(timespec="seconds"))
    check_resource(resource, expected_type="PaymentReconciliation")
    check(unit, resource, server_reader=unit)
    ensure_account(unit, patient)
    written = unit.create(resource)
    return written.version, ledger(unit, patient_id)
