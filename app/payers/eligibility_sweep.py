"""Eligibility that acts: booked Appointments are checked with the payer ahead of the visit, and
what the payer answers opens work items before anyone bills.

- ``eligibility-sweep`` (per tenant, once a UTC day, rescheduling itself like the collection
  schedule): one indexed search of the booked Appointments starting on the day and
  ``eligibility_days_ahead`` days later, one search of their patients' active Coverages, then one
  ``eligibility-appointment`` job per (appointment, coverage) queued in one statement batch. The
  job key holds the appointment, coverage and sweep day: a sweep run twice queues nothing new,
  and the same appointment is checked again on its day.
- ``eligibility-appointment``: the stored ``Coverage/$eligibility-request`` for the visit's
  discipline, sent by the ``check-eligibility`` job (``app.payers.eligibility``).
- ``eligibility-refresh``: the same for a Coverage whose answer was stale when a claim used it.
- ``eligibility-answer`` (queued by a store observer on every stored answer): an
  ``eligibility-problem`` Task when the coverage is inactive or unknown, a ``visit-limit-low``
  Task (one per answer and discipline) when few visits remain.
"""
from __future__ import annotations

import logging
import uuid
from datetime import date, timedelta
from typing import Any

import orjson

from app import directory
from app.claims.eligibility_use import POLICY, open_visit_limit_task
from app.fhir.extract import reference_target
from app.fhir.queries import find_all, find_resources
from app.fhir.store import Reader, Store, Unit, Version
from app.fhir.tasks import task_input, work_item
from app.jobs import enqueue, schedule_daily
from app.outbox import QueuedJob, insert_jobs
from app.payers import eligibility
from app.payers.runtime import runtime
from fhir_mappings.eligibility import build_eligibility_request
from fhir_mappings.tables import discipline_category_codes, disciplines, load_json
from fhir_mappings.vocabulary import ELIGIBILITY_TRACE, SERVER_NAMESPACE, stable_id

log = logging.getLogger("therabridge.payers")

SWEEP = "eligibility-sweep"
APPOINTMENT = "eligibility-appointment"
ANSWER = "eligibility-answer"
DEFAULT_DISCIPLINE = "PT"
PAGE = 1000


def start_schedule(unit: Unit) -> None:
    """Make sure the tenant's daily sweep runs (idempotent per day); today's runs at once."""
    day = unit.now.date().isoformat()
    enqueue(unit, SWEEP, {"day": day}, dedupe_key=f"{SWEEP}@{day}")


def ensure_schedules(store: Store) -> int:
    """Queue today's sweep for every tenant with a payer connection (at start-up: a tenant whose
    connections predate the sweep, or whose chain of daily jobs was cut, gets it back; a sweep
    already queued or run today is not queued again). How many tenants were looked at."""
    tenants = sorted({link.tenant_id for link in directory.list_connections(store.engine)})
    for tenant in tenants:
        with store.for_tenant(tenant, actor="scheduler").unit() as unit:
            start_schedule(unit)
    return len(tenants)


def run_sweep(unit: Unit, payload: dict[str, Any]) -> None:
    """Queue the checks of the day's sweep, then the next day's sweep at midnight UTC."""
    day = date.fromisoformat(payload["day"])
    queue_checks(unit, day)
    schedule_daily(unit, SWEEP, day + timedelta(days=1))


def booked_on(reader: Reader, days: list[date]) -> list[dict[str, Any]]:
    """Booked Appointments starting on ``days``: one indexed date search per day, every page."""
    return [a for day in sorted(set(days)) for a in find_all(reader, "Appointment", [("date", day.isoformat()),
                                                                                    ("status", "booked")], PAGE)]


def _patient(appointment: dict[str, Any]) -> str | None:
    for p in appointment.get("participant") or []:
        target = reference_target((p.get("actor") or {}).get("reference") or "")
        if target and target[0] == "Patient":
            return target[1]
    return None


