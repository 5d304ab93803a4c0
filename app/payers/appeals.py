"""Appeals of denied claims: ``Claim/{id}/$appeal`` writes the appeal letter, attaches the
supporting record, sends it (or asks a person to) and tracks it on the claim's ``denial`` Task.

What may be appealed: a claim the payer adjudicated (lifecycle ``denied``, ``partially-paid`` or
``paid`` with a line denied) whose ``denial`` Task is open. Refused with an OperationOutcome and
nothing written: a claim never sent or not adjudicated yet (422), one rejected before
adjudication (422: correct and resubmit instead), one with nothing denied, a paid claim included
(422), a decision the payer's remark code says cannot be appealed (422, ``not_appealable`` in the
data file), an appeal past the denial Task's deadline (422: a late appeal needs good cause the letter
cannot argue for the practice, so it is left to a person), and a second appeal while one waits
for the payer (409). An upheld appeal may be appealed again (the next level) within the deadline.

The letter (``appeal_letter.render``) names the claim, patient, member, dates of service, payer
and the denial codes with their texts, and argues by the denial's category (the data file
``data/appeal_arguments.json``: medical necessity cites the certified plan of care, authorization
the authorization on file, timely filing the first submission and the payer's acknowledgments,
coding and bundling the documentation). It is stored as a ``DocumentReference`` (the PDF inline,
``context.related`` the Claim — with its patient control number — and each enclosure). Enclosures
come from the record: the patient's plan of care (``CarePlan``) covering the dates of service, the
``DocumentReference``s the EHR sent for the claim's encounters (or for the patient, with no
encounter named), and for an authorization denial the authorization ``ClaimResponse``.

Sending, by what the payer connection can do (``Capabilities.appeals``):

* a payer FHIR API: a ``send-appeal`` job posts a ``Communication`` (category ``appeal``, about the
  Claim, the letter and every enclosure as attachments) through the adapter; then an
  ``appeal-follow-up`` job asks the payer (``$inquire``, growing delay) until the claim's new
  adjudication arrives, which is posted as any ClaimResponse.
* every other payer (X12 mailbox, clearinghouse): the package is the letter's DocumentReference
  and the enclosures it lists; an ``appeal-send`` Task asks the biller to mail or upload it by the
  deadline and to complete the Task (``executionPeriod.end``: the day it went out, else the time it
  is completed), which records ``appeal-sent`` on the denial Task. The payer's answer comes as an
  835 like any other.

What the letter says and encloses: ``appeal_package``; sending: ``appeal_sending``; tracking and
outcome: ``appeal_outcomes``.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from app import directory
from app.claims.lifecycle import lifecycle, rank
from app.fhir.dates import instant
from app.fhir.errors import FhirError
from app.fhir.store import Unit, Version
from app.fhir.tasks import task_input, work_item
from app.payers import appeal_letter, appeal_outcomes as track, denials
from app.payers.appeal_package import arguments, enclosures, facts_of, input_codes, letter_document, name_of, view
from app.payers.appeal_sending import SEND_TASK, queue_send
from fhir_mappings.vocabulary import SERVER_NAMESPACE, WORK_ROLE, stable_id
from payer_adapters.registry import capabilities


@dataclass(frozen=True)
class Appeal:
    """What ``$appeal`` wrote: the letter, the denial Task, and the send Task (payers without an
    appeal API), and whether a job sends it to the payer."""

    letter: Version
    task: Version
    send_task: Version | None
    sent_by_api: bool


# -- the operation ------------------------------------------------------------------------------

def appeal(unit: Unit, claim_id: str) -> Appeal:
    """Build the appeal of ``Claim/claim_id`` and send it or ask a person to (module docstring)."""
    claim = unit.read("Claim", claim_id).resource()
    task = _appealable(unit, claim)
    link = directory.for_insurer(unit.conn, unit.tenant_id, claim.get("insurer"))
    if link is None:
        raise FhirError(422, "business-rule", "No payer connection is registered for this claim's insurer",
                        expression=["Claim.insurer"])
    by_api = capabilities(link.kind, link.settings).appeals
    known = facts_of(unit, claim, task)
    enclosed = enclosures(unit, claim, known)
    n = len(track.outputs(task, track.LETTER)) + 1
    letter_id = stable_id(SERVER_NAMESPACE, "appeal-letter", task["id"], str(n))
    pdf = appeal_letter.render(view(known, enclosed))
    letter = unit.update("DocumentReference", letter_id, letter_document(unit, claim, known, enclosed, pdf, n),
                         fresh_id=unit.current("DocumentReference", letter_id) is None).version
    send_task = None
    if not by_api:
        send_task = unit.update("Task", (sid := stable_id(SERVER_NAMESPACE, "task", SEND_TASK, letter_id)),
                                _send_task(unit, claim, task, known, letter_id, enclosed, sid), fresh_id=True).version

    def mark(t: dict[str, Any]) -> bool:
        if track.pending(t):
            raise FhirError(409, "conflict", "An appeal of this denial is already waiting for the payer's decision",
                            expression=["Claim"])
        t.setdefault("output", []).extend([
            track.output(track.LETTER, valueReference={"reference": f"DocumentReference/{letter_id}"}),
            track.output(track.STATUS, valueCode="pending"),
            track.output(track.LEVEL, valueString=known["level"]),
            *([track.output(track.OF, valueString=known["payer_claim_number"])] if known["payer_claim_number"] else []),
            *([track.output(SEND_TASK, valueReference={"reference": f"Task/{send_task.id}"})] if send_task else []),
        ])
        t["businessStatus"] = {"text": "appealed"}
        t["lastModified"] = instant(unit.now)
        return True

    written = unit.modify("Task", task["id"], mark)
    if by_api:
        queue_send(unit, claim_id, task["id"], letter_id)
    return Appeal(letter, written.version if written else unit.read("Task", task["id"]), send_task, by_api)


def _appealable(unit: Unit, claim: dict[str, Any]) -> dict[str, Any]:
    """The claim's open denial Task, or the reason there is nothing to appeal (an OperationOutcome)."""
    state = lifecycle(claim)
    if state == "rejected":
        raise FhirError(422, "business-rule", "The payer rejected this claim before adjudicating it: correct it "
                        "and submit it again; only an adjudicated claim can be appealed", expression=["Claim"])
    if rank(state) < rank("paid"):
        raise FhirError(422, "business-rule", f"The claim has not been adjudicated (lifecycle {state or 'none'}): "
                        "there is no payer decision to appeal", expression=["Claim"])
    tasks = denials.open_tasks(unit, claim["id"])
    if not tasks:
        raise FhirError(422, "business-rule", f"The payer denied nothing on this claim (lifecycle {state}) that is "
                        "still open: nothing to appeal", expression=["Claim"])
    task = tasks[0]
    if track.pending(task):
        raise FhirError(409, "conflict", "An appeal of this denial is already waiting for the payer's decision",
                        expression=["Claim"])
    closed = arguments()["not_appealable"]
    for remark in input_codes(task, "remark"):
        if remark in closed:
            raise FhirError(422, "business-rule", f"Not appealable: remark {remark} ({closed[remark]})",
                            expression=["Claim"])
    deadline = ((task.get("restriction") or {}).get("period") or {}).get("end")
    if deadline and unit.now.date() > date.fromisoformat(deadline[:10]):
        raise FhirError(422, "business-rule", f"The appeal deadline ({deadline[:10]}) has passed; a late appeal "
                        "needs good cause and is left to a person", expression=["Claim"])
    return task


