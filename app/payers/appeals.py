"""Appeals of denied claims: ``Claim/{id}/$appeal`` writes the appeal letter, attaches the
supporting record, sends it (or asks a person to) and tracks it on the claim's ``denial`` Task.

What may be appealed: a claim the payer adjudicated (lifecycle ``denied``, ``partially-paid`` or
``paid`` with a line denied) whose ``denial`` Task is open. Refused with an OperationOutcome and
nothing written: a claim never sent or not adjudicated yet (422), one rejected before
adjudication (422: correct and resubmit instead), one with nothing denied, a paid claim included
(422), a decision the payer's remark code says cannot be appealed (422, ``not_appealable`` in the
data file), an appeal past the denial Task's deadline (422: a late appeal needs good cause the letter
cannot argue for the practice, so it is left to a person), and a second appeal while one waits
for the payer (409). An upheld appeal may be appealed again (the next level) within the deadline.

The letter (``appeal_letter.render``) names the claim, patient, member, dates of service, payer
and the denial codes with their texts, and argues by the denial's category (the data file
``data/appeal_arguments.json``: medical necessity cites the certified plan of care, authorization
the authorization on file, timely filing the first submission and the payer's acknowledgments,
coding and bundling the documentation). It is stored as a ``DocumentReference`` (the PDF inline,
``context.related`` the Claim — with its patient control number — and each enclosure). Enclosures
come from the record: the patient's plan of care (``CarePlan``) covering the dates of service, the
``DocumentReference``s the EHR sent for the claim's encounters (or for the patient, with no
encounter named), and for an authorization denial the authorization ``ClaimResponse``.

Sending, by what the payer connection can do (``Capabilities.appeals``):

* a payer FHIR API: a ``send-appeal`` job posts a ``Communication`` (category ``appeal``, about the
  Claim, the letter and every enclosure as attachments) through the adapter; then an
  ``appeal-follow-up`` job asks the payer (``$inquire``, growing delay) until the claim's new
  adjudication arrives, which is posted as any ClaimResponse.
* every other payer (X12 mailbox, clearinghouse): the package is the letter's DocumentReference
  and the enclosures it lists; an ``appeal-send`` Task asks the biller to mail or upload it by the
  deadline and to complete the Task (``executionPeriod.end``: the day it went out, else the time it
  is completed), which records ``appeal-sent`` on the denial Task. The payer's answer comes as an
  835 like any other.

Tracking and outcome: ``appeal_outcomes``.
"""
from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

import orjson

from app import directory
from app.claims import corrections
from app.claims.lifecycle import lifecycle, rank
from app.fhir.dates import instant
from app.fhir.errors import FhirError
from app.fhir.extract import reference_target
from app.fhir.queries import find_resources
from app.fhir.store import NeedsTransaction, Reader, TenantStore, Unit, Version
from app.fhir.tasks import task_input, work_item
from app.jobs import enqueue
from app.outbox import QueuedJob
from app.payers import appeal_letter, appeal_outcomes as track, denials, posting
from app.payers.calls import call_payer
from app.payers.outcomes import biller_task, issues_text
from app.payers.packages import claim_package
from fhir_mappings import identifiers
from fhir_mappings.vocabulary import (BILLING, CLAIM_LIFECYCLE_HISTORY, PATIENT_CONTROL_NUMBER, SERVER_NAMESPACE, SID,
                                      TASK_CODE, WORK_ROLE, stable_id)
from payer_adapters.errors import PayerRejection
from payer_adapters.x12 import denials as rules
from payer_adapters.x12.codes import CARC_SYSTEM, GROUP_SYSTEM
from payer_adapters.registry import capabilities

SEND = "send-appeal"
FOLLOW_UP = "appeal-follow-up"
MAILED = "appeal-mailed"
SEND_TASK = "appeal-send"
APPEAL_ID = f"{SID}appeal"
FOLLOW_UP_DELAY = timedelta(minutes=5)
LETTER_TYPE = {"coding": [{"system": BILLING, "code": "appeal-letter", "display": "Appeal letter"}],
               "text": "Appeal letter"}
APPEAL_CATEGORY = {"coding": [{"system": BILLING, "code": "appeal", "display": "Appeal"}], "text": "Appeal"}