def discipline_of(appointment: dict[str, Any]) -> str:
    """The therapy discipline the visit is booked for (serviceType or specialty, by the
    discipline codes the record uses, or the X12 service type), else PT."""
    by_category = discipline_category_codes()
    by_service_type = {d.service_type: d.code for d in disciplines().values()}
    for concept in [*(appointment.get("serviceType") or []), *(appointment.get("specialty") or [])]:
        for c in concept.get("coding") or []:
            found = by_category.get((c.get("system"), c.get("code"))) or by_service_type.get(c.get("code") or "")
            if found:
                return found
    return DEFAULT_DISCIPLINE


def queue_checks(unit: Unit, day: date) -> int:
    """One check job per booked appointment on ``day`` and ``eligibility_days_ahead`` later and
    each active Coverage of its patient; how many were new."""
    ahead = runtime().settings.eligibility_days_ahead
    appointments = booked_on(unit, [day, day + timedelta(days=ahead)])
    patients = sorted({p for a in appointments if (p := _patient(a))})
    coverages: dict[str, list[str]] = {}
    for i in range(0, len(patients), 200):  # one search per 200 patients, not one per appointment
        refs = ",".join(f"Patient/{p}" for p in patients[i:i + 200])
        for cov in find_all(unit, "Coverage", [("beneficiary", refs), ("status", "active")]):
            target = reference_target((cov.get("beneficiary") or {}).get("reference") or "")
            if target:
                coverages.setdefault(target[1], []).append(cov["id"])
    jobs = []
    for a in appointments:
        pid = _patient(a)
        serviced = str(a.get("start") or day.isoformat())[:10]
        for cov in sorted(coverages.get(pid or "", [])):
            jobs.append(QueuedJob(APPOINTMENT, {"appointment": a["id"], "coverage": cov, "serviced": serviced,
                                                "discipline": discipline_of(a)},
                                  f"{APPOINTMENT}:{a['id']}:{cov}@{day.isoformat()}"))
    return insert_jobs(unit.conn, unit.tenant_id, unit.now, jobs)


def ask_many(unit: Unit, asks: list[tuple[str, date, str]]) -> int:
    """Store one eligibility request per (coverage, day of service, discipline) and queue its
    sending (the ``check-eligibility`` job); how many were asked. Coverages and patients are read
    in one statement each, the practice and payer connections once: a sweep's thousands of checks
    cost a few reads and one write each. A coverage without a payer connection, or a practice
    with several billing organizations, is skipped (nothing stored): there is no one to ask."""
    coverages = unit.current_many(sorted({("Coverage", c) for c, _, _ in asks}))
    covs = {k[1]: v.resource() for k, v in coverages.items() if not v.deleted}
    wanted = sorted({t for c in covs.values() if (t := reference_target((c.get("beneficiary") or {}).get("reference") or ""))
                     and t[0] == "Patient"})
    patients = {k[1]: v.resource() for k, v in unit.current_many(wanted).items() if not v.deleted}
    practices = find_resources(unit, "Organization", [("type", "prov")])
    if len(practices) != 1:
        log.info("eligibility checks skipped: the practice has %s billing organizations", len(practices))
        return 0
    provider = {"reference": f"Organization/{practices[0]['id']}"}
    links: dict[str, Any] = {}
    asked = 0
    for coverage_id, serviced, discipline in asks:
        cov = covs.get(coverage_id)
        target = reference_target(((cov or {}).get("beneficiary") or {}).get("reference") or "")
        patient = patients.get(target[1]) if target else None
        insurer = ((cov or {}).get("payor") or [None])[0]
        if cov is None or patient is None or insurer is None:
            continue
        key = orjson.dumps(insurer).decode()
        if key not in links:
            links[key] = directory.for_insurer(unit.conn, unit.tenant_id, insurer)
        if links[key] is None:
            continue
        rid = str(uuid.uuid4())
        try:
            request = build_eligibility_request(cov, patient, request_id=rid, created=unit.now, serviced_date=serviced,
                                                discipline=discipline, provider_ref=provider)
        except ValueError:
            continue
        request["identifier"] = [{"system": ELIGIBILITY_TRACE, "value": uuid.uuid4().hex[:20].upper()}]
        unit.create(request, rid=rid)
        eligibility.queue(unit, rid)
        asked += 1
    return asked


