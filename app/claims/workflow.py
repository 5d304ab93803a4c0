"""``$generate-claim``, ``$scrub`` and ``$eligibility-request`` against one tenant's store.

A claim is regenerated in place until it has left for the payer (a queued claim not yet in a
batch being sent is rebuilt in place too, and keeps its place in the queue); a claim that has
left is never overwritten: the correction is a new Claim whose ``related`` names the old one
(relationship ``prior``, with the payer's claim number: ``corrections``). A held claim (any
error) is stored as ``draft`` and gets an open biller ``Task`` listing the issues; a clean one
is ``active`` and its review Task, if any, is completed.

One visit never has two claims being built at once: generation takes a lock on the visit for
the rest of its transaction, so two workers regenerating the same visit find each other's claim
instead of minting two originals.
"""
from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import date, datetime
from typing import Any, Callable

import orjson

import fhir_mappings
from app.claims import corrections
from app.claims import eligibility_use
from app.claims import therapy_deadlines
from app.claims.gather import gather_encounter, gather_visit
from app.claims.lifecycle import UNSUBMITTED, lifecycle, set_lifecycle, with_server_owned
from app.claims.rule_packs import packs as tenant_rule_packs
from app.fhir.dates import instant
from app.fhir.errors import FhirError, PreconditionFailed
from app.fhir.extract import reference_target
from app.fhir.queries import find_resources
from app.fhir.store import Reader, Unit, Version
from app.fhir.tasks import is_open, task_input, work_item
from fhir_mappings import authorizations as auth_rules
from fhir_mappings.inputs import follows_another_payer
from fhir_mappings.vocabulary import SUBMISSION_KEY, TASK_CODE

RELATED = corrections.RELATED

AfterStore = Callable[[Version], None]
#: Called with (unit, claim) just before a generated Claim is stored; may change the claim and
#: returns what to run once it is stored. The payer side uses it to queue an auto-submitted
#: claim in the same write instead of storing it twice.
CLAIM_PREPARERS: list[Callable[[Unit, dict[str, Any]], AfterStore | None]] = []
#: Whether a ``queued`` claim is still waiting in the queue, in no batch being sent (installed
#: by the payer side, which owns the queue; the check holds the queue entry until commit, so
#: the claim cannot join a batch while it is being rebuilt).
UNSENT_CHECKS: list[Callable[[Unit, dict[str, Any]], bool]] = []


def editable(unit: Unit, claim: dict[str, Any]) -> bool:
    """Whether ``claim`` may still be rebuilt in place: nothing of it has left for the payer."""
    if claim.get("status") == "cancelled" or corrections.is_void(claim):
        return False
    code = lifecycle(claim)
    if code in UNSUBMITTED:
        return True
    return code == "queued" and any(check(unit, claim) for check in UNSENT_CHECKS)


def settle_lifecycle(claim: dict[str, Any], previous: dict[str, Any] | None, held: bool) -> None:
    """The lifecycle of a claim rebuilt over ``previous``: a queued claim stays queued while it
    is clean; one that became held leaves the queue (its submission key goes, so the queue's
    entry is dropped when its turn comes) and is ``draft``; others are ``draft`` or ``clean``."""
    if previous is not None and lifecycle(previous) == "queued":
        if not held:
            return
        claim["identifier"] = [i for i in claim.get("identifier") or [] if i.get("system") != SUBMISSION_KEY]
    set_lifecycle(claim, "draft" if held else "clean")


def _unusable(err: fhir_mappings.InputError) -> FhirError:
    return FhirError(422, "processing", "The encounter cannot be billed as recorded", issues=err.issues)


def _profile(name: str | None) -> str | None:
    if name is None:
        return None
    try:
        fhir_mappings.get_profile(name)
    except KeyError as exc:
        raise FhirError(400, "invalid", str(exc.args[0]), expression=["profile"]) from None
    return name