@lru_cache(maxsize=1)
def arguments() -> dict[str, Any]:
    return orjson.loads((Path(__file__).parent / "data" / "appeal_arguments.json").read_bytes())


@dataclass(frozen=True)
class Appeal:
    """What ``$appeal`` wrote: the letter, the denial Task, and the send Task (payers without an
    appeal API), and whether a job sends it to the payer."""

    letter: Version
    task: Version
    send_task: Version | None
    sent_by_api: bool


# -- the operation ------------------------------------------------------------------------------

def appeal(unit: Unit, claim_id: str) -> Appeal:
    """Build the appeal of ``Claim/claim_id`` and send it or ask a person to (module docstring)."""
    claim = unit.read("Claim", claim_id).resource()
    task = _appealable(unit, claim)
    link = directory.for_insurer(unit.conn, unit.tenant_id, claim.get("insurer"))
    if link is None:
        raise FhirError(422, "business-rule", "No payer connection is registered for this claim's insurer",
                        expression=["Claim.insurer"])
    by_api = capabilities(link.kind, link.settings).appeals
    facts = _facts(unit, claim, task)
    enclosed = _enclosures(unit, claim, facts)
    n = len(track.outputs(task, track.LETTER)) + 1
    letter_id = stable_id(SERVER_NAMESPACE, "appeal-letter", task["id"], str(n))
    pdf = appeal_letter.render(_view(facts, enclosed))
    letter = unit.update("DocumentReference", letter_id, _letter(unit, claim, facts, enclosed, pdf, n),
                         fresh_id=unit.current("DocumentReference", letter_id) is None).version
    send_task = None
    if not by_api:
        send_task = unit.update("Task", (sid := stable_id(SERVER_NAMESPACE, "task", SEND_TASK, letter_id)),
                                _send_task(unit, claim, task, facts, letter_id, enclosed, sid), fresh_id=True).version

    def mark(t: dict[str, Any]) -> bool:
        if track.pending(t):
            raise FhirError(409, "conflict", "An appeal of this denial is already waiting for the payer's decision",
                            expression=["Claim"])
        t.setdefault("output", []).extend([
            track.output(track.LETTER, valueReference={"reference": f"DocumentReference/{letter_id}"}),
            track.output(track.STATUS, valueCode="pending"),
            track.output(track.LEVEL, valueString=facts["level"]),
            *([track.output(track.OF, valueString=facts["payer_claim_number"])] if facts["payer_claim_number"] else []),
            *([track.output(SEND_TASK, valueReference={"reference": f"Task/{send_task.id}"})] if send_task else []),
        ])
        t["businessStatus"] = {"text": "appealed"}
        t["lastModified"] = instant(unit.now)
        return True

    written = unit.modify("Task", task["id"], mark)
    if by_api:
        enqueue(unit, SEND, {"claim": claim_id, "task": task["id"], "letter": letter_id},
                dedupe_key=f"{SEND}:{letter_id}")
    return Appeal(letter, written.version if written else unit.read("Task", task["id"]), send_task, by_api)


def _appealable(unit: Unit, claim: dict[str, Any]) -> dict[str, Any]:
    """The claim's open denial Task, or the reason there is nothing to appeal (an OperationOutcome)."""
    state = lifecycle(claim)
    if state == "rejected":
        raise FhirError(422, "business-rule", "The payer rejected this claim before adjudicating it: correct it "
                        "and submit it again; only an adjudicated claim can be appealed", expression=["Claim"])
    if rank(state) < rank("paid"):
        raise FhirError(422, "business-rule", f"The claim has not been adjudicated (lifecycle {state or 'none'}): "
                        "there is no payer decision to appeal", expression=["Claim"])
    tasks = denials.open_tasks(unit, claim["id"])
    if not tasks:
        raise FhirError(422, "business-rule", f"The payer denied nothing on this claim (lifecycle {state}) that is "
                        "still open: nothing to appeal", expression=["Claim"])
    task = tasks[0]
    if track.pending(task):
        raise FhirError(409, "conflict", "An appeal of this denial is already waiting for the payer's decision",
                        expression=["Claim"])
    closed = arguments()["not_appealable"]
    for remark in _input_codes(task, "remark"):
        if remark in closed:
            raise FhirError(422, "business-rule", f"Not appealable: remark {remark} ({closed[remark]})",
                            expression=["Claim"])
    deadline = ((task.get("restriction") or {}).get("period") or {}).get("end")
    if deadline and unit.now.date() > date.fromisoformat(deadline[:10]):
        raise FhirError(422, "business-rule", f"The appeal deadline ({deadline[:10]}) has passed; a late appeal "
                        "needs good cause and is left to a person", expression=["Claim"])
    return task


