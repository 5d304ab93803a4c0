"""Patient statements: a FHIR ``Invoice`` and its PDF as a ``DocumentReference``.

The Invoice (status ``issued``, subject and recipient the Patient, the patient's Account, the
practice as issuer) has one ``lineItem`` per adjudicated service line whose share is due, with
the charge as the ``base`` price component, what insurance paid as a ``deduction`` (code
``insurance-paid``), each payer adjustment the patient does not owe as a ``discount`` (coded
with its group and reason, e.g. CO-45) and each patient-responsibility part as
``informational`` (PR-1, PR-2 …). The totals repeat those sums; each patient payment is a
``deduction`` (``patient-payment``) and each patient adjustment a ``discount``
(``patient-adjustment``) of ``totalPriceComponent``. ``totalNet`` is the amount due:
Σ PR − patient payments − patient adjustments, the ledger's balance.

The PDF goes inline (``attachment.data``, base64, with its SHA-1 ``hash`` and ``size``) in a
DocumentReference whose ``context.related`` names the Invoice; the Invoice names the document
in the ``statement-document`` extension. A statement's id is derived from the patient, the
statement date and the amount due, so asking again the same day for the same balance returns the
statement already made instead of a second one.
"""
from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from app.billing import pdf
from app.billing.ledger import (
    ZERO, Ledger, account_number, adjustment_concept, dec, ensure_account, ledger, money, practice_reference,
    read_patient, terms,
)
from app.fhir.queries import find_resources
from app.fhir.dates import instant
from app.fhir.search_sql import REF, R
from app.fhir.store import Reader, Unit, Version
from fhir_mappings.vocabulary import BILLING, SERVER_NAMESPACE, STATEMENT_DOCUMENT, stable_id

CPT = "http://www.ama-assn.org/go/cpt"
STATEMENT_TYPE = {"coding": [{"system": BILLING, "code": "patient-statement", "display": "Patient statement"}],
                  "text": "Patient statement"}


def _component(kind: str, amount: Decimal, code: dict[str, Any]) -> dict[str, Any]:
    return {"type": kind, "code": code, "amount": money(amount)}


def _billing(code: str, display: str) -> dict[str, Any]:
    return {"coding": [{"system": BILLING, "code": code, "display": display}], "text": display}


@dataclass(frozen=True)
class Statement:
    invoice: Version
    document: Version
    created: bool


def statement_id(patient_id: str, day: date, amount_due: Decimal) -> str:
    return stable_id(SERVER_NAMESPACE, "statement", patient_id, day.isoformat(), str(amount_due))


def patient_name(patient: dict[str, Any]) -> str:
    name = (patient.get("name") or [{}])[0]
    parts = [*(name.get("given") or []), name.get("family") or ""]
    return name.get("text") or " ".join(parts).strip() or "Patient"


def _practice(unit: Unit, patient: dict[str, Any]) -> tuple[dict[str, Any] | None, str, list[str]]:
    ref = practice_reference(unit, patient)
    org = None
    if ref:
        found = unit.current("Organization", ref["reference"].split("/", 1)[1])
        org = found.resource() if found is not None and not found.deleted else None
    contact = []
    for a in (org or {}).get("address") or []:
        contact.append(", ".join(p for p in [*(a.get("line") or []), a.get("city"), a.get("state"), a.get("postalCode")]
                                 if p))
    phones = [t.get("value") for t in (org or {}).get("telecom") or [] if t.get("system") == "phone" and t.get("value")]
    if phones:
        contact.append(f"Billing questions: {phones[0]}")
    return ref, (org or {}).get("name") or "Your therapy practice", contact[:3]


@dataclass(frozen=True)
class Notice:
    """Where this statement stands: the statement before it (its date and amount due) and the
    notice stage (``first``, or ``past-due`` when that statement's due date has passed and
    something is still owed)."""
    stage: str
    previous_date: str | None = None
    previous_due: Decimal | None = None

    @property
    def text(self) -> str:
        return terms()["notice_stages"][self.stage]