def _payer_profile(reader: Reader, inputs: fhir_mappings.ClaimInputs, name: str | None) -> fhir_mappings.PayerProfile:
    """The profile to bill under: ``name`` when the caller gives one, else the one registered on
    the payer connection of the visit's Coverage (``therabridge payers add --profile``), else
    chosen from the Coverage; with the connection's timely-filing days in place of the
    profile's default (they are contract terms, per payer)."""
    from app import directory

    payor = ((inputs.coverage.resource.get("payor") or [None])[0]) or {}
    link = directory.for_insurer_in(reader, payor)
    try:
        chosen = fhir_mappings.profile_for(inputs, name or (link.profile if link else None))
    except KeyError as exc:
        raise FhirError(400 if name else 422, "invalid", str(exc.args[0]),
                        expression=["profile"] if name else ["Coverage.payor"]) from None
    if link is not None and link.timely_filing_days:
        chosen = replace(chosen, timely_filing_days=link.timely_filing_days, timely_filing_months=None)
    return chosen


def _charges(reader: Reader, inputs: fhir_mappings.ClaimInputs) -> fhir_mappings.ChargeMaster:
    """The fee schedule of the visit's ChargeItemDefinitions, built once per transaction for the
    same versions (the visits of a batch mostly bill the same codes, so their fees are the same)."""
    key = ("charge-master", tuple(sorted((e.resource.get("id"), (e.resource.get("meta") or {}).get("versionId"))
                                         for e in inputs.charge_definitions)))
    memo: dict[Any, Any] = getattr(reader, "memo", {})
    if key not in memo:
        memo[key] = fhir_mappings.ChargeMaster.of_inputs(inputs)
    return memo[key]


def generation_lock(encounter_id: str) -> tuple[str, str]:
    """The lock a visit's claim generation holds until it commits (one generation at a time)."""
    return ("claim-generation", encounter_id)


def generate_claim(unit: Unit, encounter_id: str, *, profile: str | None, now: datetime) -> tuple[Version, dict, bool]:
    """Build, scrub and store the claim for an Encounter: (stored Claim, OperationOutcome, held)."""
    unit.lock(*generation_lock(encounter_id))
    for _ in range(5):
        try:
            return _generate(unit, encounter_id, profile=profile, now=now)
        except PreconditionFailed:
            continue  # the open claim changed while it was rebuilt (queued, say): rebuild over the newer one
    raise FhirError(409, "conflict", f"The claim of Encounter/{encounter_id} is being changed by others; retry")


def lock_authorizations(unit: Unit, resources: list[dict[str, Any]]) -> bool:
    """Lock the authorizations in force among a visit's resources, in one order (by id), for the
    rest of the transaction: whether any was locked (then the caller reads their usage again).

    Two workers billing two visits of one patient at once would otherwise both see the last
    authorized visit unused and both take it. Under the lock the other worker's claim is either
    committed (and counted when the usage is read again) or not yet begun. SQLite serialises
    writers at BEGIN, so nothing is locked there (and nothing needs reading again)."""
    if not unit.postgres:
        return False
    ids = sorted({r["id"] for r in resources if auth_rules.is_authorization(r) and auth_rules.in_force(r)})
    for auth_id in ids:
        unit.lock("authorization", auth_id)
    return bool(ids)


