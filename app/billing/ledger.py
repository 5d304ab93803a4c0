"""A patient's ledger and balance, derived from what the store holds; and the patient's Account.

The balance is never stored (R4 ``Account`` has no balance element, and a stored figure could
drift from its sources). It is computed from three kinds of entries, all in the store:

- **patient responsibility**: the ``PR`` adjustments (group code ``PR``: deductible PR-1,
  coinsurance PR-2, copay PR-3, non-covered PR-96 …) of the posted ``ExplanationOfBenefit``s of
  the patient's claims, line by line (and claim-level ``PR`` adjustments where the payer gave
  no lines). A reversal's negative amounts net out by themselves;
- **patient payments** and **patient adjustments** (write-offs, courtesy discounts): the
  ``PaymentReconciliation``s marked with the ``patient-payment`` extension whose
  ``detail.submitter`` is the patient (``detail.type`` ``payment`` or ``adjustment``).

``balance = Σ due PR − Σ patient payments − Σ patient adjustments``. A negative balance is a
credit. Only what every payer has finished with is due: a claim whose ``Claim.insurance`` lists
a payer after its focal one waits for that payer (its PR is *pending*), until a claim for that
later coverage (naming it in ``related`` or billing the same visit) has an EOB; from then on the
later claim's PR is what the patient owes, and the earlier claim's PR is left out (superseded).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any

from app.fhir.errors import FhirError
from app.fhir.exact_json import ExactNumber
from app.fhir.extract import reference_target
from app.fhir.queries import find_resources
from app.fhir.store import Reader, Unit
from fhir_mappings.vocabulary import (
    PATIENT_ACCOUNT, PATIENT_PAYMENT, PAYMENT_APPLICATION, SERVER_NAMESPACE, stable_id,
)
from payer_adapters.x12.codes import ADJUDICATION, CARC_SYSTEM, GROUP_SYSTEM

CENT = Decimal("0.01")
ZERO = Decimal("0.00")
PAYMENT_TYPE = "http://terminology.hl7.org/CodeSystem/payment-type"
ACCOUNT_TYPE = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "PBILLACCT",
                            "display": "patient billing account"}]}


@lru_cache(maxsize=1)
def terms() -> dict[str, Any]:
    """The billing data file (service names, wording, statement terms)."""
    return json.loads((Path(__file__).parent / "data" / "billing.json").read_text())


def dec(value: Any) -> Decimal:
    """An exact Decimal of a JSON number (as stored: a float whose text is exact to the cent, or
    an ``ExactNumber`` keeping the text it was sent with)."""
    if value is None:
        return ZERO
    text = getattr(value, "text", None) or (repr(value) if isinstance(value, float) else str(value))
    return Decimal(text)


def money(amount: Decimal) -> dict[str, Any]:
    """A Money element whose value is written with exactly two decimals (``25.00``)."""
    return {"value": ExactNumber(str(amount.quantize(CENT, ROUND_HALF_UP))), "currency": terms()["currency"]}


def service_name(code: str | None) -> str:
    """Our plain-language name for a billed code (never the code set's licensed descriptor)."""
    return terms()["service_names"].get(code or "", terms()["default_service_name"])


@dataclass(frozen=True)
class Part:
    """One adjustment: group and reason (``PR``, ``1``), its amount and what a statement calls it."""
    group: str
    reason: str
    amount: Decimal
    label: str

    @property
    def code(self) -> str:
        return f"{self.group}-{self.reason}"


@dataclass(frozen=True)
class Line:
    """One adjudicated service line of one of the patient's claims."""
    claim_id: str
    eob_id: str
    sequence: int
    service_date: str | None
    code: str | None
    charge: Decimal
    insurance_paid: Decimal
    adjustments: tuple[Part, ...]  # what the payer took off that the patient does not owe (CO, OA, PI, CR)
    patient: tuple[Part, ...]  # the patient responsibility (PR)

    @property
    def name(self) -> str:
        return service_name(self.code)

    @property
    def adjusted(self) -> Decimal:
        return sum((p.amount for p in self.adjustments), ZERO)

    @property
    def responsibility(self) -> Decimal:
        return sum((p.amount for p in self.patient), ZERO)


@dataclass(frozen=True)
class Entry:
    """A patient payment or patient adjustment (a marked PaymentReconciliation)."""
    reconciliation_id: str
    kind: str  # payment | adjustment
    date: str
    amount: Decimal
    method: str | None
    reference: str | None


@dataclass
class Ledger:
    patient_id: str
    account_id: str
    lines: list[Line] = field(default_factory=list)  # due: every payer is done with them
    pending: list[Line] = field(default_factory=list)  # waiting for a later payer
    entries: list[Entry] = field(default_factory=list)

    @property
    def responsibility(self) -> Decimal:
        return sum((ln.responsibility for ln in self.lines), ZERO)

    @property
    def pending_responsibility(self) -> Decimal:
        return sum((ln.responsibility for ln in self.pending), ZERO)

    @property
    def payments(self) -> Decimal:
        return sum((e.amount for e in self.entries if e.kind == "payment"), ZERO)

    @property
    def patient_adjustments(self) -> Decimal:
        return sum((e.amount for e in self.entries if e.kind == "adjustment"), ZERO)

    @property
    def balance(self) -> Decimal:
        return (self.responsibility - self.payments - self.patient_adjustments).quantize(CENT)


def account_id(patient_id: str) -> str:
    """The stable id of the patient's Account (one per patient in a practice)."""
    return stable_id(SERVER_NAMESPACE, "account", patient_id)


def account_number(patient_id: str) -> str:
    """The account number printed on statements: short, stable, no PHI."""
    return account_id(patient_id).replace("-", "")[:10].upper()


def read_patient(reader: Reader, patient_id: str, *, expression: str = "Patient") -> dict[str, Any]:
    """The patient (404 OperationOutcome when this practice has no such patient)."""
    found = reader.current("Patient", patient_id)
    if found is None or found.deleted or not reader.visible("r", "Patient", patient_id):
        raise FhirError(404, "not-found", f"Patient/{patient_id} is not a patient of this practice",
                        expression=[expression])
    return found.resource()


def practice_reference(reader: Reader, patient: dict[str, Any]) -> dict[str, Any] | None:
    """The practice: the patient's managing organization, else the billing provider of their claims."""
    if (patient.get("managingOrganization") or {}).get("reference"):
        return {"reference": patient["managingOrganization"]["reference"]}
    for claim in find_resources(reader, "Claim", [("patient", f"Patient/{patient['id']}")]):
        ref = (claim.get("provider") or {}).get("reference")
        if ref and ref.startswith("Organization/"):
            return {"reference": ref}
    return None


def ensure_account(unit: Unit, patient: dict[str, Any]) -> dict[str, Any]:
    """The patient's Account, created on first need with its stable id (never rewritten here:
    a biller may keep it, e.g. put it on hold)."""
    aid = account_id(patient["id"])
    current = unit.current("Account", aid)
    if current is not None and not current.deleted:
        return current.resource()
    account: dict[str, Any] = {
        "resourceType": "Account", "id": aid, "status": "active", "type": ACCOUNT_TYPE,
        "identifier": [{"system": PATIENT_ACCOUNT, "value": account_number(patient["id"])}],
        "name": "Patient account",
        "subject": [{"reference": f"Patient/{patient['id']}"}],
        "guarantor": [{"party": {"reference": f"Patient/{patient['id']}"}, "onHold": False}],
        "description": "What the patient owes after insurance; the balance is derived from the ledger "
                       "(Patient/$balance), never stored.",
    }
    owner = practice_reference(unit, patient)
    if owner:
        account["owner"] = owner
    return unit.update("Account", aid, account, fresh_id=current is None).version.resource()


def _code(concept: dict[str, Any] | None, system: str) -> str | None:
    return next((c.get("code") for c in (concept or {}).get("coding") or [] if c.get("system") == system), None)


def _parts(adjudications: list[dict[str, Any]]) -> tuple[list[Part], list[Part], Decimal, Decimal]:
    """(payer adjustments, PR parts, charge, paid) of an adjudication list."""
    names, groups = terms()["patient_responsibility_names"], terms()["adjustment_group_names"]
    adjustments, patient = [], []
    charge = paid = ZERO
    for a in adjudications:
        category = a.get("category")
        amount = dec((a.get("amount") or {}).get("value"))
        group = _code(category, GROUP_SYSTEM)
        if group is None:
            kind = _code(category, ADJUDICATION)
            if kind == "submitted":
                charge = amount
            elif kind == "benefit":
                paid = amount
            continue
        reason = _code(a.get("reason"), CARC_SYSTEM) or ""
        if group == "PR":
            patient.append(Part(group, reason, amount, names.get(reason, terms()["default_patient_responsibility_name"])))
        else:
            adjustments.append(Part(group, reason, amount, groups.get(group, "Adjustment")))
    return adjustments, patient, charge, paid


def adjustment_concept(code: str, label: str) -> dict[str, Any]:
    """``PR-2`` as a CodeableConcept: the group and reason codes, and the statement's wording."""
    group, _, reason = code.partition("-")
    return {"coding": [{"system": GROUP_SYSTEM, "code": group}, {"system": CARC_SYSTEM, "code": reason}],
            "text": f"{label} ({code})"}


def eob_lines(eob: dict[str, Any], claim_id: str) -> list[Line]:
    """The lines of one EOB: one per item, plus one for claim-level adjustments when there are."""
    lines = []
    default_date = (eob.get("billablePeriod") or {}).get("start")
    for item in eob.get("item") or []:
        adjustments, patient, charge, paid = _parts(item.get("adjudication") or [])
        lines.append(Line(claim_id, eob["id"], int(item.get("sequence") or 0),
                          item.get("servicedDate") or (item.get("servicedPeriod") or {}).get("start") or default_date,
                          next((c.get("code") for c in (item.get("productOrService") or {}).get("coding") or []), None),
                          charge, paid, tuple(adjustments), tuple(patient)))
    adjustments, patient, _, _ = _parts(eob.get("adjudication") or [])
    if adjustments or patient:
        lines.append(Line(claim_id, eob["id"], 0, default_date, None, ZERO, ZERO, tuple(adjustments), tuple(patient)))
    return lines


def _settled(eob: dict[str, Any]) -> bool:
    """An EOB posted on a claim of ours (not an unapplied or returned payment, not in error)."""
    if eob.get("status") == "entered-in-error":
        return False
    marks = [e.get("valueCode") for e in eob.get("extension") or [] if e.get("url") == PAYMENT_APPLICATION]
    return not marks or marks[-1] == "applied"


def _claim_id(eob: dict[str, Any]) -> str | None:
    target = reference_target(((eob.get("claim") or {}).get("reference")) or "")
    return target[1] if target and target[0] == "Claim" else None


def _later_coverage(claim: dict[str, Any]) -> str | None:
    """The coverage of the next payer after this claim's focal one (``Claim.insurance`` order)."""
    insurance = sorted(claim.get("insurance") or [], key=lambda i: i.get("sequence") or 0)
    focal = next((n for n, i in enumerate(insurance) if i.get("focal")), None)
    if focal is None or focal + 1 >= len(insurance):
        return None
    return ((insurance[focal + 1].get("coverage")) or {}).get("reference")


def _focal_coverage(claim: dict[str, Any]) -> str | None:
    return next(((i.get("coverage") or {}).get("reference") for i in claim.get("insurance") or [] if i.get("focal")),
                None)


def _encounters(claim: dict[str, Any]) -> set[str]:
    return {e.get("reference") for item in claim.get("item") or [] for e in item.get("encounter") or []
            if e.get("reference")}


def _follows(later: dict[str, Any], earlier: dict[str, Any]) -> bool:
    """Whether ``later`` bills the same service after ``earlier`` (names it, or the same visit)."""
    named = any(((r.get("claim") or {}).get("reference")) == f"Claim/{earlier['id']}" for r in later.get("related") or [])
    return named or bool(_encounters(later) & _encounters(earlier))


def entries(reader: Reader, patient_id: str) -> list[Entry]:
    """The patient's payments and adjustments, oldest first."""
    out = []
    for pr in find_resources(reader, "PaymentReconciliation", [("submitter", f"Patient/{patient_id}")]):
        method = next((e.get("valueCode") for e in pr.get("extension") or [] if e.get("url") == PATIENT_PAYMENT), None)
        if method is None or pr.get("status") != "active":
            continue
        for d in pr.get("detail") or []:
            if ((d.get("submitter") or {}).get("reference")) != f"Patient/{patient_id}":
                continue
            kind = _code(d.get("type"), PAYMENT_TYPE) or "payment"
            out.append(Entry(pr["id"], kind, d.get("date") or pr.get("paymentDate") or "",
                             dec((d.get("amount") or {}).get("value")), method,
                             (pr.get("paymentIdentifier") or {}).get("value")))
    return sorted(out, key=lambda e: (e.date, e.reconciliation_id))


def ledger(reader: Reader, patient_id: str) -> Ledger:
    """The patient's ledger as the store holds it now (read with the server's view)."""
    result = Ledger(patient_id, account_id(patient_id))
    claims = {c["id"]: c for c in find_resources(reader, "Claim", [("patient", f"Patient/{patient_id}")])
              if c.get("status") != "entered-in-error"}
    by_claim: dict[str, list[dict[str, Any]]] = {}
    for eob in find_resources(reader, "ExplanationOfBenefit", [("patient", f"Patient/{patient_id}")]):
        cid = _claim_id(eob)
        if cid in claims and _settled(eob):
            by_claim.setdefault(cid, []).append(eob)
    for cid in sorted(by_claim, key=lambda c: (claims[c].get("created") or "", c)):
        claim = claims[cid]
        later = _later_coverage(claim)
        lines = [ln for eob in sorted(by_claim[cid], key=lambda e: (e.get("created") or "", e["id"]))
                 for ln in eob_lines(eob, cid)]
        if later is None:
            result.lines.extend(lines)
            continue
        followers = [c for c in claims.values() if c["id"] != cid and _focal_coverage(c) == later and _follows(c, claim)]
        if not any(f["id"] in by_claim for f in followers):
            result.pending.extend(lines)  # the next payer has not answered yet
        # else: superseded; the later claim's lines say what the patient owes
    result.entries = entries(reader, patient_id)
    return result


def balance_parameters(ledger_: Ledger, account: dict[str, Any], today: date) -> dict[str, Any]:
    """The ``$balance`` answer: the balance and how it is made up."""
    by_reason: dict[str, Decimal] = {}
    labels: dict[str, str] = {}
    for ln in ledger_.lines:
        for p in ln.patient:
            by_reason[p.code] = by_reason.get(p.code, ZERO) + p.amount
            labels[p.code] = p.label
    params: list[dict[str, Any]] = [
        {"name": "account", "valueReference": {"reference": f"Account/{account['id']}"}},
        {"name": "date", "valueDate": today.isoformat()},
        {"name": "balance", "valueMoney": money(ledger_.balance)},
        {"name": "patientResponsibility", "valueMoney": money(ledger_.responsibility)},
        {"name": "patientPayments", "valueMoney": money(ledger_.payments)},
        {"name": "patientAdjustments", "valueMoney": money(ledger_.patient_adjustments)},
        {"name": "pendingOtherPayers", "valueMoney": money(ledger_.pending_responsibility)},
    ]
    for code in sorted(by_reason):
        params.append({"name": "responsibility", "part": [
            {"name": "reason", "valueCodeableConcept": adjustment_concept(code, labels[code])},
            {"name": "amount", "valueMoney": money(by_reason[code])}]})
    return {"resourceType": "Parameters", "parameter": params}
