"""Generate claims without a call: when an Encounter becomes ``finished`` (or a Procedure of a
finished Encounter changes), a ``generate-claim`` job is queued with the write (a store observer).

An encounter that cannot be billed as recorded is a business answer, not a transport failure:
the job completes and a biller Task explains why, instead of retrying blindly.
"""
from __future__ import annotations

from typing import Any

import orjson

from app.claims import gather, workflow
from app.fhir.dates import instant
from app.fhir.errors import FhirError
from app.fhir.extract import reference_target
from app.fhir.store import NeedsTransaction, Unit, Version
from app.outbox import QueuedJob

KIND = "generate-claim"


def _status(v: Version | None) -> str | None:
    return orjson.loads(v.content).get("status") if v and v.content else None


def _generate(new: Version, encounter_id: str) -> list[QueuedJob]:
    # One job per encounter per transaction: a Bundle with the Encounter and its Procedures
    # queues a single regeneration (every write of a transaction has the same timestamp).
    return [QueuedJob(KIND, {"encounter": encounter_id},
                      dedupe_key=f"{KIND}:Encounter/{encounter_id}@{instant(new.last_updated)}")]


def on_write(unit: Unit | None, new: Version, previous: Version | None) -> list[QueuedJob]:
    """Store observer: the claim generation a write of an Encounter or Procedure calls for."""
    if new.type == "Encounter":
        if _status(new) == "finished" and _status(previous) != "finished":
            return _generate(new, new.id)
    elif new.type == "Procedure":
        target = reference_target((new.parsed.get("encounter") or {}).get("reference", ""))
        if target and target[0] == "Encounter":
            if unit is None:
                raise NeedsTransaction  # whether the Encounter is finished is in the database
            enc = unit.current("Encounter", target[1])
            if enc and not enc.deleted and _status(enc) == "finished":
                return _generate(new, target[1])
    return []


def run_generate(unit: Unit, payload: dict[str, Any]) -> None:
    encounter_id = payload["encounter"]
    try:
        workflow.generate_claim(unit, encounter_id, profile=payload.get("profile"), now=unit.now)
    except FhirError as err:
        if err.status not in (404, 410, 422):
            raise
        workflow.unbillable_task(unit, encounter_id, err, unit.now)


def run_generate_many(unit: Unit, payloads: list[dict[str, Any]]) -> None:
    """The visits finished since the last round, one transaction (and one commit) for all.
    Visits are taken in one order (each generation locks its visit until commit), so two
    workers' batches never wait on each other in a circle; they are locked all at once first."""
    payloads = sorted(payloads, key=lambda p: p["encounter"])
    unit.lock_many([workflow.generation_lock(p["encounter"]) for p in payloads])
    gather.prefetch_visits(unit, [p["encounter"] for p in payloads])
    for payload in payloads:
        run_generate(unit, payload)