def _generate(unit: Unit, encounter_id: str, *, profile: str | None, now: datetime) -> tuple[Version, dict, bool]:
    resources, claims_so_far = gather_visit(unit, encounter_id)
    if lock_authorizations(unit, resources):
        resources, claims_so_far = gather_visit(unit, encounter_id)  # their usage as it is under the locks
    try:
        inputs = fhir_mappings.ClaimInputs.from_resources(resources, encounter_id=encounter_id, validate=False)
    except fhir_mappings.InputError as err:
        raise _unusable(err) from None
    eligibility_use.prepare(inputs)
    # The visit's claims to later payers (secondary, tertiary) are the payer side's: never rebuilt
    # here, never the prior claim a correction names.
    existing = sorted((c for c in claims_so_far if not follows_another_payer(c)),
                      key=lambda c: c["meta"]["lastUpdated"])
    open_claims = [c for c in existing if editable(unit, c)]
    target = open_claims[-1] if open_claims else None
    claim_id = target["id"] if target else str(uuid.uuid4())
    try:
        generated = fhir_mappings.generate_planned(inputs, profile=_payer_profile(unit, inputs, profile),
                                                   claim_id=claim_id, created=now, rule_packs=tenant_rule_packs(unit),
                                                   charges=_charges(unit, inputs))
        claim, outcome = generated.claim, generated.outcome
    except fhir_mappings.InputError as err:
        raise _unusable(err) from None
    held = fhir_mappings.outcome_has_errors(outcome)
    claim["status"] = "draft" if held else "active"
    submitted = [c for c in existing if lifecycle(c) not in UNSUBMITTED and c not in open_claims
                 and not corrections.is_void(c)]
    if target is None and submitted:  # a correction of what the payer holds (422 until it numbered it)
        claim["related"] = [corrections.related_to(corrections.latest(submitted, existing))]
    claim = with_server_owned(claim, target)
    settle_lifecycle(claim, target, held)
    after = [f for prepare in CLAIM_PREPARERS if (f := prepare(unit, claim)) is not None]
    if target is None:
        stored = unit.update("Claim", claim_id, claim, fresh_id=True).version
    else:  # over the version read, never over a change made since (PreconditionFailed: rebuild)
        stored = unit.update("Claim", claim_id, claim, if_match=int(target["meta"]["versionId"])).version
    for f in after:
        f(stored)
    eligibility_use.follow_up(unit, inputs, claim, now)
    therapy_deadlines.follow_up(unit, inputs, generated.plan, generated.charges, generated.profile, claim_id, now)
    _follow_up_task(unit, stored, claim, outcome, held, now, new_claim=target is None)
    return stored, outcome, held


def _follow_up_task(unit: Unit, stored: Version, claim: dict, outcome: dict, held: bool, now: datetime,
                    *, new_claim: bool) -> None:
    review = [("focus", f"Claim/{stored.id}"), ("code", f"{TASK_CODE}|claim-review")]
    # A claim id just minted has no review Task yet: no search needed (the common, clean case).
    open_tasks = [] if new_claim else [t for t in find_resources(unit, "Task", review) if is_open(t)]
    if not held:
        for task in open_tasks:
            unit.modify("Task", task["id"], lambda t: _close(t, now))
        return
    problems = [i for i in outcome.get("issue", []) if i.get("severity") in ("error", "fatal")]
    task = work_item(
        "claim-review", "Review held claim",
        f"Claim held by {len(problems)} error(s): fix the record and regenerate the claim.", now,
        focus=f"Claim/{stored.id}", patient=claim.get("patient"), business_status="held",
        inputs=[task_input((i.get("details", {}).get("coding") or [{}])[0].get("code", "issue"),
                           valueString=i.get("diagnostics", "")) for i in problems])
    _open_or_refresh(unit, open_tasks, task)


def _close(task: dict[str, Any], now: datetime) -> bool:
    if not is_open(task):
        return False
    task.update(status="completed", lastModified=instant(now))
    return True


def _open_or_refresh(unit: Unit, open_tasks: list[dict[str, Any]], task: dict[str, Any]) -> None:
    """Refresh the open Task (unless a person closed it meanwhile) or open a new one."""
    def refresh(current: dict[str, Any]) -> bool:
        if not is_open(current):
            return False
        current.clear()
        current.update(task, id=open_tasks[0]["id"])
        return True

    if open_tasks and unit.modify("Task", open_tasks[0]["id"], refresh) is not None:
        return
    unit.create(task)