# -- what the letter says ---------------------------------------------------------------------------

def _read(unit: Reader, ref: dict[str, Any] | str | None) -> dict[str, Any] | None:
    target = reference_target((ref.get("reference") if isinstance(ref, dict) else ref) or "")
    found = unit.current(*target) if target else None
    return found.resource() if found is not None and not found.deleted else None


def _name(resource: dict[str, Any] | None) -> str:
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


def _input_codes(task: dict[str, Any], name: str) -> list[str]:
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


def _facts(unit: Unit, claim: dict[str, Any], task: dict[str, Any]) -> dict[str, Any]:
    missing = arguments()["missing"]
    patient = _read(unit, claim.get("patient")) or {}
    insurance = (claim.get("insurance") or [{}])[0]
    coverage = _read(unit, insurance.get("coverage"))
    payer = _read(unit, claim.get("insurer"))
    practice = _read(unit, claim.get("provider"))
    dates = _service_dates(claim)
    plan = _plan_of_care(unit, claim, dates)
    certifier = _read(unit, (plan or {}).get("author")) if plan else None
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
        "certifier": _name(certifier) or missing,
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


def _enclosures(unit: Unit, claim: dict[str, Any], facts: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
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


def _view(facts: dict[str, Any], enclosed: list[tuple[str, dict[str, Any]]]) -> appeal_letter.LetterView:
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
        ("Patient", f"{_name(facts['patient']) or 'unknown'} (born {facts['patient'].get('birthDate', 'unknown')})"),
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
        practice=_name(practice) or "Therapy practice", practice_contact=contact, date=facts["now"],
        payer=_name(facts["payer_resource"]) or "Payer", subject=f"Request for {facts['level']}", facts=fact_rows,
        codes=facts["codes"] or ["(no codes on the decision)"], argument=argument,
        enclosures=[d for d, _ in enclosed], lines=facts["lines"], signature=["Sincerely,", "", f"Billing office, {_name(practice) or 'the practice'}"])


def _zip(code: str | None) -> str | None:
    """ZIP+4 written as 62701-0000."""
    return f"{code[:5]}-{code[5:]}" if code and code.isdigit() and len(code) == 9 else code


def _letter(unit: Unit, claim: dict[str, Any], facts: dict[str, Any], enclosed: list[tuple[str, dict[str, Any]]],
            pdf: bytes, n: int) -> dict[str, Any]:
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


def _send_task(unit: Unit, claim: dict[str, Any], denial: dict[str, Any], facts: dict[str, Any], letter_id: str,
               enclosed: list[tuple[str, dict[str, Any]]], task_id: str) -> dict[str, Any]:
    payer = _name(facts["payer_resource"]) or "the payer"
    task = work_item(SEND_TASK, "Send the appeal", f"Mail or upload (payer portal) the appeal letter and its "
                     f"{len(enclosed)} enclosure(s) to {payer} by {facts['deadline'] or 'the deadline'}, then complete "
                     "this Task with executionPeriod.end = the day it went out.", unit.now, task_id=task_id,
                     focus=f"Claim/{claim['id']}", patient=claim.get("patient"),
                     priority=denial.get("priority") or "routine",
                     inputs=[task_input("letter", valueReference={"reference": f"DocumentReference/{letter_id}"}),
                             task_input("denial-task", valueReference={"reference": f"Task/{denial['id']}"}),
                             *[task_input("enclosure", valueReference={"reference": f"{r['resourceType']}/{r['id']}"})
                               for _, r in enclosed]])
    task["performerType"] = [{"coding": [{"system": WORK_ROLE, "code": "biller"}], "text": "biller"}]
    if facts["deadline"]:
        task["restriction"] = {"period": {"end": facts["deadline"]}}
    return task


