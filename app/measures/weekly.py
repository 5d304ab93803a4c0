"""Weekly KPI reports: every KPI of a practice for an ISO week, stored as ``MeasureReport``s,
and a one-page PDF summary stored as a ``DocumentReference``.

Stored so that trends need no recomputation: ``GET /fhir/MeasureReport?measure=<canonical>&
period=ge2026-01-01&_sort=period`` reads them back. Each report is exactly what
``$evaluate-measure`` gives for Monday..Sunday of the week (``app.measures.evaluate``); its id is
derived from tenant, measure and week, so a rerun finds it. A rerun writes nothing when the
figures are the same, and a new version when late postings changed them (the history keeps the
earlier figures). The same holds for the PDF, which is rendered without timestamps.

The ``measures-weekly`` job runs each Monday (00:00 UTC) for the week that just ended and queues
the next one; a practice's first new claim queues its first (``on_write``). ``therabridge
measures weekly --tenant … [--week YYYY-Www]`` runs a week on demand.
"""
from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from typing import Any

import orjson
import sqlalchemy as sa

from app.fhir.errors import FhirError
from app.fhir.store import Store, Unit, Version
from app.jobs import enqueue
from app.measures import definitions
from app.measures.evaluate import evaluate
from app.measures.tables import CLAIM
from app.measures.weekly_pdf import KpiLine, render
from app.outbox import QueuedJob
from fhir_mappings.vocabulary import BASE, SERVER_NAMESPACE, stable_id

JOB = "measures-weekly"
WEEK = re.compile(r"^(\d{4})-W(\d{2})$")
DOCUMENT_TYPE = {"coding": [{"system": f"{BASE}/CodeSystem/document-type", "code": "weekly-kpi-summary",
                             "display": "Weekly KPI summary"}], "text": "Weekly KPI summary"}
# Elements of a report that say when it was made, not what it found: a rerun ignores them.
_VOLATILE = ("date", "meta", "id")


@dataclass
class WeekResult:
    week: str
    start: date
    end: date
    reports: dict[str, str] = field(default_factory=dict)  # measure id -> MeasureReport id
    written: list[str] = field(default_factory=list)  # "MeasureReport/…", "DocumentReference/…" changed
    document: str = ""

    def as_json(self) -> dict[str, Any]:
        return {"week": self.week, "start": self.start.isoformat(), "end": self.end.isoformat(),
                "reports": {k: f"MeasureReport/{v}" for k, v in self.reports.items()},
                "document": f"DocumentReference/{self.document}", "written": self.written}


def parse_week(text: str) -> tuple[date, date]:
    """Monday and Sunday of ISO week ``YYYY-Www``; 400 naming ``week`` otherwise."""
    m = WEEK.match(text or "")
    try:
        if m is None:
            raise ValueError(text)
        monday = date.fromisocalendar(int(m.group(1)), int(m.group(2)), 1)
    except ValueError:
        raise FhirError(400, "invalid", f"week must be an ISO week YYYY-Www (e.g. 2026-W05), not {text!r}",
                        expression=["week"]) from None
    return monday, monday + timedelta(days=6)


def week_of(day: date) -> str:
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}"


def previous_week(week: str) -> str:
    return week_of(parse_week(week)[0] - timedelta(days=7))


def report_id(tenant: str, measure_id: str, week: str) -> str:
    return stable_id(SERVER_NAMESPACE, "weekly-measure-report", tenant, measure_id, week)


def document_id(tenant: str, week: str) -> str:
    return stable_id(SERVER_NAMESPACE, "weekly-kpi-summary", tenant, week)


def _same(stored: Version | None, fresh: dict[str, Any]) -> bool:
    if stored is None or stored.deleted:
        return False
    old = {k: v for k, v in stored.resource().items() if k not in _VOLATILE}
    return old == {k: v for k, v in fresh.items() if k not in _VOLATILE}


def _put(unit: Unit, rtype: str, rid: str, resource: dict[str, Any], result: WeekResult) -> None:
    unit.lock("weekly", rtype, rid)
    current = unit.current(rtype, rid)
    if _same(current, resource):
        return
    unit.update(rtype, rid, resource, fresh_id=current is None)
    result.written.append(f"{rtype}/{rid}")