def unbillable_task(unit: Unit, encounter_id: str, err: FhirError, now: datetime) -> None:
    """One open Task per Encounter saying why no claim could be generated (kept up to date)."""
    code = [("focus", f"Encounter/{encounter_id}"), ("code", f"{TASK_CODE}|claim-unbillable")]
    open_tasks = [t for t in find_resources(unit, "Task", code) if is_open(t)]
    reasons = [i.get("diagnostics") or (i.get("details") or {}).get("text", "") for i in err.issues]
    task = work_item("claim-unbillable", "Encounter cannot be billed",
                     "No claim could be generated for this visit: " + " ".join(reasons), now,
                     focus=f"Encounter/{encounter_id}", inputs=[task_input("reason", valueString=r) for r in reasons])
    _open_or_refresh(unit, open_tasks, task)


def _encounter_live(reader: Reader, encounter_id: str) -> bool:
    """Whether the Encounter is stored and not deleted (read already when the transaction's
    memo holds it: ``gather.prefetch_visits``)."""
    if getattr(reader, "memo", {}).get(("resource", "Encounter", encounter_id)) is not None:
        return True
    current = reader.current("Encounter", encounter_id)
    return current is not None and not current.deleted


def scrub_claim(reader: Reader, claim: dict[str, Any], *, profile: str | None) -> dict[str, Any]:
    """Scrub a Claim; compared with the visit's record when its Encounter is in the store."""
    inputs = None
    for item in claim.get("item") or []:
        for ref in item.get("encounter") or []:
            target = reference_target(ref.get("reference", ""))
            if target and target[0] == "Encounter" and inputs is None:
                if _encounter_live(reader, target[1]):
                    try:
                        inputs = fhir_mappings.ClaimInputs.from_resources(
                            gather_encounter(reader, target[1]), encounter_id=target[1], validate=False)
                    except fhir_mappings.InputError:
                        inputs = None
    packs = tenant_rule_packs(reader)
    if inputs is not None:
        return fhir_mappings.scrub_claim(claim, inputs, profile=_payer_profile(reader, inputs, profile), rule_packs=packs)
    return fhir_mappings.scrub_claim(claim, inputs, profile=_profile(profile), rule_packs=packs)


def eligibility_request(unit: Unit, coverage_id: str, *, serviced: date, discipline: str,
                        provider: str | None, now: datetime) -> Version:
    coverage = unit.read("Coverage", coverage_id).resource()
    patient_ref = (coverage.get("beneficiary") or {}).get("reference", "")
    target = reference_target(patient_ref)
    if not target:
        raise FhirError(422, "processing", "The Coverage has no beneficiary Patient", expression=["Coverage.beneficiary"])
    patient = unit.read(*target).resource()
    if provider is None:
        practices = find_resources(unit, "Organization", [("type", "prov")])
        if len(practices) != 1:
            raise FhirError(400, "required", "Name the requesting provider with the 'provider' parameter "
                            "(Organization/… or Practitioner/…)", expression=["provider"])
        provider = f"Organization/{practices[0]['id']}"
    request_id = str(uuid.uuid4())
    try:
        resource = fhir_mappings.build_eligibility_request(
            coverage, patient, request_id=request_id, created=now, serviced_date=serviced,
            discipline=discipline, provider_ref={"reference": provider})
    except ValueError as exc:
        raise FhirError(400, "invalid", str(exc), expression=["discipline"]) from None
    return unit.create(resource, rid=request_id).version


def result_bundle(base: str, claim: Version, outcome: dict[str, Any], now: str) -> bytes:
    head = orjson.dumps({"resourceType": "Bundle", "id": str(uuid.uuid4()), "type": "collection", "timestamp": now})
    entries = [f'{{"fullUrl":"{base}/Claim/{claim.id}","resource":{claim.content}}}',
               '{"resource":' + orjson.dumps(outcome).decode() + "}"]
    return head[:-1] + b',"entry":[' + ",".join(entries).encode() + b"]}"
