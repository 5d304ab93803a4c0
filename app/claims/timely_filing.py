"""Timely filing: each claim's filing deadline, the work items that warn of it, and the refusal
to send a claim after it.

The deadline counts from the claim's first date of service: the payer connection's
timely-filing days (a contract term) when it has them, else the limit of its profile (months or
days, ``fhir_mappings/data/profiles.json``), else of the default profile
(``data/timely_filing.json``). A daily sweep (scheduled like the authorization sweep, through
``jobs.schedule_daily``) looks at every active claim not yet with the payer (draft,
clean, queued) or rejected — a rejection does not stop the clock — and opens one
``timely-filing`` Task per claim and threshold reached (30, 14, 7 days before), once; a claim
past its deadline gets a last Task (``asap``) and is never sent: ``refuse_late`` stops
``$submit`` and the payer's auto-submit leaves it alone.
"""
from __future__ import annotations

import calendar
import json
from datetime import date, timedelta
from functools import cache
from pathlib import Path
from typing import Any

from app import directory
from app.claims.by_lifecycle import claims_with_lifecycle
from app.fhir.errors import FhirError
from app.fhir.store import Reader, Unit, Version
from app.fhir.tasks import task_input, work_item
from app.outbox import QueuedJob
from app.jobs import schedule_daily
from fhir_mappings.profiles import get_profile
from fhir_mappings.vocabulary import SERVER_NAMESPACE, stable_id

SWEEP = "timely-filing-sweep"
TASK_CODE = "timely-filing"
PAST = "past"
SETTINGS = Path(__file__).parent / "data" / "timely_filing.json"


@cache
def settings() -> dict[str, Any]:
    return json.loads(SETTINGS.read_text())


def first_service_day(claim: dict[str, Any]) -> date | None:
    """The claim's earliest date of service (its lines, else its billable period)."""
    days = [(it.get("servicedDate") or (it.get("servicedPeriod") or {}).get("start") or "")[:10]
            for it in claim.get("item") or []]
    days = [d for d in days if d] or [d for d in [((claim.get("billablePeriod") or {}).get("start") or "")[:10]] if d]
    return min(date.fromisoformat(d) for d in days) if days else None


def _add_months(day: date, months: int) -> date:
    """``day`` plus whole months, kept within the month (29 Feb runs to 28 Feb)."""
    y, m = divmod(day.month - 1 + months, 12)
    year, month = day.year + y, m + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def deadline(reader: Reader, claim: dict[str, Any]) -> date | None:
    """The last day the payer takes the claim, or None (no date of service, no limit known)."""
    first = first_service_day(claim)
    if first is None:
        return None
    link = directory.for_insurer_in(reader, claim.get("insurer"))
    if link is not None and link.timely_filing_days:
        return first + timedelta(days=link.timely_filing_days)
    try:
        profile = get_profile((link.profile if link is not None else None) or settings()["default_profile"])
    except KeyError:
        profile = get_profile(settings()["default_profile"])
    if profile.timely_filing_months:
        return _add_months(first, profile.timely_filing_months)
    if profile.timely_filing_days:
        return first + timedelta(days=profile.timely_filing_days)
    return None


def is_late(reader: Reader, claim: dict[str, Any], today: date) -> date | None:
    """The passed deadline when ``today`` is after it, else None."""
    end = deadline(reader, claim)
    return end if end is not None and today > end else None


def refuse_late(reader: Reader, claim: dict[str, Any], today: date) -> None:
    """422 for a claim past its filing deadline: sent now it would only be denied (CARC 29)."""
    end = is_late(reader, claim, today)
    if end is not None:
        raise FhirError(422, "business-rule", f"The filing limit for this claim ended on {end} (counted from the first "
                        f"date of service {first_service_day(claim)}); it is not sent. Send it only with proof of "
                        "timely filing or an exception the payer accepts, as a new claim.",
                        expression=["Claim.item.servicedDate"])


# -- the daily sweep ----------------------------------------------------------------------
def on_write(unit: Unit | None, new: Version, previous: Version | None) -> list[QueuedJob]:
    """Store observer: a new Claim makes sure today's sweep runs (it then schedules itself daily)."""
    if new.type != "Claim" or previous is not None or not new.content:
        return []
    day = new.last_updated.date().isoformat()
    return [QueuedJob(SWEEP, {"day": day}, dedupe_key=f"{SWEEP}@{day}")]


def run_sweep(unit: Unit, payload: dict[str, Any]) -> None:
    """Warn about every unsent or rejected active claim; run again tomorrow while there are any."""
    today = unit.now.date()
    watched = [c for c in claims_with_lifecycle(unit, settings()["unsent"]) if c.get("status") == "active"]
    for claim in watched:
        warn(unit, claim, today)
    if watched:
        schedule_daily(unit, SWEEP)


def threshold(days_left: int) -> str | None:
    """The warning due with ``days_left`` to the deadline: the nearest threshold reached, or past."""
    if days_left < 0:
        return PAST
    reached = [t for t in settings()["warn_days_before"] if days_left <= t]
    return str(min(reached)) if reached else None


def warn(unit: Unit, claim: dict[str, Any], today: date) -> str | None:
    """Open the claim's Task for the threshold reached today, once: its id, or None."""
    end = deadline(unit, claim)
    if end is None:
        return None
    left = (end - today).days
    key = threshold(left)
    if key is None:
        return None
    task_id = stable_id(SERVER_NAMESPACE, "task", TASK_CODE, claim["id"], key)
    unit.lock("task", task_id)
    if unit.current("Task", task_id) is not None:
        return None  # this threshold's warning was given before
    why = (f"the filing limit ended on {end}; the claim is not sent" if key == PAST
           else f"{left} days left to file: the filing limit ends on {end}")
    task = work_item(TASK_CODE, "File the claim before its deadline",
                     f"Claim/{claim['id']}: {why}.", unit.now, task_id=task_id, focus=f"Claim/{claim['id']}",
                     patient=claim.get("patient"), priority="asap" if key in (PAST, "7") else "urgent",
                     inputs=[task_input("deadline", valueDate=end.isoformat()),
                             task_input("threshold", valueString=key)])
    unit.update("Task", task_id, task, fresh_id=True)
    return task_id
