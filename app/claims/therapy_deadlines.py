"""Therapy documentation deadlines and thresholds as work items, opened before they are missed.

When a visit's claim is generated (``follow_up``, called by the claim workflow) and once a day
(``run_sweep``), ``fhir_mappings.deadlines`` names what is coming: a progress report due
(treatment day 8 of 10 since the last one), a recertification due (14 days before the
certification ends), the patient's KX threshold nearly reached (80 % by default) or the $3,000
targeted medical review threshold passed. Each becomes one Task, opened once: its id is stable
per CarePlan (or patient, year and bucket) and due point, and a Task done or cancelled is not
opened again. The clinician owns the documentation Tasks (``Task.owner``: the visit's rendering
therapist, else the plan's author).
"""
from __future__ import annotations

from datetime import date, datetime
from typing import Any

import fhir_mappings
from app import directory
from app.claims.gather import gather_visit
from app.fhir.extract import reference_target
from app.fhir.queries import find_all, find_resources
from app.fhir.store import Unit
from app.fhir.tasks import task_input, work_item
from app.jobs import schedule_daily
from fhir_mappings.charges import ChargeMaster
from fhir_mappings.deadlines import KX_APPROACHING, PROGRESS, RECERT, REVIEW, Upcoming, upcoming
from fhir_mappings.plan import BillingPlan, plan_billing
from fhir_mappings.profiles import PayerProfile
from fhir_mappings.resolve import clinician
from fhir_mappings.vocabulary import SERVER_NAMESPACE, stable_id

SWEEP = "therapy-deadline-sweep"
DISPLAY = {PROGRESS: "Write the progress report", RECERT: "Get the plan of care recertified",
           KX_APPROACHING: "KX threshold approaching", REVIEW: "Medical review threshold passed"}


def follow_up(unit: Unit, inputs: fhir_mappings.ClaimInputs, plan: BillingPlan, charges: ChargeMaster,
              profile: PayerProfile, claim_id: str, now: datetime, *, today: date | None = None) -> list[str]:
    """Open the Tasks this visit's deadlines call for (ids opened now) and make sure the
    tenant's daily sweep runs. ``plan`` is the billing plan of the visit's claim (the claim
    workflow hands over the one it generated the claim with; the sweep plans the visit again)."""
    opened = [tid for item in upcoming(inputs, plan, charges, claim_id, today)
              if (tid := _open(unit, inputs, plan.rendering, item, now))]
    if any(p.entry is not None for p in plan.plans.values()) and profile.max_certification_days:
        schedule_daily(unit, SWEEP)
    return opened


def _open(unit: Unit, inputs: fhir_mappings.ClaimInputs, rendering: Any, item: Upcoming, now: datetime) -> str | None:
    patient = inputs.patient.resource
    about = f"CarePlan/{item.care_plan.id}" if item.care_plan is not None else f"Patient/{patient['id']}"
    task_id = stable_id(SERVER_NAMESPACE, "task", item.code, about, item.key)
    unit.lock("task", task_id)
    if unit.current("Task", task_id) is not None:
        return None  # opened before (and perhaps done): once per due point
    facts = [task_input("reason", valueString=item.text)]
    if item.due is not None:
        facts.append(task_input("due", valueDate=item.due.isoformat()))
    task = work_item(item.code, DISPLAY[item.code], item.text, now, task_id=task_id, focus=about,
                     patient={"reference": f"Patient/{patient['id']}"}, inputs=facts)
    owner = rendering.reference if rendering is not None else None
    if owner is None and item.care_plan is not None:
        author = clinician(inputs, item.care_plan.resource.get("author"))
        owner = author.reference if author is not None else None
    if owner is not None and item.code in (PROGRESS, RECERT):
        task["owner"] = owner
    if item.due is not None:
        task["restriction"] = {"period": {"end": item.due.isoformat()}}
    unit.update("Task", task_id, task, fresh_id=True)
    return task_id


def run_sweep(unit: Unit, payload: dict[str, Any]) -> None:
    """The daily sweep: each active plan of care is looked at again from today (the patient's
    latest claimed visit under it), so a recertification comes due on time even when no visit is
    billed; it runs again tomorrow while any plan is active."""
    active = find_all(unit, "CarePlan", [("status", "active")])
    patients = sorted({(cp.get("subject") or {}).get("reference", "") for cp in active} - {""})
    for patient in patients:
        latest = _latest_visit(unit, patient)
        if latest is None:
            continue
        encounter, claim_id = latest
        resources, _ = gather_visit(unit, encounter)
        try:
            inputs = fhir_mappings.ClaimInputs.from_resources(resources, encounter_id=encounter, validate=False)
            profile = _profile(unit, inputs)
        except (fhir_mappings.InputError, KeyError):
            continue
        charges = ChargeMaster.of_inputs(inputs)
        plan = plan_billing(inputs, profile, charges, claim_id=claim_id)
        follow_up(unit, inputs, plan, charges, profile, claim_id, unit.now, today=unit.now.date())
    if active:
        schedule_daily(unit, SWEEP)


def _profile(unit: Unit, inputs: fhir_mappings.ClaimInputs) -> PayerProfile:
    """The profile registered on the payer connection of the visit's Coverage, else the Coverage's."""
    payor = ((inputs.coverage.resource.get("payor") or [None])[0]) or {}
    link = directory.for_insurer_in(unit, payor)
    return fhir_mappings.profile_for(inputs, link.profile if link else None)


def _latest_visit(unit: Unit, patient: str) -> tuple[str, str] | None:
    """(Encounter, Claim) of the patient's latest claim by date of service."""
    best: tuple[str, str, str] | None = None
    for claim in find_resources(unit, "Claim", [("patient", patient)]):
        start = (claim.get("billablePeriod") or {}).get("start") or ""
        for item in claim.get("item") or ():
            for ref in item.get("encounter") or ():
                target = reference_target(ref.get("reference", ""))
                if target and target[0] == "Encounter" and (best is None or start > best[0]):
                    best = (start, target[1], claim["id"])
    return (best[1], best[2]) if best else None
