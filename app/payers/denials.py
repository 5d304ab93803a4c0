"""Denials become work: one open ``Task`` (code ``denial``) per claim a payer denied, partly
denied or rejected, saying the category, the codes, the amount at stake, the next action, the
deadline and how urgent it is; it closes by itself once the claim (or a replacement of it) is paid.

Posting calls one function per answer kind (835, 277CA, payer API ClaimResponse). The rules —
which code means what, which action, which deadline — are data, read through
``payer_adapters.x12.denials``. Contractual adjustments and expected patient responsibility open
nothing. Idempotent: a Task's id derives from the answer that opened it, so a redelivered answer
finds its Task (open or already closed) and opens no second one; a later answer refreshes the open
Task with the codes it adds.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Iterable

from app.fhir.dates import instant
from app.fhir.queries import find_referring, find_resources
from app.fhir.store import Unit
from app.fhir.tasks import is_open, task_input, work_item
from app.payers import reversals, rule_proposals, worklists
from fhir_mappings import identifiers
from fhir_mappings.tables import CPT_SYSTEM
from fhir_mappings.vocabulary import (DENIAL_ACTION, DENIAL_CATEGORY, SERVER_NAMESPACE, TASK_CODE, WORK_ROLE,
                                      stable_id)
from payer_adapters.x12 import denials as rules
from payer_adapters.x12.codes import ADJUDICATION, CARC_SYSTEM, GROUP_SYSTEM, RARC_SYSTEM, STC_CATEGORY_SYSTEM, STC_STATUS_SYSTEM, describe
from payer_adapters.x12.decode_277ca import ClaimAck
from payer_adapters.x12.decode_835 import ClaimPayment, Remittance

CODE = "denial"


@dataclass(slots=True)
class Finding:
    """What one answer says is wrong with one claim."""

    category: str
    action: str
    amount: Decimal
    deadline: date
    reasons: list[dict[str, Any]] = field(default_factory=list)  # CodeableConcepts
    remarks: list[dict[str, Any]] = field(default_factory=list)
    source: str = ""
    note: str = ""
    lines: list[rule_proposals.DeniedLine] = field(default_factory=list)  # (procedure code, group, CARC)


# -- 835 ------------------------------------------------------------------------------------

def from_remittance(unit: Unit, rem: Remittance, targets: list[dict[str, Any] | None]) -> None:
    """Open or refresh a denial Task for each claim the 835 denies (wholly or in part); close the
    Task of a claim the 835 pays without denying anything, and of the claims it replaces."""
    paid_on = _iso(rem.payment_date) or _iso(rem.production_date) or unit.now.date()
    known = open_tasks_many(unit, [c["id"] for c in targets if c is not None])
    for n, (cp, claim) in enumerate(zip(rem.claims, targets)):
        if claim is None or reversals.is_reversal(cp):
            continue
        finding = _remittance_finding(cp, rem, paid_on)
        if finding is None:
            if cp.paid > 0:
                resolve(unit, claim, "paid", known)
            continue
        finding.source = f"835 {rem.payer_id} {rem.trace_number} #{cp.position or n}"
        open_or_refresh(unit, claim, finding, known)


def _remittance_finding(cp: ClaimPayment, rem: Remittance, paid_on: date) -> Finding | None:
    denied: list[tuple[Decimal, str, str, str, str]] = []  # amount, group, carc, category, action
    lines: list[rule_proposals.DeniedLine] = []
    remarks: list[str] = list(dict.fromkeys([*cp.remarks, *[r for s in cp.services for r in s.remarks]]))
    # a claim-level adjustment concerns every line's code
    blocks = [(cp.adjustments, cp.remarks, [s.code for s in cp.services])] + \
        [(s.adjustments, [*s.remarks, *cp.remarks], [s.code]) for s in cp.services]
    for adjustments, notes, codes in blocks:
        for a in adjustments:
            c = rules.classify(a.group, a.reason, notes, rem.payer_id)
            if c.denial and a.amount > 0:
                denied.append((a.amount, a.group, a.reason, c.category, c.action))
                lines += [(code, a.group, a.reason) for code in codes]
    if not denied:
        return None
    top = max(denied, key=lambda d: d[0])  # the largest amount decides category and action
    deadline, level = rules.appeal_deadline(paid_on, cp.filing_indicator, rem.payer_id)
    seen: dict[str, dict[str, Any]] = {}
    for _, group, carc, _, _ in denied:
        seen.setdefault(f"{group}-{carc}", _carc_concept(group, carc))
    return Finding(top[3], top[4], sum((d[0] for d in denied), Decimal(0)), deadline, list(seen.values()),
                   [_rarc_concept(r) for r in remarks], note=f"deadline: {level}, counted from {paid_on.isoformat()}",
                   lines=lines)


# -- 277CA and payer API rejections -----------------------------------------------------------

def from_277ca(unit: Unit, claim: dict[str, Any], ack: ClaimAck) -> None:
    """A claim the payer's 277CA rejected before adjudication: correct it and send it again."""
    statuses = [*ack.statuses, *[s for line in ack.lines for s in line.statuses]]
    rejected = [s for s in statuses if s.rejected] or statuses
    reasons = list({f"{s.category}:{s.code}": _stc_concept(s.category, s.code) for s in rejected}.values())
    category = rules.rejection_category([s.code for s in rejected])
    open_or_refresh(unit, claim, _rejection(unit, claim, category, reasons,
                                            f"277CA {ack.patient_control_number} "
                                            + ",".join(f"{s.category}:{s.code}" for s in rejected)))


