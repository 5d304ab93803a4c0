"""A/R worklists: work items (``Task``) ranked by how urgent they are, and what a biller does
with one (assign, note, close).

The urgency is a number on the Task, ``priority-score`` (extension ``task-priority-score``),
so a worklist is a plain search: ``Task?status=requested&category=…&_sort=-priority-score``.
The formula and its constants are data (``data/worklists.json``): the amount at stake, grown
with the item's age and with the nearness of its deadline. Age and days left change every day,
so a daily sweep (``worklist-sweep``, queued by the first scored Task of the day and then
re-queuing itself while any scored item is open) writes the new scores; a Task written with
its amount gets its score at once.

Assign, note and close are operations rather than client updates of the Task, because the Task
is the server's (its inputs, score and focus are derived from the answers): each changes only
its own elements, through ``Unit.modify``, so a sweep or a posting writing the same Task at the
same time is never overwritten.
"""
from __future__ import annotations

import json
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from functools import cache
from pathlib import Path
from typing import Any

from app.billing.ledger import dec
from app.fhir.dates import instant
from app.fhir.errors import FhirError
from app.fhir.extract import reference_target
from app.fhir.queries import find_all
from app.fhir.store import Unit, Version
from app.jobs import schedule_daily
from app.outbox import QueuedJob
from fhir_mappings.vocabulary import BASE

PRIORITY_SCORE = f"{BASE}/StructureDefinition/task-priority-score"
SWEEP = "worklist-sweep"
SETTINGS = Path(__file__).parent / "data" / "worklists.json"
CENT = Decimal("0.01")


@cache
def settings() -> dict[str, Any]:
    return json.loads(SETTINGS.read_text())


def _input(task: dict[str, Any], name: str) -> dict[str, Any] | None:
    return next((i for i in task.get("input") or [] if (i.get("type") or {}).get("text") == name), None)


def _day(text: str | None) -> date | None:
    try:
        return date.fromisoformat(text[:10]) if text else None
    except ValueError:
        return None


def deadline(task: dict[str, Any]) -> date | None:
    """The last day to act: ``restriction.period.end``, else an input named ``deadline``."""
    end = _day(((task.get("restriction") or {}).get("period") or {}).get("end"))
    return end or _day((_input(task, "deadline") or {}).get("valueDate"))


def score(task: dict[str, Any], today: date) -> Decimal | None:
    """The worklist urgency of ``task`` on ``today`` (formula in ``data/worklists.json``), or None
    for an item without an amount at stake."""
    amount_input = _input(task, "amount")
    if amount_input is None or "valueMoney" not in amount_input:
        return None
    cfg = settings()
    amount = dec((amount_input.get("valueMoney") or {}).get("value"))
    authored = _day(task.get("authoredOn")) or today
    age = max((today - authored).days, 0)
    value = amount * (1 + Decimal(age) / Decimal(cfg["age_scale_days"]))
    end = deadline(task)
    if end is not None:
        left = max((end - today).days, int(cfg["min_days_left"]))
        value = value * Decimal(cfg["deadline_scale_days"]) / Decimal(left)
    return value.quantize(CENT, ROUND_HALF_UP)


def stamp(task: dict[str, Any], today: date) -> bool:
    """Put today's score on ``task`` (an open one); True when it changed."""
    if task.get("status") not in settings()["open_status"]:
        return False
    value = score(task, today)
    kept = [e for e in task.get("extension") or [] if e.get("url") != PRIORITY_SCORE]
    new = kept + ([{"url": PRIORITY_SCORE, "valueDecimal": float(value)}] if value is not None else [])
    if new == (task.get("extension") or []):
        return False
    if new:
        task["extension"] = new
    else:
        task.pop("extension", None)
    return True


# -- the daily sweep ----------------------------------------------------------------------------

def on_write(unit: Unit | None, new: Version, previous: Version | None) -> list[QueuedJob]:
    """Store observer: a scored Task written today makes sure today's sweep runs (it then
    re-queues itself daily while scored items are open)."""
    if new.type != "Task" or not new.content or PRIORITY_SCORE not in new.content:
        return []
    day = new.last_updated.date().isoformat()
    return [QueuedJob(SWEEP, {"day": day}, dedupe_key=f"{SWEEP}@{day}")]