def _send_task(unit: Unit, claim: dict[str, Any], denial: dict[str, Any], facts: dict[str, Any], letter_id: str,
               enclosed: list[tuple[str, dict[str, Any]]], task_id: str) -> dict[str, Any]:
    payer = name_of(facts["payer_resource"]) or "the payer"
    task = work_item(SEND_TASK, "Send the appeal", f"Mail or upload (payer portal) the appeal letter and its "
                     f"{len(enclosed)} enclosure(s) to {payer} by {facts['deadline'] or 'the deadline'}, then complete "
                     "this Task with executionPeriod.end = the day it went out.", unit.now, task_id=task_id,
                     focus=f"Claim/{claim['id']}", patient=claim.get("patient"),
                     priority=denial.get("priority") or "routine",
                     inputs=[task_input("letter", valueReference={"reference": f"DocumentReference/{letter_id}"}),
                             task_input("denial-task", valueReference={"reference": f"Task/{denial['id']}"}),
                             *[task_input("enclosure", valueReference={"reference": f"{r['resourceType']}/{r['id']}"})
                               for _, r in enclosed]])
    task["performerType"] = [{"coding": [{"system": WORK_ROLE, "code": "biller"}], "text": "biller"}]
    if facts["deadline"]:
        task["restriction"] = {"period": {"end": facts["deadline"]}}
    return task


