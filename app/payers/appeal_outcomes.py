"""How an appeal is tracked on the claim's ``denial`` Task, and what the payer's answer to it
records there.

An appeal adds named ``output`` entries to the denial Task (``type.text`` names them, as
``input`` is named): ``appeal-letter`` (the letter's DocumentReference), ``appeal-status``
(``pending`` until the payer answers, then ``decided``; ``refused`` when the payer would not
file it), ``appeal-of`` (the payer's claim number the appeal disputes), ``appeal-sent`` (when it
went out), and, once decided, ``appeal-outcome``: ``overturned``, ``partially-overturned`` or
``upheld``. While an appeal is pending the Task's ``businessStatus`` is ``appealed``.

The answer is whatever the payer sends after processing the claim again — an 835 (a reversal of
the decision that stood and a new adjudication under a new claim number) or a ClaimResponse —
posted the usual way. Posting first lets ``denials`` close the Task when the claim is now paid
(``resolve``) or refresh it when something is still denied; ``settle`` then reads what happened:
closed means overturned (the claim's lifecycle, held at ``denied`` by its rank, is moved to the
paid state), still open means upheld (or partly overturned when something was paid) and the Task
stays open for the next level. An answer under the claim number the appeal disputed is the old
decision told again, not the appeal's answer, and settles nothing.
"""
from __future__ import annotations

from datetime import date, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

import orjson

from app.claims.lifecycle import advance, lifecycle_rank_of, rank
from app.fhir.dates import instant
from app.fhir.queries import find_resources
from app.fhir.store import Unit
from app.fhir.tasks import is_open
from fhir_mappings.vocabulary import TASK_CODE

DENIAL = "denial"
LETTER, STATUS, OF, SENT, OUTCOME = "appeal-letter", "appeal-status", "appeal-of", "appeal-sent", "appeal-outcome"
LEVEL = "appeal-level"
PAID_STATES = ("paid", "partially-paid")


@lru_cache(maxsize=1)
def _levels() -> dict[str, Any]:
    return orjson.loads((Path(__file__).parent / "data" / "appeal_arguments.json").read_bytes())["next_level"]


def next_level(level: str) -> tuple[str, int]:
    """The level after ``level`` was upheld, and the days to file it (``data/appeal_arguments.json``)."""
    found = _levels().get(level) or _levels()["default"]
    return str(found["level"]), int(found["days"])


def output(name: str, **value: Any) -> dict[str, Any]:
    """One Task output named ``name`` with one ``value[x]``."""
    return {"type": {"text": name}, **value}


def outputs(task: dict[str, Any], name: str) -> list[dict[str, Any]]:
    return [o for o in task.get("output") or [] if (o.get("type") or {}).get("text") == name]


def last_value(task: dict[str, Any], name: str) -> Any:
    found = outputs(task, name)
    return next((v for k, v in found[-1].items() if k.startswith("value")), None) if found else None


def pending(task: dict[str, Any]) -> bool:
    """Whether an appeal of this denial waits for the payer's answer."""
    return last_value(task, STATUS) == "pending"


def set_status(task: dict[str, Any], status: str) -> None:
    """The current appeal's status (one ``appeal-status`` output per appeal: the last is replaced)."""
    found = outputs(task, STATUS)
    if found:
        found[-1].clear()
        found[-1].update(output(STATUS, valueCode=status))
    else:
        task.setdefault("output", []).append(output(STATUS, valueCode=status))


def appealed(unit: Unit, claim_id: str) -> list[dict[str, Any]]:
    """The claim's denial Tasks (open or closed) with an appeal pending."""
    found = find_resources(unit, "Task", [("focus", f"Claim/{claim_id}"), ("code", f"{TASK_CODE}|{DENIAL}")])
    return [t for t in found if pending(t)]


def settle(unit: Unit, claim: dict[str, Any], state: str | None, payer_number: str | None,
           decided: str | None = None) -> None:
    """Record the outcome of the claim's pending appeal after the payer's answer was posted
    (``state``: the paid state that answer gives the claim, ``decided`` its date; see the module
    docstring). An upheld appeal's Task gets the next level's deadline. ``claim``
    is the claim as it was before the answer: one not adjudicated before has no appeal to answer,
    so a first adjudication costs no search."""
    if lifecycle_rank_of(claim) < rank("paid"):
        return
    for task in appealed(unit, claim["id"]):
        disputed = last_value(task, OF)
        if payer_number and disputed and payer_number == disputed:
            continue
        if not is_open(task):
            outcome = "overturned"
        elif state in PAID_STATES:
            outcome = "partially-overturned"
        else:
            outcome = "upheld"

        def record(t: dict[str, Any], outcome: str = outcome) -> bool:
            if not pending(t):
                return False
            set_status(t, "decided")
            t["output"].append(output(OUTCOME, valueCode=outcome))
            t["businessStatus"] = {"text": outcome if outcome != "upheld" else "appeal-upheld"}
            t["lastModified"] = instant(unit.now)
            if is_open(t):  # the next level may be asked for, within its own limit
                level, days = next_level(str(last_value(t, LEVEL) or ""))
                end = (_day(decided) or unit.now.date()) + timedelta(days=days)
                t["restriction"] = {"period": {"end": end.isoformat()}}
                t["output"].append(output("appeal-next-level", valueString=level))
            return True

        unit.modify("Task", task["id"], record)
        if outcome != "upheld" and state in PAID_STATES:
            def paid(c: dict[str, Any], state: str = state) -> bool:
                return advance(c, state, unit.now, force=True)

            unit.modify("Claim", claim["id"], paid)


def _day(value: str | None) -> date | None:
    try:
        return date.fromisoformat(value[:10]) if value else None
    except ValueError:
        return None