def run_sweep(unit: Unit, payload: dict[str, Any]) -> None:
    """Re-score every open scored item for today; run again tomorrow while there are any."""
    today = unit.now.date()
    items = find_all(unit, "Task", [("status", ",".join(settings()["open_status"])),
                                    ("priority-score:missing", "false")])
    for task in items:
        fresh = dict(task)
        if stamp(fresh, today):
            unit.modify("Task", task["id"], lambda current: stamp(current, today))
    if items:
        schedule_daily(unit, SWEEP)


# -- a biller's actions ---------------------------------------------------------------------------

def _reference(value: str, base: str) -> tuple[str, str]:
    target = reference_target(value, base)
    if target is None:
        raise FhirError(400, "invalid", f"owner must be a reference such as Practitioner/id, not {value!r}",
                        expression=["owner"])
    return target


def _open(task: dict[str, Any], task_id: str) -> None:
    if task.get("status") not in settings()["open_status"]:
        raise FhirError(409, "conflict", f"Task/{task_id} is {task.get('status')}: it is closed",
                        expression=["Task.status"])


def assign(unit: Unit, task_id: str, owner: str, base: str) -> Version:
    """Make ``owner`` (a Practitioner or PractitionerRole of this practice) the Task's owner.
    Someone unknown here — another practice's people are invisible — is refused with 422."""
    rtype, rid = _reference(owner, base)
    if rtype not in settings()["owner_types"]:
        raise FhirError(422, "business-rule", f"A work item is assigned to a {' or '.join(settings()['owner_types'])}, "
                        f"not a {rtype}", expression=["owner"])
    found = unit.current(rtype, rid)
    if found is None or found.deleted:
        raise FhirError(422, "business-rule", f"{rtype}/{rid} is not known in this practice", expression=["owner"])
    _open(unit.read("Task", task_id).resource(), task_id)

    def change(task: dict[str, Any]) -> bool:
        _open(task, task_id)
        task["owner"] = {"reference": f"{rtype}/{rid}"}
        task["lastModified"] = instant(unit.now)
        return True

    return _written(unit, task_id, change)


def add_note(unit: Unit, task_id: str, text: str, author: str | None) -> Version:
    """Append a note (``Task.note``) written now by ``author`` (the caller's fhirUser or client)."""
    text = (text or "").strip()
    if not text:
        raise FhirError(400, "required", "Give the note's text (text=…)", expression=["text"])
    if len(text) > int(settings()["max_note_length"]):
        raise FhirError(400, "invalid", f"A note holds at most {settings()['max_note_length']} characters",
                        expression=["text"])
    note: dict[str, Any] = {"time": instant(unit.now), "text": text}
    if author and "/" in author:
        note["authorReference"] = {"reference": author}
    elif author:
        note["authorString"] = author

    def change(task: dict[str, Any]) -> bool:
        task["note"] = [*(task.get("note") or []), note]
        task["lastModified"] = instant(unit.now)
        return True

    return _written(unit, task_id, change)


def close(unit: Unit, task_id: str, status: str, outcome: str | None, reason: str | None) -> Version:
    """Close the item: ``status`` completed or cancelled, ``outcome`` as its businessStatus
    (``written-off`` takes a denied claim out of the A/R aging) and ``reason`` as statusReason."""
    if status not in settings()["close_status"]:
        raise FhirError(400, "invalid", f"status must be one of {', '.join(settings()['close_status'])}, not {status!r}",
                        expression=["status"])
    for name, value in (("outcome", outcome), ("reason", reason)):
        if value is not None and not (0 < len(value.strip()) <= 200):
            raise FhirError(400, "invalid", f"{name} must be 1 to 200 characters", expression=[name])
    _open(unit.read("Task", task_id).resource(), task_id)

    def change(task: dict[str, Any]) -> bool:
        _open(task, task_id)
        task["status"] = status
        if outcome:
            task["businessStatus"] = {"text": outcome.strip()}
        if reason:
            task["statusReason"] = {"text": reason.strip()}
        task["lastModified"] = instant(unit.now)
        return True

    return _written(unit, task_id, change)


def _written(unit: Unit, task_id: str, change: Any) -> Version:
    result = unit.modify("Task", task_id, change)
    return result.version if result is not None else unit.read("Task", task_id)
