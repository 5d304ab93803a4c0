"""The authorization ledger: the payer's authorizations (``ClaimResponse``, use = preauthorization)
that billers record, what the claims billed under each used of it, and the renewal work item
opened ahead of time.

Billers write authorizations; the payer's answers to claims (``use = claim``) are the server's and
no client creates, changes or deletes them (``guard``). Usage is computed from the stored claims
whenever it is asked for (``$usage``; ``fhir_mappings.authorizations`` has the counting rules the
claim edits use too), so there is no counter to drift. A claim written under an authorization
queues a check (``on_write``), and a daily sweep checks every authorization in force: when few
visits or units are left, or the period ends soon, one ``authorization-renewal`` Task per
authorization and reason is opened, once.
"""
from __future__ import annotations

import json
from datetime import date, timedelta
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any


from app.fhir.dates import instant
from app.fhir.errors import FhirError, issue
from app.fhir.extract import reference_target
from app.fhir.queries import find_all, find_resources
from app.fhir.store import Reader, Unit, Version
from app.fhir.tasks import task_input, work_item
from app.jobs import schedule_daily
from app.outbox import QueuedJob
from fhir_mappings import authorizations as rules
from fhir_mappings.vocabulary import SERVER_NAMESPACE, stable_id

KIND = "authorization-check"
SWEEP = "authorization-sweep"
TASK_CODE = "authorization-renewal"
SETTINGS = Path(__file__).parent / "data" / "authorizations.json"


@cache
def renewal_settings() -> dict[str, int]:
    """When to ask for a renewal: visits or units left, days before the period ends."""
    raw = json.loads(SETTINGS.read_text())
    return {"left": int(raw["renew_when_left"]), "days": int(raw["renew_days_before_end"])}


# -- what clients may write -------------------------------------------------------------
def guard(unit: Unit, incoming: dict[str, Any] | None, current: Version | None) -> dict[str, Any] | None:
    """Clients write authorizations only: a sound one (a number, a period that does not end
    before it starts, whole positive counts, a known patient) or 422 and nothing stored."""
    stored = current.resource() if current is not None else None
    if stored is not None and not rules.is_authorization(stored):
        raise FhirError(422, "business-rule", f"ClaimResponse/{stored.get('id')} is the payer's answer to a claim; "
                        "it is recorded by the server and not changed or deleted by clients",
                        expression=["ClaimResponse.use"])
    if incoming is None:
        return None
    if not rules.is_authorization(incoming):
        raise FhirError(422, "business-rule", "Clients record authorizations only (use = preauthorization); "
                        "the payer's answers to claims are recorded by the server", expression=["ClaimResponse.use"])
    found = rules.problems(incoming)
    target = reference_target((incoming.get("patient") or {}).get("reference", ""))
    patient = unit.current("Patient", target[1]) if target is not None and target[0] == "Patient" else None
    if patient is None or patient.deleted:
        found.append(("ClaimResponse.patient", "The authorization's patient is not known here."))
    if found:
        raise FhirError(422, "business-rule", found[0][1],
                        issues=[issue("business-rule", why, expression=[where]) for where, why in found])
    return incoming


# -- usage ----------------------------------------------------------------------------
def claims_under(reader: Reader, auth: dict[str, Any]) -> list[dict[str, Any]]:
    """The patient's claims that name the authorization's number (before the counting rules)."""
    ref, patient = auth.get("preAuthRef"), (auth.get("patient") or {}).get("reference")
    if not ref or not patient:
        return []
    return [c for c in find_resources(reader, "Claim", [("patient", patient)]) if rules.names_ref(c, ref)]


def usage_of(reader: Reader, auth_id: str) -> tuple[dict[str, Any], rules.Usage]:
    auth = reader.read("ClaimResponse", auth_id).resource()
    if not rules.is_authorization(auth):
        raise FhirError(422, "business-rule", f"ClaimResponse/{auth_id} is not an authorization (use = preauthorization)",
                        expression=["ClaimResponse.use"])
    return auth, rules.usage(auth, claims_under(reader, auth))


def usage_parameters(auth: dict[str, Any], used: rules.Usage) -> dict[str, Any]:
    """``$usage``'s answer: the authorization, each limit's authorized/used/remaining, the claims counted."""
    params: list[dict[str, Any]] = [
        {"name": "authorization", "valueReference": {"reference": f"ClaimResponse/{auth['id']}"}},
        {"name": "preAuthRef", "valueString": auth.get("preAuthRef", "")},
    ]
    if auth.get("preAuthPeriod"):
        params.append({"name": "period", "valuePeriod": auth["preAuthPeriod"]})
    for limit in used.limits:
        item = (auth.get("addItem") or [])[limit.index]
        params.append({"name": "item", "part": [
            {"name": "productOrService", "valueCodeableConcept": item["productOrService"]},
            {"name": "unit", "valueCode": limit.kind},
            {"name": "authorized", "valueInteger": int(limit.authorized)},
            {"name": "used", "valueInteger": int(used.used.get(limit.index, Decimal(0)))},
            {"name": "remaining", "valueInteger": int(used.remaining(limit))},
        ]})
    params += [{"name": "claim", "valueReference": {"reference": f"Claim/{cid}"}} for cid in used.claims]
    return {"resourceType": "Parameters", "parameter": params}