def run_appointments(unit: Unit, payloads: list[dict[str, Any]]) -> None:
    """The checks of a sweep (batch handler: the due ones run together)."""
    ask_many(unit, [(p["coverage"], date.fromisoformat(p["serviced"]), p["discipline"]) for p in payloads])


def run_appointment(unit: Unit, payload: dict[str, Any]) -> None:
    run_appointments(unit, [payload])


def run_refresh(unit: Unit, payload: dict[str, Any]) -> None:
    """Ask again for a Coverage whose answer was stale when a claim relied on it."""
    ask_many(unit, [(payload["coverage"], date.fromisoformat(payload["day"]),
                     payload.get("discipline") or DEFAULT_DISCIPLINE)])


def on_write(unit: Unit | None, new: Version, previous: Version | None) -> list[QueuedJob]:
    """Store observer: every stored eligibility answer is read for work items."""
    if new.type != "CoverageEligibilityResponse" or new.deleted:
        return []
    return [QueuedJob(ANSWER, {"response": new.id}, f"{ANSWER}:{new.id}@{new.version_id}")]


def run_answer(unit: Unit, payload: dict[str, Any]) -> None:
    """Open the work items an answer calls for (each once: ids derived from the answer)."""
    current = unit.current("CoverageEligibilityResponse", payload["response"])
    if current is None or current.deleted:
        return
    res = current.resource()
    for ins in res.get("insurance") or [{}]:
        target = reference_target((ins.get("coverage") or {}).get("reference") or "")
        if not target or target[0] != "Coverage":
            continue
        problem = _problem(res, ins)
        if problem:
            _eligibility_problem(unit, res, target[1], problem)
        by_service_type = {d.service_type: d.code for d in disciplines().values()}
        for item in ins.get("item") or []:
            st = next((c.get("code") for c in (item.get("category") or {}).get("coding") or []), None)
            limit = _visits(item)
            if st in by_service_type and limit is not None:
                allowed, used = limit
                if 0 <= allowed - used <= POLICY.visits_low:
                    open_visit_limit_task(unit, res["id"], target[1], res.get("patient"), by_service_type[st],
                                          allowed, used, allowed - used, unit.now)


def _problem(res: dict[str, Any], ins: dict[str, Any]) -> str | None:
    if res.get("outcome") == "error":
        unknown = set(load_json("eligibility_answers.json")["unknown_member_reject_reasons"])
        codes = {c.get("code") for e in res.get("error") or [] for c in (e.get("code") or {}).get("coding") or []}
        return f"the payer does not know the member (AAA {', '.join(sorted(codes & unknown))})" \
            if codes & unknown else None
    if ins.get("inforce") is False:
        return "the payer reports the coverage inactive"
    return None


def _visits(item: dict[str, Any]) -> tuple[int, int] | None:
    allowed = used = remaining = None
    for b in item.get("benefit") or []:
        code = next((c.get("code") for c in (b.get("type") or {}).get("coding") or []), None)
        if code == "visit" and b.get("allowedUnsignedInt") is not None:
            allowed, used = int(b["allowedUnsignedInt"]), b.get("usedUnsignedInt")
        elif code == "visit-remaining" and b.get("allowedUnsignedInt") is not None:
            remaining = int(b["allowedUnsignedInt"])
    if allowed is None:
        return None
    return allowed, int(used) if used is not None else (allowed - remaining if remaining is not None else 0)


def _eligibility_problem(unit: Unit, res: dict[str, Any], coverage_id: str, problem: str) -> None:
    tid = stable_id(SERVER_NAMESPACE, "eligibility-problem", res["id"])
    if unit.current("Task", tid) is not None:
        return
    task = work_item("eligibility-problem", "Coverage not in force",
                     f"CoverageEligibilityResponse/{res['id']} of {res.get('created')}: {problem}. Confirm the "
                     f"patient's insurance before the visit and update Coverage/{coverage_id}.", unit.now,
                     focus=f"Coverage/{coverage_id}", patient=res.get("patient"), task_id=tid, priority="urgent",
                     inputs=[task_input("eligibility-response", valueReference={
                         "reference": f"CoverageEligibilityResponse/{res['id']}"}),
                         task_input("created", valueString=str(res.get("created")))])
    unit.update("Task", tid, task)