def from_claim_response(unit: Unit, claim: dict[str, Any], response: dict[str, Any]) -> None:
    """A payer API's ClaimResponse: an ``error`` outcome opens a correct-and-resubmit Task; an
    adjudication (``complete`` / ``partial``) is read like an 835 — its group + CARC adjustments
    open or refresh a denial Task, or, denying nothing while paying, resolve the open one."""
    outcome, source = response.get("outcome"), f"ClaimResponse {response.get('id', '')}"
    if outcome == "error":
        reasons = [dict((e.get("code") or {})) for e in response.get("error") or []] or [{"text": "rejected"}]
        codes = [c.get("code", "").split(":")[-1] for r in reasons for c in r.get("coding") or []]
        open_or_refresh(unit, claim, _rejection(unit, claim, rules.rejection_category(codes), reasons, source))
        return
    if outcome not in ("complete", "partial"):
        return
    finding = _response_finding(unit, claim, response)
    if finding is None:
        if _benefit(response) > 0:
            resolve(unit, claim, "paid")
        return
    finding.source = source
    open_or_refresh(unit, claim, finding)


def _response_finding(unit: Unit, claim: dict[str, Any], response: dict[str, Any]) -> Finding | None:
    payer = identifiers.payer_id(None, claim.get("insurer"))
    notes = {n.get("number"): str(n.get("text") or "").split(":")[0].strip()
             for n in response.get("processNote") or []}
    denied: list[tuple[Decimal, str, str, str, str]] = []
    lines: list[rule_proposals.DeniedLine] = []
    remarks: list[str] = []
    codes = {it.get("sequence"): _code(it.get("productOrService"), CPT_SYSTEM) for it in claim.get("item") or []}
    for item in [response, *(response.get("item") or [])]:
        mine = [notes[n] for n in item.get("noteNumber") or [] if notes.get(n)]
        remarks += [r for r in mine if r not in remarks]
        # the response's own adjudication concerns every line's code
        item_codes = list(codes.values()) if item is response else [codes.get(item.get("itemSequence"))]
        for a in item.get("adjudication") or []:
            group = _code(a.get("category"), GROUP_SYSTEM)
            carc = _code(a.get("reason"), CARC_SYSTEM)
            amount = Decimal(str(((a.get("amount") or {}).get("value")) or 0))
            if not (group and carc) or amount <= 0:
                continue
            c = rules.classify(group, carc, mine, payer)
            if c.denial:
                denied.append((amount, group, carc, c.category, c.action))
                lines += [(code, group, carc) for code in item_codes if code]
    if not denied:
        return None
    top = max(denied, key=lambda d: d[0])
    decided = _iso(response.get("created")) or unit.now.date()
    deadline, level = rules.appeal_deadline(decided, None, payer)
    seen: dict[str, dict[str, Any]] = {}
    for _, group, carc, _, _ in denied:
        seen.setdefault(f"{group}-{carc}", _carc_concept(group, carc))
    return Finding(top[3], top[4], sum((d[0] for d in denied), Decimal(0)), deadline, list(seen.values()),
                   [_rarc_concept(r) for r in remarks if rules.rarc_text(r)],
                   note=f"deadline: {level}, counted from {decided.isoformat()}", lines=lines)