def _is_statement(inv: dict[str, Any]) -> bool:
    return any(c.get("system") == BILLING and c.get("code") == "patient-statement"
               for c in (inv.get("type") or {}).get("coding") or [])


def notice(unit: Unit, patient_id: str, day: date, balance: Decimal) -> Notice:
    """The notice stage from the patient's latest earlier statement."""
    earlier = [i for i in find_resources(unit, "Invoice", [("patient", f"Patient/{patient_id}")])
               if _is_statement(i) and i.get("status") in ("issued", "balanced") and (i.get("date") or "") < day.isoformat()]
    if not earlier:
        return Notice("first")
    last = max(earlier, key=lambda i: (i["date"], i["meta"]["lastUpdated"]))
    due = date.fromisoformat(last["date"][:10]) + timedelta(days=terms()["statement_due_days"])
    previous = dec((last.get("totalNet") or {}).get("value"))
    stage = "past-due" if due < day and balance > 0 and previous > 0 else "first"
    return Notice(stage, last["date"][:10], previous)


def invoice(led: Ledger, account: dict[str, Any], patient: dict[str, Any], issuer: dict[str, Any] | None,
            day: date, document_id: str, stage: Notice | None = None) -> dict[str, Any]:
    """The statement Invoice (see the module's docstring)."""
    due = day + timedelta(days=terms()["statement_due_days"])
    items = []
    for n, ln in enumerate(led.lines, start=1):
        components = [_component("base", ln.charge, _billing("charge", "Charge")),
                      _component("deduction", ln.insurance_paid, _billing("insurance-paid", "Insurance paid"))]
        components += [_component("discount", p.amount, adjustment_concept(p.code, p.label)) for p in ln.adjustments]
        components += [_component("informational", p.amount, adjustment_concept(p.code, p.label)) for p in ln.patient]
        concept: dict[str, Any] = {"text": f"{ln.service_date or ''} {ln.name}".strip()}
        if ln.code:
            concept["coding"] = [{"system": CPT, "code": ln.code}]
        items.append({"sequence": n, "chargeItemCodeableConcept": concept, "priceComponent": components})
    totals = [
        _component("base", sum((ln.charge for ln in led.lines), ZERO), _billing("charge", "Charges")),
        _component("deduction", sum((ln.insurance_paid for ln in led.lines), ZERO),
                   _billing("insurance-paid", "Insurance paid")),
        _component("discount", sum((ln.adjusted for ln in led.lines), ZERO),
                   _billing("payer-adjustment", "Insurance adjustments")),
        _component("informational", led.responsibility, _billing("patient-responsibility", "Your share after insurance")),
    ]
    for e in led.entries:
        if e.kind == "payment":
            totals.append(_component("deduction", e.amount, _billing("patient-payment", f"Payment {e.date}")))
        else:
            totals.append(_component("discount", e.amount, _billing("patient-adjustment", f"Account adjustment {e.date}")))
    result: dict[str, Any] = {
        "resourceType": "Invoice",
        "extension": [{"url": STATEMENT_DOCUMENT, "valueReference": {"reference": f"DocumentReference/{document_id}"}}],
        "status": "issued", "type": STATEMENT_TYPE,
        "subject": {"reference": f"Patient/{patient['id']}"},
        "recipient": {"reference": f"Patient/{patient['id']}"},
        "date": day.isoformat(),
        "account": {"reference": f"Account/{account['id']}"},
        "lineItem": items,
        "totalPriceComponent": totals,
        "totalGross": money(sum((ln.charge for ln in led.lines), ZERO)),
        "totalNet": money(led.balance),
        "paymentTerms": terms()["statement_terms"].format(days=terms()["statement_due_days"])
        + f" Due date: {due.isoformat()}.",
    }
    if issuer:
        result["issuer"] = issuer
    notes = []
    if stage is not None and stage.previous_date:
        notes.append(f"Previous statement {stage.previous_date}: amount due {stage.previous_due}.")
    if stage is not None and stage.stage != "first":
        notes.append(stage.text)
    if led.pending:
        notes.append(f"Waiting for another insurer on {led.pending_responsibility} of services; "
                     "that part is not billed yet.")
    if notes:
        result["note"] = [{"text": n} for n in notes]
    if not items:
        del result["lineItem"]
    return result


