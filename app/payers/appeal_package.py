"""What an appeal says and encloses: the facts of the claim and its denial gathered from the
record, the letter's content (``appeal_letter`` draws it), the enclosures the denial's category
asks for (``data/appeal_arguments.json``) and the letter's ``DocumentReference`` — the package a
payer API receives as a Communication and a person mails. See ``appeals`` for the operation.
"""
from __future__ import annotations

import base64
import hashlib
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

import orjson

from app.claims import corrections
from app.fhir.dates import instant
from app.fhir.extract import reference_target
from app.fhir.queries import find_resources
from app.fhir.store import Reader, Unit
from app.payers import appeal_letter, appeal_outcomes as track
from fhir_mappings import identifiers
from fhir_mappings.vocabulary import BILLING, CLAIM_LIFECYCLE_HISTORY, PATIENT_CONTROL_NUMBER
from payer_adapters.x12 import denials as rules
from payer_adapters.x12.codes import CARC_SYSTEM, GROUP_SYSTEM

LETTER_TYPE = {"coding": [{"system": BILLING, "code": "appeal-letter", "display": "Appeal letter"}],
               "text": "Appeal letter"}
APPEAL_CATEGORY = {"coding": [{"system": BILLING, "code": "appeal", "display": "Appeal"}], "text": "Appeal"}


@lru_cache(maxsize=1)
def arguments() -> dict[str, Any]:
    return orjson.loads((Path(__file__).parent / "data" / "appeal_arguments.json").read_bytes())


# -- what the letter says ---------------------------------------------------------------------------

def read(unit: Reader, ref: dict[str, Any] | str | None) -> dict[str, Any] | None:
    """The resource a reference points at, when stored and not deleted."""
    target = reference_target((ref.get("reference") if isinstance(ref, dict) else ref) or "")
    found = unit.current(*target) if target else None
    return found.resource() if found is not None and not found.deleted else None


def name_of(resource: dict[str, Any] | None) -> str:
    """A person's or organization's name as written on a letter."""
    if not resource:
        return ""
    if isinstance(resource.get("name"), str):
        return resource["name"]
    n = (resource.get("name") or [{}])[0]
    return n.get("text") or " ".join([*(n.get("given") or []), n.get("family") or ""]).strip()


def _history(claim: dict[str, Any]) -> dict[str, str]:
    ext = next((e for e in claim.get("extension") or [] if e.get("url") == CLAIM_LIFECYCLE_HISTORY), {})
    return {e["url"]: e.get("valueInstant", "") for e in ext.get("extension") or [] if e.get("url")}


def _service_dates(claim: dict[str, Any]) -> list[str]:
    return sorted({str(i.get("servicedDate") or (i.get("servicedPeriod") or {}).get("start") or "")[:10]
                   for i in claim.get("item") or []} - {""})


def _service(item: dict[str, Any]) -> str:
    coding = ((item.get("productOrService") or {}).get("coding") or [{}])[0]
    mods = "-".join(c.get("code", "") for m in item.get("modifier") or [] for c in m.get("coding") or [])
    qty = (item.get("quantity") or {}).get("value", 1)
    return f"{coding.get('code', '?')}{'-' + mods if mods else ''} x{qty:g}" if isinstance(qty, (int, float)) \
        else f"{coding.get('code', '?')}"


def _input_texts(task: dict[str, Any], name: str) -> list[str]:
    return [str((i.get("valueCodeableConcept") or {}).get("text") or "") for i in task.get("input") or []
            if (i.get("type") or {}).get("text") == name]


def input_codes(task: dict[str, Any], name: str) -> list[str]:
    """The codes of a Task's inputs named ``name`` (e.g. its RARC ``remark``s)."""
    return [str(c.get("code")) for i in task.get("input") or [] if (i.get("type") or {}).get("text") == name
            for c in (i.get("valueCodeableConcept") or {}).get("coding") or [] if c.get("code")]


def _input_code(task: dict[str, Any], name: str) -> str:
    for i in task.get("input") or []:
        if (i.get("type") or {}).get("text") == name:
            return str(((i.get("valueCodeableConcept") or {}).get("coding") or [{}])[0].get("code") or "")
    return ""