def _code(concept: dict[str, Any] | None, system: str) -> str | None:
    return next((c.get("code") for c in (concept or {}).get("coding") or [] if c.get("system") == system), None)


def _benefit(response: dict[str, Any]) -> Decimal:
    """What the payer pays: ``payment.amount``, else the ``benefit`` total."""
    paid = ((response.get("payment") or {}).get("amount") or {}).get("value")
    if paid is None:
        paid = next(((t.get("amount") or {}).get("value", 0) for t in response.get("total") or []
                     if _code(t.get("category"), ADJUDICATION) == "benefit"), 0)
    return Decimal(str(paid))


def _rejection(unit: Unit, claim: dict[str, Any], category: str, reasons: list[dict[str, Any]], source: str) -> Finding:
    first = _first_service(claim) or unit.now.date()
    payer = identifiers.payer_id(None, claim.get("insurer"))
    total = Decimal(str(((claim.get("total") or {}).get("value")) or 0))
    return Finding(category, "correct-and-resubmit", total, rules.filing_deadline(first, None, payer),
                   reasons, source=source,
                   note=f"deadline: timely filing, counted from the first date of service {first.isoformat()}")


# -- the Task -------------------------------------------------------------------------------------

OpenTasks = dict[str, list[dict[str, Any]]]  # claim id -> its open denial Tasks


def open_tasks(unit: Unit, claim_id: str) -> list[dict[str, Any]]:
    found = find_resources(unit, "Task", [("focus", f"Claim/{claim_id}"), ("code", f"{TASK_CODE}|{CODE}")])
    return [t for t in found if is_open(t)]


def open_tasks_many(unit: Unit, claim_ids: list[str]) -> OpenTasks:
    """``open_tasks`` of many claims in a few searches: an 835 looks up the Tasks of all its
    claims at once. Callers pass the map on and keep it current as they open or close Tasks."""
    out: OpenTasks = {claim_id: [] for claim_id in claim_ids}
    wanted = sorted(out)
    for start in range(0, len(wanted), TASK_CHUNK):
        for task in _denial_tasks(unit, wanted[start:start + TASK_CHUNK]):
            claim_id = (((task.get("focus") or {}).get("reference")) or "").removeprefix("Claim/")
            if claim_id in out and is_open(task):
                out[claim_id].append(task)
    return out


TASK_CHUNK = 100  # claims per Task search


def _denial_tasks(unit: Unit, claim_ids: list[str]) -> list[dict[str, Any]]:
    """The denial Tasks (open or not) whose focus is one of the claims."""
    return [t for t in find_referring(unit, "Task", "focus", "Claim", claim_ids)
            if any(c.get("system") == TASK_CODE and c.get("code") == CODE for c in (t.get("code") or {}).get("coding") or [])]


def _open_of(unit: Unit, claim_id: str, known: OpenTasks | None) -> list[dict[str, Any]]:
    if known is not None and claim_id in known:
        return known[claim_id]
    return open_tasks(unit, claim_id)


def open_or_refresh(unit: Unit, claim: dict[str, Any], finding: Finding, known: OpenTasks | None = None) -> None:
    """The claim's one open denial Task, refreshed with this finding (codes already listed are
    kept); a new Task when none is open, unless this very answer opened one before. ``known``:
    the open Tasks already looked up (``open_tasks_many``), kept current here."""
    task = _task(unit, claim, finding)
    rule_proposals.observe(unit, claim, finding.lines)  # a repeated denial may propose a payer rule
    current = _open_of(unit, claim["id"], known)
    if current:
        def refresh(t: dict[str, Any]) -> bool:
            if not is_open(t):
                return False
            kept = [i for i in t.get("input") or [] if _name(i) in ("reason", "remark")
                    and i not in task["input"]]
            t.update({k: v for k, v in task.items() if k not in ("id", "authoredOn", "status")})
            t["input"] = task["input"] + kept
            worklists.stamp(t, unit.now.date())  # aged from when the item was first opened
            return True

        unit.modify("Task", current[0]["id"], refresh)
        return
    existing = unit.current("Task", task["id"])
    if existing is None or existing.deleted:
        unit.update("Task", task["id"], task)
        if known is not None:
            known[claim["id"]] = [task]