def _view(led: Ledger, patient: dict[str, Any], practice: str, contact: list[str], day: date,
          stage: Notice) -> pdf.StatementView:
    due = day + timedelta(days=terms()["statement_due_days"])
    rows = [pdf.StatementRow(ln.service_date or "", ln.name, ln.charge, ln.insurance_paid, ln.adjusted,
                             ln.responsibility) for ln in led.lines]
    payments = [(e.date, f"{(e.method or '').capitalize()} payment" if e.kind == "payment" else "Account adjustment",
                 e.amount) for e in led.entries]
    notes = []
    if stage.previous_date:
        notes.append(f"Previous statement of {stage.previous_date}: amount due ${stage.previous_due:,.2f}.")
    notes += [terms()["statement_terms"].format(days=terms()["statement_due_days"]), terms()["payment_options"],
              terms()["assistance_note"]]
    if led.pending:
        notes.append(f"Another insurer has yet to answer for ${led.pending_responsibility:,.2f}; "
                     "that part is not billed yet.")
    return pdf.StatementView(practice, contact, patient_name(patient), account_number(patient["id"]), day.isoformat(),
                             due.isoformat(), rows, payments, led.responsibility, led.payments,
                             led.patient_adjustments, led.balance, notes,
                             stage.text if stage.stage != "first" else "")


def make_statement(unit: Unit, patient_id: str, day: date | None = None) -> Statement:
    """The patient's statement for ``day`` (today by default), made once per day and amount due."""
    day = day or unit.now.date()
    unit.lock("patient-balance", patient_id)
    patient = read_patient(unit, patient_id)
    led = ledger(unit, patient_id)
    sid = statement_id(patient_id, day, led.balance)
    did = stable_id(SERVER_NAMESPACE, "statement-document", sid)
    existing, doc = unit.current("Invoice", sid), unit.current("DocumentReference", did)
    if existing is not None and not existing.deleted and doc is not None and not doc.deleted:
        return Statement(existing, doc, False)
    account = ensure_account(unit, patient)
    issuer, practice, contact = _practice(unit, patient)
    stage = notice(unit, patient_id, day, led.balance)
    body = pdf.render(_view(led, patient, practice, contact, day, stage))
    inv = invoice(led, account, patient, issuer, day, did, stage)
    document: dict[str, Any] = {
        "resourceType": "DocumentReference", "status": "current", "docStatus": "final", "type": STATEMENT_TYPE,
        "subject": {"reference": f"Patient/{patient_id}"}, "date": instant(unit.now),
        "description": f"Patient statement of {day.isoformat()}",
        "content": [{"attachment": {
            "contentType": "application/pdf", "data": base64.b64encode(body).decode(), "size": len(body),
            "hash": base64.b64encode(hashlib.sha1(body).digest()).decode(),
            "title": f"statement-{day.isoformat()}.pdf", "creation": instant(unit.now)}}],
        "context": {"related": [{"reference": f"Invoice/{sid}"}]},
    }
    if issuer:
        document["author"] = [issuer]
    written_doc = unit.update("DocumentReference", did, document, fresh_id=doc is None)
    written = unit.update("Invoice", sid, inv, fresh_id=existing is None)
    return Statement(written.version, written_doc.version, True)


def patients_with_eobs(unit: Reader) -> list[str]:
    """Every patient of the practice some posted ExplanationOfBenefit names."""
    rows = unit.conn.execute(
        sa.select(REF.c.target_id).distinct().join(R, R.c.pk == REF.c.res_pk).where(
            REF.c.tenant_id == unit.tenant_id, REF.c.type == "ExplanationOfBenefit", REF.c.param == "patient",
            REF.c.target_type == "Patient", R.c.deleted.is_(False)).order_by(REF.c.target_id)).all()
    return [r.target_id for r in rows]