# -- renewal work items -----------------------------------------------------------------
def _refs(resource: dict[str, Any]) -> tuple[str | None, list[str]]:
    """(patient reference, the authorization numbers a write may change the usage of)."""
    patient = (resource.get("patient") or {}).get("reference")
    if resource.get("resourceType") == "ClaimResponse":
        ok = rules.is_authorization(resource) and resource.get("preAuthRef")
        return patient, [resource["preAuthRef"]] if ok else []
    return patient, sorted({r for i in resource.get("insurance") or () for r in i.get("preAuthRef") or ()})


def on_write(unit: Unit | None, new: Version, previous: Version | None) -> list[QueuedJob]:
    """Store observer: a claim written under an authorization (new, or its number, status or
    lines changed: not a mere lifecycle step) or an authorization written queues a check of
    what is left."""
    if new.type not in ("Claim", "ClaimResponse") or not new.content or '"preAuthRef"' not in new.content:
        return []  # (most claims quote no authorization: not parsed)
    resource = new.parsed
    patient, refs = _refs(resource)
    if previous is not None and previous.content and new.type == "Claim":
        before = previous.parsed
        if _refs(before) == (patient, refs) and all(before.get(k) == resource.get(k) for k in ("status", "item", "related")):
            return []
    return [QueuedJob(KIND, {"patient": patient, "preAuthRef": ref},
                      dedupe_key=f"{KIND}:{patient}:{ref}@{instant(new.last_updated)}")
            for ref in refs if patient]


def run_check(unit: Unit, payload: dict[str, Any]) -> None:
    """Open the renewal Tasks the patient's authorizations with this number call for, and make
    sure the tenant's daily sweep runs (it catches periods ending while no claim is written)."""
    for auth in find_resources(unit, "ClaimResponse", [("patient", payload["patient"])]):
        if rules.is_authorization(auth) and rules.in_force(auth) and auth.get("preAuthRef") == payload["preAuthRef"]:
            open_renewals(unit, auth)
    schedule_daily(unit, SWEEP)


def run_sweep(unit: Unit, payload: dict[str, Any]) -> None:
    """The daily sweep: every authorization in force is checked; it runs again tomorrow while any
    authorization has not ended."""
    today = unit.now.date()
    live = [a for a in find_all(unit, "ClaimResponse", [("use", "preauthorization"), ("status", "active")])
            if rules.in_force(a) and (rules.period(a)[1] is None or rules.period(a)[1] >= today)]
    for auth in live:
        open_renewals(unit, auth)
    if live:
        schedule_daily(unit, SWEEP)


def renewal_reasons(auth: dict[str, Any], used: rules.Usage, today: date) -> dict[str, str]:
    """reason key -> sentence: the limits nearly used up, and the period ending soon."""
    cfg = renewal_settings()
    out: dict[str, str] = {}
    for limit in used.limits:
        left = used.remaining(limit)
        if left <= cfg["left"]:
            out[f"left:{limit.index}"] = (f"{rules.unit_word(limit, max(left, Decimal(0)))} of {limit.code} left of "
                                          f"{rules.unit_word(limit, limit.authorized)} authorized")
    _, end = rules.period(auth)
    if end is not None and end - today <= timedelta(days=cfg["days"]):
        out["ending"] = f"the authorized period ends on {end}"
    return out


def open_renewals(unit: Unit, auth: dict[str, Any]) -> list[str]:
    """One Task per (authorization, reason), opened once: ids of the Tasks opened now."""
    used = rules.usage(auth, claims_under(unit, auth))
    opened = []
    for key, why in renewal_reasons(auth, used, unit.now.date()).items():
        task_id = stable_id(SERVER_NAMESPACE, "task", TASK_CODE, auth["id"], key)
        unit.lock("task", task_id)
        if unit.current("Task", task_id) is not None:
            continue  # opened before (and perhaps done): once per reason
        task = work_item(TASK_CODE, "Renew the authorization",
                         f"Authorization {auth.get('preAuthRef')}: {why}; ask the payer for a renewal before "
                         "the next visits.", unit.now, task_id=task_id, focus=f"ClaimResponse/{auth['id']}",
                         patient=auth.get("patient"),
                         inputs=[task_input("reason", valueString=why),
                                 task_input("preAuthRef", valueString=str(auth.get("preAuthRef")))])
        unit.update("Task", task_id, task, fresh_id=True)
        opened.append(task_id)
    return opened