def resolve(unit: Unit, claim: dict[str, Any], why: str, known: OpenTasks | None = None) -> None:
    """Close the open denial Task of ``claim`` and of every claim it replaces (``related``)."""
    ids = [claim["id"], *[ref.split("/", 1)[1] for r in claim.get("related") or []
                          if (ref := ((r.get("claim") or {}).get("reference") or "")).startswith("Claim/")]]
    for claim_id in ids:
        for t in _open_of(unit, claim_id, known):
            unit.modify("Task", t["id"], lambda current: _close(current, unit.now, why))
        if known is not None and claim_id in known:
            known[claim_id] = []


def _close(task: dict[str, Any], now: datetime, why: str) -> bool:
    if not is_open(task):
        return False
    task.update(status="completed", businessStatus={"text": why}, lastModified=instant(now))
    return True


def _task(unit: Unit, claim: dict[str, Any], f: Finding) -> dict[str, Any]:
    info = rules.category_info(f.category)
    days_left = (f.deadline - unit.now.date()).days
    inputs = [
        task_input("category", valueCodeableConcept={"coding": [{"system": DENIAL_CATEGORY, "code": f.category,
                                                                  "display": info["display"]}]}),
        task_input("next-action", valueCodeableConcept={"coding": [{"system": DENIAL_ACTION, "code": f.action,
                                                                     "display": rules.action_text(f.action)}]}),
        task_input("amount", valueMoney={"value": float(f.amount), "currency": "USD"}),
        task_input("source", valueString=f.source[:1000]),
        *([task_input("payer", valueReference=claim["insurer"])] if (claim.get("insurer") or {}).get("reference") else []),
        *[task_input("reason", valueCodeableConcept=r) for r in f.reasons[:50]],
        *[task_input("remark", valueCodeableConcept=r) for r in f.remarks[:50]],
    ]
    task = work_item(CODE, "Work the denial", f"{info['display']}: {rules.action_text(f.action)} "
                     f"by {f.deadline.isoformat()} ({f.note}).", unit.now,
                     task_id=stable_id(SERVER_NAMESPACE, "task", CODE, claim["id"], f.source),
                     focus=f"Claim/{claim['id']}", patient=claim.get("patient"), inputs=inputs,
                     priority=rules.priority(f.amount, days_left), business_status=f.category)
    task["performerType"] = [{"coding": [{"system": WORK_ROLE, "code": info["owner"]}], "text": info["owner"]}]
    task["restriction"] = {"period": {"end": f.deadline.isoformat()}}
    worklists.stamp(task, unit.now.date())
    return task


def _name(i: dict[str, Any]) -> str:
    return str((i.get("type") or {}).get("text") or "")


def _carc_concept(group: str, carc: str) -> dict[str, Any]:
    text = rules.carc_text(carc)
    return {"coding": [{"system": GROUP_SYSTEM, "code": group, **_display(describe("adjustment_groups", group))},
                       {"system": CARC_SYSTEM, "code": carc, **_display(text)}],
            "text": f"{group}-{carc}" + (f": {text}" if text else "")}


def _rarc_concept(rarc: str) -> dict[str, Any]:
    text = rules.rarc_text(rarc)
    return {"coding": [{"system": RARC_SYSTEM, "code": rarc, **_display(text)}],
            "text": rarc + (f": {text}" if text else "")}


def _stc_concept(category: str, status: str) -> dict[str, Any]:
    cat, st = describe("stc_categories", category), describe("stc_status", status)
    return {"coding": [{"system": STC_CATEGORY_SYSTEM, "code": category, **_display(cat)},
                       {"system": STC_STATUS_SYSTEM, "code": status, **_display(st)}],
            "text": f"{category}:{status}" + (f": {st or cat}" if (st or cat) else "")}


def _display(text: str | None) -> dict[str, str]:
    return {"display": text} if text else {}


def _iso(value: str | None) -> date | None:
    try:
        return date.fromisoformat(value[:10]) if value else None
    except ValueError:
        return None


def _first_service(claim: dict[str, Any]) -> date | None:
    dates: Iterable[str | None] = [(claim.get("billablePeriod") or {}).get("start"),
                                   *[i.get("servicedDate") or (i.get("servicedPeriod") or {}).get("start")
                                     for i in claim.get("item") or []]]
    found = [d for d in (_iso(x) for x in dates) if d]
    return min(found) if found else None