def _plan_of_care(unit: Unit, claim: dict[str, Any], dates: list[str]) -> dict[str, Any] | None:
    """The patient's plan of care covering the first date of service (else the latest one)."""
    patient = (claim.get("patient") or {}).get("reference")
    plans = find_resources(unit, "CarePlan", [("patient", patient)]) if patient else []
    plans = [p for p in plans if p.get("status") not in ("entered-in-error", "revoked")]
    first = dates[0] if dates else ""

    def covers(p: dict[str, Any]) -> bool:
        period = p.get("period") or {}
        return str(period.get("start") or "")[:10] <= first and (not period.get("end") or first <= period["end"][:10])

    covering = [p for p in plans if covers(p)]
    pick = covering or plans
    return max(pick, key=lambda p: str((p.get("period") or {}).get("start") or "")) if pick else None


def _authorization(unit: Unit, claim: dict[str, Any]) -> tuple[str, dict[str, Any] | None]:
    """The authorization number the claim quotes, and its ClaimResponse when the record has one."""
    numbers = [r for i in claim.get("insurance") or [] for r in i.get("preAuthRef") or []]
    patient = (claim.get("patient") or {}).get("reference")
    found = [r for r in (find_resources(unit, "ClaimResponse", [("patient", patient)]) if patient else [])
             if r.get("use") == "preauthorization" and r.get("outcome") != "error"]
    match = [r for r in found if r.get("preAuthRef") in numbers] or found
    auth = max(match, key=lambda r: r["meta"]["lastUpdated"]) if match else None
    return (numbers[0] if numbers else (auth or {}).get("preAuthRef") or ""), auth


def facts_of(unit: Unit, claim: dict[str, Any], task: dict[str, Any]) -> dict[str, Any]:
    """Everything the letter and the send Task say, read from the claim, its denial Task and the
    record; the text values fill the argument's placeholders."""
    missing = arguments()["missing"]
    patient = read(unit, claim.get("patient")) or {}
    insurance = (claim.get("insurance") or [{}])[0]
    coverage = read(unit, insurance.get("coverage"))
    payer = read(unit, claim.get("insurer"))
    practice = read(unit, claim.get("provider"))
    dates = _service_dates(claim)
    plan = _plan_of_care(unit, claim, dates)
    certifier = read(unit, (plan or {}).get("author")) if plan else None
    number, auth = _authorization(unit, claim)
    history = _history(claim)
    acks = [f"{what} on {history[code][:10]}" for code, what in (("acknowledged", "the 999 accepted the file"),
                                                                  ("accepted", "the payer accepted the claim (277CA)"))
            if history.get(code)]
    period = (plan or {}).get("period") or {}
    auth_period = (auth or {}).get("preAuthPeriod") or {}
    earlier = track.last_value(task, track.LEVEL)  # an upheld appeal: this one is the next level
    level = track.next_level(str(earlier))[0] if earlier else None
    if level is None:
        found = re.search(r"deadline: ([^,]+),", str(task.get("description") or ""))
        level = found.group(1) if found else "appeal"
    return {
        "now": unit.now.date().isoformat(), "claim": claim, "patient": patient, "coverage": coverage, "payer_resource": payer, "practice_resource": practice,
        "plan": plan, "auth": auth, "dates": dates,
        "category": _input_code(task, "category") or "unknown",
        "level": level,
        "deadline": str(((task.get("restriction") or {}).get("period") or {}).get("end") or "")[:10],
        "codes": [t for t in _input_texts(task, "reason") + _input_texts(task, "remark") if t],
        "amount": next((i.get("valueMoney", {}).get("value") for i in task.get("input") or []
                        if (i.get("type") or {}).get("text") == "amount"), None),
        "pcn": identifiers.patient_control_number(claim) or claim["id"],
        "payer_claim_number": corrections.payer_number(claim) or "",
        "lines": _disputed_lines(unit, claim),
        "services": ", ".join(_service(i) for i in claim.get("item") or []) or missing,
        "plan_of_care": (f"plan of care from {str(period.get('start', '?'))[:10]} to {str(period.get('end', 'open'))[:10]}"
                         if plan else missing),
        "certifier": name_of(certifier) or missing,
        "authorization": (f"number {number}" + (f", valid {auth_period.get('start', '?')} to {auth_period.get('end', '?')}"
                                                if auth_period else "")) if number else missing,
        "first_submitted": history.get("submitted", "")[:10] or missing,
        "acceptance": "; ".join(acks) or "no acknowledgment is on file",
    }