# -- sending to a payer's API, and asking for its decision ------------------------------------------

def communication(claim: dict[str, Any], letter: dict[str, Any], enclosures: list[dict[str, Any]],
                  sent: str) -> dict[str, Any]:
    """The appeal as a FHIR Communication: the letter, then each enclosure, as attachments (a
    document's own attachments; any other resource as FHIR JSON), so the payer needs nothing of ours."""
    payload = [{"contentAttachment": a["attachment"]} for a in letter.get("content") or [] if a.get("attachment")]
    for r in enclosures:
        if r.get("resourceType") == "DocumentReference":
            payload += [{"contentAttachment": c["attachment"]} for c in r.get("content") or [] if c.get("attachment")]
        else:
            data = orjson.dumps({k: v for k, v in r.items() if k != "meta"})
            payload.append({"contentAttachment": {"contentType": "application/fhir+json",
                                                  "data": base64.b64encode(data).decode(),
                                                  "title": f"{r['resourceType']}/{r.get('id')}"}})
    claim_ref = next((r for r in (letter.get("context") or {}).get("related") or []
                      if str(r.get("reference", "")).startswith("Claim/")), {"reference": f"Claim/{claim['id']}"})
    comm: dict[str, Any] = {
        "resourceType": "Communication", "identifier": [{"system": APPEAL_ID, "value": letter["id"]}],
        "status": "completed", "category": [APPEAL_CATEGORY], "subject": claim.get("patient"),
        "about": [claim_ref], "sent": sent, "topic": {"text": letter.get("description") or "Appeal"},
        "payload": payload,
    }
    if claim.get("insurer"):
        comm["recipient"] = [claim["insurer"]]
    if claim.get("provider"):
        comm["sender"] = claim["provider"]
    return comm


def run_send(ts: TenantStore, payload: dict[str, Any]) -> None:
    """``send-appeal``: file the appeal with the payer's API (no transaction open meanwhile), then
    record it sent and ask for the decision later; a payer's refusal opens a biller Task."""
    with ts.reading() as reader:
        claim = _read(reader, f"Claim/{payload['claim']}")
        task = _read(reader, f"Task/{payload['task']}")
        letter = _read(reader, f"DocumentReference/{payload['letter']}")
        if claim is None or task is None or letter is None or not track.pending(task):
            return
        link = directory.for_insurer(reader.conn, ts.tenant_id, claim.get("insurer"))
        enclosures = [r for ref in (letter.get("context") or {}).get("related") or []
                      if not str(ref.get("reference", "")).startswith("Claim/") and (r := _read(reader, ref))]
    if link is None:  # the connection was removed meanwhile: nobody can send it but a person
        with ts.unit() as unit:
            unit.modify("Task", task["id"], lambda t: _refused(t, unit))
            biller_task(unit, claim, "appeal-refused", "Appeal not sent", "No payer connection is registered for the "
                        "claim's insurer any more: send the appeal letter by mail or portal and appeal again if needed.",
                        ["no payer connection"], unit.now, key=f"{claim['id']}:{letter['id']}")
        return
    now = ts.store.clock()
    comm = communication(claim, letter, enclosures, instant(now))

    async def send(adapter: Any) -> dict[str, Any]:
        return await adapter.send_appeal(comm)

    try:
        filed = call_payer(ts, link, "claims", send)
    except PayerRejection as rejection:
        with ts.unit() as unit:
            unit.modify("Task", task["id"], lambda t: _refused(t, unit))
            biller_task(unit, claim, "appeal-refused", "Appeal refused by the payer",
                        "The payer would not file the appeal: see why, correct and appeal again.",
                        issues_text(rejection.outcome), unit.now, key=f"{claim['id']}:{letter['id']}")
        return
    with ts.unit() as unit:
        def sent(t: dict[str, Any]) -> bool:
            if not track.pending(t) or track.outputs(t, "appeal-communication"):
                return False
            t["output"] += [track.output(track.SENT, valueDateTime=instant(unit.now)),
                            track.output("appeal-communication", valueString=str(filed.get("id") or ""))]
            return True

        unit.modify("Task", task["id"], sent)
        _queue_follow_up(unit, claim["id"], task["id"], 1)