def run_week(unit: Unit, week: str) -> WeekResult:
    """Store the week's MeasureReports (one per KPI) and its PDF summary; idempotent."""
    start, end = parse_week(week)
    result = WeekResult(week, start, end)
    lines = []
    for mid in definitions.ids():
        report = evaluate(unit, mid, start, end, "population")
        rid = report_id(unit.tenant_id, mid, week)
        report["id"] = rid
        _put(unit, "MeasureReport", rid, report, result)
        result.reports[mid] = rid
        lines.append(KpiLine(definitions.spec(mid)["title"], definitions.spec(mid).get("unit", ""),
                             _score(report), _score(_previous(unit, mid, week)),
                             definitions.measure(mid)["improvementNotation"]["coding"][0]["code"]))
    body = render(practice=_practice_name(unit), week=week, start=start, end=end, lines=lines)
    did = document_id(unit.tenant_id, week)
    document = {
        "resourceType": "DocumentReference", "id": did, "status": "current", "docStatus": "final",
        "type": DOCUMENT_TYPE, "date": _instant(unit.now),
        "description": f"Weekly KPI summary, {week} ({start.isoformat()} to {end.isoformat()})",
        "content": [{"attachment": {
            "contentType": "application/pdf", "data": base64.b64encode(body).decode(), "size": len(body),
            "hash": base64.b64encode(hashlib.sha1(body).digest()).decode(),
            "title": f"kpi-summary-{week}.pdf"}}],
        "context": {"period": {"start": start.isoformat(), "end": end.isoformat()},
                    "related": [{"reference": f"MeasureReport/{rid}"} for rid in result.reports.values()]},
    }
    _put(unit, "DocumentReference", did, document, result)
    result.document = did
    return result


def _previous(unit: Unit, mid: str, week: str) -> dict[str, Any] | None:
    """Last week's stored report, else last week evaluated now (not stored)."""
    prior = previous_week(week)
    stored = unit.current("MeasureReport", report_id(unit.tenant_id, mid, prior))
    if stored is not None and not stored.deleted:
        return stored.resource()
    start, end = parse_week(prior)
    return evaluate(unit, mid, start, end, "population")


def _score(report: dict[str, Any] | None) -> float | None:
    groups = (report or {}).get("group") or []
    score = groups[0].get("measureScore") if groups else None
    return None if score is None else float(score["value"])


def _practice_name(unit: Unit) -> str:
    from app.db import Tenant

    table = Tenant.__table__  # type: ignore[attr-defined]
    name = unit.conn.execute(sa.select(table.c.name).where(table.c.id == unit.tenant_id)).scalar()
    return name or unit.tenant_id


def _instant(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


# -- the weekly job -------------------------------------------------------------------------

def _due(week: str) -> datetime:
    """The Monday after the week, 00:00 UTC."""
    sunday = parse_week(week)[1]
    return datetime.combine(sunday + timedelta(days=1), time(0), tzinfo=timezone.utc)


def _job(week: str) -> QueuedJob:
    return QueuedJob(JOB, {"week": week}, dedupe_key=f"{JOB}@{week}", run_after=_due(week))


def schedule_weekly(unit: Unit, week: str) -> bool:
    """Queue the report of ``week`` for the Monday after it (once per tenant and week)."""
    job = _job(week)
    return enqueue(unit, job.kind, job.payload, dedupe_key=job.dedupe_key, run_after=job.run_after)


def run_job(unit: Unit, payload: dict[str, Any]) -> None:
    """The job: report the week in the payload, then queue the next week's."""
    week = str(payload.get("week") or week_of(unit.now.date() - timedelta(days=7)))
    run_week(unit, week)
    schedule_weekly(unit, week_of(parse_week(week)[0] + timedelta(days=7)))


def ensure_schedules(store: Store) -> int:
    """Queue this week's report for every practice with claims (at start-up: practices whose
    claims predate the weekly reports, or whose chain of jobs was cut, get it back; a week
    already queued is not queued again). How many practices were looked at."""
    with store.engine.connect() as conn:
        tenants = list(conn.execute(sa.select(CLAIM.c.tenant_id).distinct().order_by(CLAIM.c.tenant_id)).scalars())
    for tenant in tenants:
        with store.for_tenant(tenant, actor="scheduler").unit() as unit:
            schedule_weekly(unit, week_of(unit.now.date()))
    return len(tenants)


def on_write(unit: Unit | None, new: Version, previous: Version | None) -> list[QueuedJob]:
    """Store observer: a new Claim makes sure the practice's weekly report of this week is queued
    (the job then queues each following week itself)."""
    if new.type != "Claim" or previous is not None or not new.content:
        return []
    return [_job(week_of(new.last_updated.date()))]


def guard(unit: Unit, incoming: dict[str, Any] | None, current: Version | None) -> dict[str, Any] | None:
    """Clients do not write MeasureReports: they are the server's stored evaluations."""
    raise FhirError(422, "business-rule", "MeasureReports are stored by the server (the weekly KPI reports); "
                    "evaluate a KPI with Measure/{id}/$evaluate-measure", expression=["MeasureReport"])


def report_json(result: WeekResult) -> str:
    return orjson.dumps(result.as_json(), option=orjson.OPT_INDENT_2).decode()