def _disputed_lines(unit: Unit, claim: dict[str, Any]) -> list[str]:
    """Each line the payer's latest adjudication denied (an 835's EOB or a payer API's
    ClaimResponse): its date, service, group + CARC codes and the amount denied."""
    ref = f"Claim/{claim['id']}"
    answers = [e for e in find_resources(unit, "ExplanationOfBenefit", [("claim", ref)]) if e.get("status") == "active"
               and float(((e.get("payment") or {}).get("amount") or {}).get("value", 0)) >= 0]
    answers += [r for r in find_resources(unit, "ClaimResponse", [("request", ref)])
                if r.get("outcome") in ("complete", "partial")]
    items = {i.get("sequence"): i for i in claim.get("item") or []}
    payer = identifiers.payer_id(None, claim.get("insurer"))
    for answer in sorted(answers, key=lambda a: a["meta"]["lastUpdated"], reverse=True):
        rows = []
        for item in answer.get("item") or []:
            mine = items.get(item.get("sequence") or item.get("itemSequence")) or item
            denied = []
            for a in item.get("adjudication") or []:
                group = next((c.get("code") for c in (a.get("category") or {}).get("coding") or []
                              if c.get("system") == GROUP_SYSTEM), None)
                carc = next((c.get("code") for c in (a.get("reason") or {}).get("coding") or []
                             if c.get("system") == CARC_SYSTEM), None)
                amount = float((a.get("amount") or {}).get("value", 0))
                if group and carc and amount > 0 and rules.classify(group, carc, (), payer).denial:
                    denied.append(f"{group}-{carc} ${amount:,.2f}")
            if denied:
                day = str(mine.get("servicedDate") or (mine.get("servicedPeriod") or {}).get("start") or "")[:10]
                rows.append(f"{day} {_service(mine)}: {', '.join(denied)}".strip())
        if rows:
            return rows
    return []


def _notes(unit: Unit, claim: dict[str, Any]) -> list[dict[str, Any]]:
    """The EHR's documents for the claim's encounters, or for the patient with no encounter named
    (our own letters and statements left out)."""
    patient = (claim.get("patient") or {}).get("reference")
    if not patient:
        return []
    encounters = {e.get("reference") for i in claim.get("item") or [] for e in i.get("encounter") or []}
    out = []
    for d in find_resources(unit, "DocumentReference", [("patient", patient)]):
        if d.get("status") != "current" or any(c.get("system") == BILLING for c in (d.get("type") or {}).get("coding") or []):
            continue
        named = (d.get("context") or {}).get("encounter") or []
        if named and not any(e.get("reference") in encounters for e in named):
            continue
        out.append(d)
    out.sort(key=lambda d: str(d.get("date") or d["meta"]["lastUpdated"]))
    return out[: int(arguments()["max_notes"])]


def _argument(category: str) -> dict[str, Any]:
    table = arguments()["categories"]
    return table.get(category) or table["default"]


