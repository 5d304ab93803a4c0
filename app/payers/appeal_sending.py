"""Sending an appeal and following it up: to a payer's FHIR API by jobs (``send-appeal`` files the
Communication, ``appeal-follow-up`` asks for the decision), or by a person, whose completed
``appeal-send`` Task records the day it went out (``appeal-mailed``). See ``appeals``.
"""
from __future__ import annotations

import base64
from datetime import timedelta
from typing import Any

import orjson

from app import directory
from app.fhir.dates import instant
from app.fhir.store import NeedsTransaction, TenantStore, Unit, Version
from app.jobs import enqueue
from app.outbox import QueuedJob
from app.payers import appeal_outcomes as track, posting
from app.payers.appeal_package import APPEAL_CATEGORY, read
from app.payers.calls import call_payer
from app.payers.outcomes import biller_task, issues_text
from app.payers.packages import claim_package
from fhir_mappings import identifiers
from fhir_mappings.vocabulary import SID, TASK_CODE
from payer_adapters.errors import PayerRejection

SEND = "send-appeal"
FOLLOW_UP = "appeal-follow-up"
MAILED = "appeal-mailed"
SEND_TASK = "appeal-send"
APPEAL_ID = f"{SID}appeal"
FOLLOW_UP_DELAY = timedelta(minutes=5)


def queue_send(unit: Unit, claim_id: str, task_id: str, letter_id: str) -> None:
    """The ``send-appeal`` job of one appeal (once per letter)."""
    enqueue(unit, SEND, {"claim": claim_id, "task": task_id, "letter": letter_id}, dedupe_key=f"{SEND}:{letter_id}")


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
        claim = read(reader, f"Claim/{payload['claim']}")
        task = read(reader, f"Task/{payload['task']}")
        letter = read(reader, f"DocumentReference/{payload['letter']}")
        if claim is None or task is None or letter is None or not track.pending(task):
            return
        link = directory.for_insurer(reader.conn, ts.tenant_id, claim.get("insurer"))
        enclosures = [r for ref in (letter.get("context") or {}).get("related") or []
                      if not str(ref.get("reference", "")).startswith("Claim/") and (r := read(reader, ref))]
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
        claim = read(reader, f"Claim/{payload['claim']}")
        task = read(reader, f"Task/{payload['task']}")
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
    task = new.parsed
    if task.get("status") != "completed" or not any(
            c.get("system") == TASK_CODE and c.get("code") == SEND_TASK for c in (task.get("code") or {}).get("coding") or []):
        return []
    if previous is not None and previous.content and previous.parsed.get("status") == "completed":
        return []
    if unit is None:
        raise NeedsTransaction
    return [QueuedJob(MAILED, {"task": new.id}, dedupe_key=f"{MAILED}:{new.id}")]


def run_mailed(unit: Unit, payload: dict[str, Any]) -> None:
    """``appeal-mailed``: the denial Task records when the appeal went out."""
    send = read(unit, f"Task/{payload['task']}")
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