def _refused(t: dict[str, Any], unit: Unit) -> bool:
    if not track.pending(t):
        return False
    track.set_status(t, "refused")
    t["businessStatus"] = {"text": "appeal-refused"}
    t["lastModified"] = instant(unit.now)
    return True


def _queue_follow_up(unit: Unit, claim_id: str, task_id: str, attempt: int) -> None:
    enqueue(unit, FOLLOW_UP, {"claim": claim_id, "task": task_id, "attempt": attempt},
            dedupe_key=f"{FOLLOW_UP}:{task_id}:{attempt}",
            run_after=unit.now + FOLLOW_UP_DELAY * min(2 ** (attempt - 1), 288))


def run_follow_up(ts: TenantStore, payload: dict[str, Any]) -> None:
    """``appeal-follow-up``: ask the payer for the claim's new adjudication; still pending, ask
    again later (at most 12 times); an answer is posted like any ClaimResponse."""
    attempt = int(payload.get("attempt", 1))
    with ts.reading() as reader:
        claim = _read(reader, f"Claim/{payload['claim']}")
        task = _read(reader, f"Task/{payload['task']}")
        if claim is None or task is None or not track.pending(task):
            return
        link = directory.for_insurer(reader.conn, ts.tenant_id, claim.get("insurer"))
        if link is None:
            return
        pkg = claim_package(reader, claim)
    try:
        response = call_payer(ts, link, "status",
                              lambda adapter: adapter.inquire({"claim": claim, "resources": pkg.resources}))
    except PayerRejection:
        response = None
    with ts.unit() as unit:
        if response is None or response.get("outcome") not in ("complete", "partial") \
                or identifiers.payer_claim_number(response) in (None, track.last_value(task, track.OF)):
            if attempt < 12:
                _queue_follow_up(unit, claim["id"], task["id"], attempt + 1)
            return
        current = unit.read("Claim", claim["id"]).resource()
        posting.post_claim_response(unit, current, response, source=f"appeal:{payload['task']}:{attempt}")


# -- a person sent it ----------------------------------------------------------------------------

def on_write(unit: Unit | None, new: Version, previous: Version | None) -> list[QueuedJob]:
    """Store observer: an ``appeal-send`` Task completed → record the appeal sent (a job)."""
    if new.type != "Task" or not new.content:
        return []
    needle = f'"{SEND_TASK}"'
    if (needle.encode() if isinstance(new.content, bytes) else needle) not in new.content:
        return []  # cheap: most Task writes are not this kind
    task = orjson.loads(new.content)
    if task.get("status") != "completed" or not any(
            c.get("system") == TASK_CODE and c.get("code") == SEND_TASK for c in (task.get("code") or {}).get("coding") or []):
        return []
    if previous is not None and previous.content and orjson.loads(previous.content).get("status") == "completed":
        return []
    if unit is None:
        raise NeedsTransaction
    return [QueuedJob(MAILED, {"task": new.id}, dedupe_key=f"{MAILED}:{new.id}")]


def run_mailed(unit: Unit, payload: dict[str, Any]) -> None:
    """``appeal-mailed``: the denial Task records when the appeal went out."""
    send = _read(unit, f"Task/{payload['task']}")
    if send is None:
        return
    denial = next((i["valueReference"]["reference"] for i in send.get("input") or []
                   if (i.get("type") or {}).get("text") == "denial-task" and i.get("valueReference")), None)
    when = (send.get("executionPeriod") or {}).get("end") or send.get("lastModified") or instant(unit.now)
    if not denial:
        return

    def sent(t: dict[str, Any]) -> bool:
        names = [(o.get("type") or {}).get("text") for o in t.get("output") or []]
        letter = max((n for n, name in enumerate(names) if name == track.LETTER), default=None)
        if letter is None or track.SENT in names[letter:]:
            return False  # no appeal, or this one's sending is recorded already
        t["output"].append(track.output(track.SENT, valueDateTime=when))
        return True

    unit.modify("Task", denial.split("/", 1)[1], sent)