def enclosures(unit: Unit, claim: dict[str, Any], facts: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(description, resource) of every enclosure the category asks for and the record has."""
    out: list[tuple[str, dict[str, Any]]] = []
    for kind in _argument(facts["category"])["enclosures"]:
        if kind == "plan-of-care" and facts["plan"]:
            out.append((f"The {facts['plan_of_care']}, certified by {facts['certifier']}", facts["plan"]))
        elif kind == "authorization" and facts["auth"]:
            out.append((f"Authorization ({facts['authorization']})", facts["auth"]))
        elif kind == "notes":
            for d in _notes(unit, claim):
                title = d.get("description") or (d.get("type") or {}).get("text") or "Clinical document"
                out.append((f"{title} ({str(d.get('date') or '')[:10]})".replace(" ()", ""), d))
    return out


class _Blank(dict):  # type: ignore[type-arg]
    def __missing__(self, key: str) -> str:
        return arguments()["missing"]


def view(facts: dict[str, Any], enclosed: list[tuple[str, dict[str, Any]]]) -> appeal_letter.LetterView:
    """The letter's content: facts, codes, disputed lines, the category's argument, enclosures."""
    claim, practice = facts["claim"], facts["practice_resource"] or {}
    values = _Blank({k: v for k, v in facts.items() if isinstance(v, str)})
    values["codes"] = "; ".join(facts["codes"])
    contact = [", ".join(p for p in [*(a.get("line") or []), a.get("city"), a.get("state"), _zip(a.get("postalCode"))]
                         if p) for a in practice.get("address") or []][:2]
    npi = identifiers.npi(practice, claim.get("provider"))
    if npi:
        contact.append(f"NPI {npi}")
    dates = facts["dates"]
    billed = (claim.get("total") or {}).get("value")
    member = identifiers.member_id(facts["coverage"]) or arguments()["missing"]
    fact_rows = [
        ("Patient", f"{name_of(facts['patient']) or 'unknown'} (born {facts['patient'].get('birthDate', 'unknown')})"),
        ("Member id", member),
        ("Claim (patient control number)", facts["pcn"]),
        ("Payer claim number", facts["payer_claim_number"] or arguments()["missing"]),
        ("Dates of service", f"{dates[0]} to {dates[-1]}" if len(dates) > 1 else (dates[0] if dates else "unknown")),
        ("Services", facts["services"]),
        ("Billed", f"${billed:,.2f}" if isinstance(billed, (int, float)) else "unknown"),
        ("Denied", f"${facts['amount']:,.2f}" if isinstance(facts["amount"], (int, float)) else "unknown"),
        ("Appeal deadline", facts["deadline"] or "unknown"),
    ]
    argument = [arguments()["opening"].format_map(values),
                *[p.format_map(values) for p in _argument(facts["category"])["argument"]]]
    return appeal_letter.LetterView(
        practice=name_of(practice) or "Therapy practice", practice_contact=contact, date=facts["now"],
        payer=name_of(facts["payer_resource"]) or "Payer", subject=f"Request for {facts['level']}", facts=fact_rows,
        codes=facts["codes"] or ["(no codes on the decision)"], argument=argument,
        enclosures=[d for d, _ in enclosed], lines=facts["lines"], signature=["Sincerely,", "", f"Billing office, {name_of(practice) or 'the practice'}"])


def _zip(code: str | None) -> str | None:
    """ZIP+4 written as 62701-0000."""
    return f"{code[:5]}-{code[5:]}" if code and code.isdigit() and len(code) == 9 else code


def letter_document(unit: Unit, claim: dict[str, Any], facts: dict[str, Any], enclosed: list[tuple[str, dict[str, Any]]],
            pdf: bytes, n: int) -> dict[str, Any]:
    """The letter's DocumentReference: the PDF inline, ``context.related`` the Claim (with its
    patient control number, by which a payer finds it) and each enclosure."""
    related = [{"reference": f"Claim/{claim['id']}", "identifier": {"system": PATIENT_CONTROL_NUMBER, "value": facts["pcn"]}}]
    related += [{"reference": f"{r['resourceType']}/{r['id']}", "display": d[:200]} for d, r in enclosed]
    doc: dict[str, Any] = {
        "resourceType": "DocumentReference", "status": "current", "docStatus": "final", "type": LETTER_TYPE,
        "category": [APPEAL_CATEGORY], "subject": claim.get("patient"), "date": instant(unit.now),
        "description": f"Request for {facts['level']} of claim {facts['pcn']} (appeal {n})",
        "content": [{"attachment": {
            "contentType": "application/pdf", "data": base64.b64encode(pdf).decode(), "size": len(pdf),
            "hash": base64.b64encode(hashlib.sha1(pdf).digest()).decode(),
            "title": f"appeal-{facts['pcn']}-{n}.pdf", "creation": instant(unit.now)}}],
        "context": {"related": related},
    }
    if claim.get("provider"):
        doc["author"] = [claim["provider"]]
    return doc
