"""What a visit will likely cost the patient, before it happens (``Encounter/$estimate``).

From the newest complete ``CoverageEligibilityResponse`` for the patient's primary coverage
(the 271's copay, coinsurance percent, remaining deductible and remaining out-of-pocket, as
``payer_adapters/x12/fhir_271.py`` stores them) and the practice's prices for the planned codes:

- the basis is the amount the payer is expected to allow for each code on the visit's day (the
  practice's fee schedule: the payer's contracted amount, else its expected allowed estimate,
  else the fee itself), times the units;
- the deductible takes the basis first, up to what remains of it; coinsurance is the percent of
  the rest (rounded to the cent, half up); the copay is added once per visit; the sum is capped
  by the basis and by the remaining out-of-pocket maximum;
- a service the 271 says is not covered (or coverage not in force) is the patient's in full.

The answer is a ``Parameters`` with the expected patient amount, its parts, the lines, and the
CoverageEligibilityResponse it came from. It is an estimate: the payer's adjudication decides.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from app.billing.ledger import CENT, ZERO, dec, money, service_name, terms
from app.claims.gather import fee_schedule
from app.fhir.errors import FhirError
from app.fhir.extract import reference_target
from app.fhir.queries import find_resources
from app.fhir.store import Reader
from fhir_mappings.charges import ChargeMaster
from fhir_mappings.vocabulary import BENEFIT_TYPE as OUR_BENEFIT_TYPE
from payer_adapters.x12.codes import BENEFIT_TYPE, SERVICE_TYPE_SYSTEM

CPT = "http://www.ama-assn.org/go/cpt"


@dataclass(frozen=True)
class Price:
    charge: Decimal  # the practice's fee
    allowed: Decimal  # what the payer is expected to allow


def price(reader: Reader, code: str, *, on: date, payer: str | None) -> Price | None:
    """The practice's price for a code on the day of the visit: its fee schedule
    (ChargeItemDefinitions) gives the fee and the amount ``payer`` is expected to allow (the
    contracted amount, else the schedule's estimate, else the fee); None when no fee is in force."""
    schedule = ChargeMaster.from_definitions(fee_schedule(reader, [code]))
    fee = schedule.fee(code, on=on)
    if fee is None:
        return None
    return Price(fee, schedule.allowed_estimate(code, on=on, payer=payer))


def parse_codes(text: str) -> list[tuple[str, int]]:
    """``97110*2,97530`` → [(97110, 2), (97530, 1)]; a 400 naming ``code`` when unreadable."""
    out = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        code, _, units = part.partition("*")
        if not code.strip().isalnum() or (units and not (units.isdigit() and 0 < int(units) <= 99)):
            raise FhirError(400, "invalid", f"code is a list of billing codes with optional units (97110*2,97530), "
                            f"not {part!r}", expression=["code"])
        out.append((code.strip().upper(), int(units) if units else 1))
    return out


def _planned_codes(reader: Reader, encounter_id: str) -> list[tuple[str, int]]:
    """The codes of the visit's Procedures (one unit each) when the request names none."""
    codes = []
    for proc in find_resources(reader, "Procedure", [("encounter", f"Encounter/{encounter_id}")]):
        code = next((c.get("code") for c in (proc.get("code") or {}).get("coding") or [] if c.get("system") == CPT), None)
        if code:
            codes.append((code, 1))
    return codes


def _coverage(reader: Reader, patient_id: str) -> dict[str, Any] | None:
    found = [c for c in find_resources(reader, "Coverage", [("patient", f"Patient/{patient_id}")])
             if c.get("status") == "active"]
    return min(found, key=lambda c: (c.get("order") or 1, c["id"])) if found else None


def _answers_for(response: dict[str, Any], coverage: dict[str, Any] | None) -> bool:
    """Whether an eligibility answer is about ``coverage`` (by reference or by member id)."""
    if coverage is None:
        return True
    for ins in response.get("insurance") or []:
        ref = ins.get("coverage") or {}
        if ref.get("reference") == f"Coverage/{coverage['id']}":
            return True
        if (ref.get("identifier") or {}).get("value") and ref["identifier"]["value"] == coverage.get("subscriberId"):
            return True
    return False


def latest_answer(reader: Reader, patient_id: str, coverage: dict[str, Any] | None) -> dict[str, Any] | None:
    answers = [r for r in find_resources(reader, "CoverageEligibilityResponse", [("patient", f"Patient/{patient_id}")])
               if r.get("outcome") in ("complete", "partial") and _answers_for(r, coverage)]
    return max(answers, key=lambda r: (r.get("created") or "", r["meta"]["lastUpdated"])) if answers else None


def _items(response: dict[str, Any], discipline: str) -> tuple[list[dict[str, Any]], bool]:
    """(the benefit items that apply, best first: the discipline's service type, then the general
    ones — a 271 often gives the deductible at plan level and the coinsurance per service type —
    in network before out; whether coverage is in force)."""
    insurance = (response.get("insurance") or [{}])[0]
    wanted = [terms()["discipline_service_types"].get(discipline, "AD"), *terms()["general_service_types"]]

    def rank(item: dict[str, Any]) -> tuple[int, int]:
        code = next((c.get("code") for c in (item.get("category") or {}).get("coding") or []
                     if c.get("system") == SERVICE_TYPE_SYSTEM), None)
        network = next((c.get("code") for c in (item.get("network") or {}).get("coding") or []), None)
        return (wanted.index(code) if code in wanted else len(wanted), 0 if network in (None, "in") else 1)

    return sorted(insurance.get("item") or [], key=rank), insurance.get("inforce") is not False


def _benefit(items: list[dict[str, Any]], system: str, code: str) -> dict[str, Any] | None:
    """The first benefit of that type among ``items`` (best first)."""
    return next((b for item in items for b in item.get("benefit") or []
                 if any(c.get("system") == system and c.get("code") == code
                        for c in (b.get("type") or {}).get("coding") or [])), None)


def _amount(benefit: dict[str, Any] | None, key: str = "allowedMoney") -> Decimal | None:
    if benefit is None or benefit.get(key) is None:
        return None
    return dec(benefit[key].get("value"))


def _percent(benefit: dict[str, Any] | None) -> Decimal | None:
    if benefit is None:
        return None
    if benefit.get("allowedUnsignedInt") is not None:
        return Decimal(benefit["allowedUnsignedInt"])
    if benefit.get("allowedString"):
        return Decimal(benefit["allowedString"].rstrip("%").strip())
    return None


def _visit_day(encounter: dict[str, Any]) -> date:
    """The day the visit is (or was) planned for: its period's start, else today."""
    start = ((encounter.get("period") or {}).get("start") or "")[:10]
    try:
        return date.fromisoformat(start)
    except ValueError:
        return date.today()


def estimate(reader: Reader, encounter_id: str, *, codes: list[tuple[str, int]] | None,
             discipline: str | None) -> dict[str, Any]:
    """The estimate Parameters (see the module's docstring)."""
    encounter = reader.read("Encounter", encounter_id).resource()
    target = reference_target(((encounter.get("subject") or {}).get("reference")) or "")
    if not target or target[0] != "Patient":
        raise FhirError(422, "business-rule", "The Encounter names no patient", expression=["Encounter.subject"])
    patient_id = target[1]
    codes = codes or _planned_codes(reader, encounter_id)
    if not codes:
        raise FhirError(400, "required", "Name the planned codes (code=97110*2,97530): the visit has none yet",
                        expression=["code"])
    coverage = _coverage(reader, patient_id)
    answer = latest_answer(reader, patient_id, coverage)
    if answer is None:
        raise FhirError(422, "not-found", f"No eligibility answer for Patient/{patient_id}"
                        + (f"'s Coverage/{coverage['id']}" if coverage else "")
                        + ": ask the payer first (Coverage/{id}/$eligibility-request, then "
                          "CoverageEligibilityRequest/{id}/$submit)", expression=["Encounter.subject"])
    day = _visit_day(encounter)
    payer = ((coverage or {}).get("payor") or [{}])[0].get("reference")
    lines, charge, basis = [], ZERO, ZERO
    for code, units in codes:
        p = price(reader, code, on=day, payer=payer)
        if p is None:
            raise FhirError(422, "not-found", f"The practice has no fee in force on {day} for code {code}: add a "
                            "ChargeItemDefinition (or `therabridge fees load`)", expression=["code"])
        charge += p.charge * units
        basis += p.allowed * units
        lines.append({"name": "line", "part": [
            {"name": "code", "valueCoding": {"system": CPT, "code": code}},
            {"name": "service", "valueString": service_name(code)},
            {"name": "units", "valueInteger": units},
            {"name": "charge", "valueMoney": money(p.charge * units)},
            {"name": "expectedAllowed", "valueMoney": money(p.allowed * units)}]})
    items, inforce = _items(answer, discipline or "OT")
    notes = []
    deductible = coinsurance = copay = ZERO
    if not inforce or (items and items[0].get("excluded")):
        total = charge
        notes.append("The payer's answer says this service is not covered: the charge is the patient's.")
    else:
        remaining = _amount(_benefit(items, OUR_BENEFIT_TYPE, "deductible-remaining"))
        if remaining is None:
            ded = _benefit(items, BENEFIT_TYPE, "deductible")
            total_ded, used = _amount(ded), _amount(ded, "usedMoney")
            remaining = (total_ded - (used or ZERO)) if total_ded is not None else ZERO
        deductible = min(max(remaining, ZERO), basis)
        pct = _percent(_benefit(items, BENEFIT_TYPE, "copay-percent")) or ZERO
        coinsurance = ((basis - deductible) * pct / 100).quantize(CENT, ROUND_HALF_UP)
        copay = _amount(_benefit(items, BENEFIT_TYPE, "copay")) or ZERO
        total = min(deductible + coinsurance + copay, basis)
        oop = _amount(_benefit(items, OUR_BENEFIT_TYPE, "out-of-pocket-remaining"))
        if oop is not None and total > oop:
            total = max(oop, ZERO)
            notes.append("Capped at what remains of the out-of-pocket maximum.")
    notes.append("An estimate from the payer's latest eligibility answer and the practice's expected allowed "
                 "amounts; the payer's adjudication decides what is owed.")
    params: list[dict[str, Any]] = [
        {"name": "patientAmount", "valueMoney": money(total)},
        {"name": "charge", "valueMoney": money(charge)},
        {"name": "expectedAllowed", "valueMoney": money(basis)},
        {"name": "deductible", "valueMoney": money(deductible)},
        {"name": "coinsurance", "valueMoney": money(coinsurance)},
        {"name": "copay", "valueMoney": money(copay)},
        {"name": "eligibility", "valueReference": {"reference": f"CoverageEligibilityResponse/{answer['id']}"}},
        {"name": "patient", "valueReference": {"reference": f"Patient/{patient_id}"}},
    ]
    if coverage:
        params.append({"name": "coverage", "valueReference": {"reference": f"Coverage/{coverage['id']}"}})
    params += lines
    params += [{"name": "note", "valueString": n} for n in notes]
    return {"resourceType": "Parameters", "parameter": params}
