"""Posting decoded payer answers onto the tenant's claims (in the order the answers build on each other: 999 → 277CA → 835).

Every resource written has an id derived from the answer (the X12 decoder's uuid5 ids, or
ours), so posting the same answer twice overwrites rather than duplicates; an 835 whose
payment identity (TRN02, payer id) was already posted is reported as a duplicate and posts
nothing. Answers are matched to claims by the patient control number (CLM01 = CLP01 =
277CA TRN02) and, for the 999, by our GS06/ST02 recorded at submission.
"""
from __future__ import annotations

from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from app.fhir.queries import find_resources
from app.claims import corrections
from app.claims.lifecycle import VOID_TAKEN, Moves, cancel, lifecycle_rank_of, move, move_many, paid_state, paid_state_of, voided_by
from app.fhir.extract import reference_target
from app.fhir.store import Unit
from app.payers import appeal_outcomes, denials, reversals, secondary, unapplied, underpayment
from app.payers.models import SUBMISSIONS as S
from app.payers.outcomes import biller_task, issues_text, put, rejection_response
from fhir_mappings import identifiers
from fhir_mappings.identifiers import patient_control_number
from fhir_mappings.vocabulary import ELIGIBILITY_TRACE, SERVER_NAMESPACE, stable_id
from payer_adapters.fhir_eob import claim_response_to_eob
from payer_adapters.x12.decode import DecodeResult
from payer_adapters.x12.decode_277ca import Ack277, LevelAck
from payer_adapters.x12.decode_835 import ClaimPayment
from payer_adapters.x12.fhir_271 import eligibility_to_fhir
from app.payers.eligibility import link_to_request
from payer_adapters.x12.fhir_277ca import ack277_to_fhir, level_identity, level_rejection_to_fhir
from payer_adapters.x12.fhir_835 import remittance_to_fhir
from payer_adapters.x12.fhir_999 import set_to_outcome

def claim_by_pcn(unit: Unit, pcn: str) -> dict[str, Any] | None:
    """The submitted claim with this patient control number (the newest when corrected): the
    claim whose CLM01 it was, under our system or under the claim's own identifier."""
    return claims_by_pcn(unit, [pcn]).get(pcn)


def claims_by_pcn(unit: Unit, pcns: list[str]) -> dict[str, dict[str, Any] | None]:
    """``claim_by_pcn`` for every control number of an answer, a few index lookups for all of
    them (an 835 of a thousand claims posts in two, not a thousand)."""
    out: dict[str, dict[str, Any] | None] = {pcn: None for pcn in pcns}
    wanted = sorted(set(pcns))
    for start in range(0, len(wanted), PCN_CHUNK):
        for version in unit.by_token("Claim", "identifier", wanted[start:start + PCN_CHUNK]):
            claim = version.resource()
            pcn = patient_control_number(claim)
            if pcn not in out:
                continue
            best = out[pcn]
            if best is None or _newest_key(claim) > _newest_key(best):
                out[pcn] = claim
    return out


PCN_CHUNK = 500  # control numbers per lookup


def _newest_key(claim: dict[str, Any]) -> tuple[bool, str]:
    return lifecycle_rank_of(claim) >= 3, claim["meta"]["lastUpdated"]


def post_999(unit: Unit, result: DecodeResult, connection_pk: int | None) -> int:
    """999: accepted sets → ``acknowledged`` (every claim of the file in one write round trip);
    rejected sets → ``rejected`` with the IK3/IK4 issues. Returns the claims whose state it set."""
    n = 0
    accepted: Moves = {}
    for ack in result.acknowledgments:
        group = str(int(ack.group_control_number)) if ack.group_control_number.isdigit() else ack.group_control_number
        rows = unit.conn.execute(sa.select(S.c.claim_id, S.c.set_controls).where(
            S.c.tenant_id == unit.tenant_id, S.c.group_control == group,
            *([S.c.connection_pk == connection_pk] if connection_pk is not None else []))).all()
        for s in ack.sets:
            claim_ids = [r.claim_id for r in rows if s.control_number in (r.set_controls or "").split(",")]
            if s.accepted:
                accepted.update((claim_id, (("acknowledged",), None)) for claim_id in claim_ids)
                continue
            outcome = set_to_outcome(ack, s)
            for claim_id in claim_ids:
                current = unit.current("Claim", claim_id)
                if current is None or current.deleted:
                    continue
                claim = current.resource()
                put(unit, rejection_response(claim, outcome, unit.now, source=f"999 {group}/{s.control_number}"))
                move(unit, claim_id, "rejected")
                biller_task(unit, claim, "claim-rejected", "Claim rejected by the 999",
                            "The payer's 999 rejected the file carrying this claim: fix and resubmit.",
                            issues_text(outcome), unit.now, key=f"{claim_id}:999:{group}")
                n += 1
    moved = move_many(unit, accepted)
    return n + sum(1 for written in moved.values() if written is not None)


def post_277ca(unit: Unit, result: DecodeResult) -> int:
    """277CA: a ClaimResponse per claim; lifecycle ``accepted`` or ``rejected`` (+ a Task)."""
    n = 0
    for ack in result.claim_acknowledgments:
        claims = claims_by_pcn(unit, [c.patient_control_number for c in ack.claims])
        known = {k: v for k, v in claims.items() if v}
        accepted: Moves = {}
        responses = [entry["resource"] for entry in ack277_to_fhir(ack, known)][:len(ack.claims)]
        unit.update_many(responses)  # one ClaimResponse per claim, written together
        for c in ack.claims:
            claim = known.get(c.patient_control_number)
            if claim is None:
                continue
            number = corrections.payer_number_change(c.payer_claim_control_number, adjudicated=False)
            if claim["id"] in accepted:  # named twice: its answers in their order
                move_many(unit, accepted)
                accepted = {}
            if c.outcome == "error":
                move(unit, claim["id"], "rejected", also=number)
                denials.from_277ca(unit, claim, c)  # its work item: a denial Task with the reasons
            else:
                accepted[claim["id"]] = (("accepted",), number)
            n += 1
        move_many(unit, accepted)  # every accepted claim in one write round trip
        for level in ack.level_rejections:
            n += _post_level_rejection(unit, ack, level)
    return n


def _post_level_rejection(unit: Unit, ack: Ack277, level: LevelAck) -> int:
    """A 277CA rejection above the claim level (the whole batch at the submitter, every claim of
    one billing provider), which names no claim: every claim of ours it stands for is rejected
    with its reasons, and one Task tells the biller what was rejected and why."""
    traces = [level.batch_trace] if level.batch_trace else sorted({lv.batch_trace for lv in ack.levels
                                                                    if lv.batch_trace})
    ids = [r.claim_id for r in unit.conn.execute(sa.select(S.c.claim_id).where(
        S.c.tenant_id == unit.tenant_id, S.c.batch_trace.in_(traces), S.c.status == "submitted")
        .order_by(S.c.pk)).all()] if traces else []
    versions = unit.current_many([("Claim", i) for i in dict.fromkeys(ids)])
    claims = [v.resource() for v in versions.values() if not v.deleted]
    if level.level == "billing-provider":
        claims = [c for c in claims if _billed_by(unit, c, level)]
    outcome = level_rejection_to_fhir(ack, level)
    reasons = issues_text(outcome)
    source = f"277CA {level.loop} {level.trace or level.batch_trace or ''}".strip()
    for claim in claims:
        put(unit, rejection_response(claim, outcome, unit.now, source=source))
        move(unit, claim["id"], "rejected")
    what = "every claim of billing provider " + (level.npi or level.tin or level.id) \
        if level.level == "billing-provider" else "the whole batch"
    found = (f"{len(claims)} claim(s) of ours were in it and are rejected" if claims else
             f"no submitted claim of ours matched batch {', '.join(traces) or '(none named)'}")
    biller_task(unit, {}, "claim-batch-rejected", "Batch rejected by the payer (277CA)",
                f"The payer's 277CA rejected {what} ({level.loop}): {found}. Fix the cause, then "
                "generate and submit the claims again.", reasons, unit.now,
                key=stable_id(SERVER_NAMESPACE, *level_identity(ack, level)),
                about=[f"Claim/{c['id']}" for c in claims])
    return len(claims)


def _billed_by(unit: Unit, claim: dict[str, Any], level: LevelAck) -> bool:
    """Whether ``claim``'s billing provider is the one a 2200C names (by NPI or TIN)."""
    target = reference_target(((claim.get("provider") or {}).get("reference")) or "")
    found = unit.current(*target) if target else None
    provider = found.resource() if found is not None and not found.deleted else None
    npi, tin = identifiers.npi(provider, claim.get("provider")), identifiers.tin(provider)
    return bool((level.npi and npi == level.npi) or (level.tin and tin == level.tin))


def _claim_lines(cp: ClaimPayment) -> list[tuple[Decimal, Decimal]]:
    return [(s.charge, s.paid) for s in cp.services]


def post_835(unit: Unit, result: DecodeResult) -> bool:
    """835: EOBs + PaymentReconciliation; returns False when every payment was posted before."""
    posted_any = False
    for rem in result.remittances:
        claims = claims_by_pcn(unit, [cp.patient_control_number for cp in rem.claims])
        known = {k: v for k, v in claims.items() if v}
        entries = remittance_to_fhir(rem, known)
        recon = next((e["resource"] for e in entries if e["resource"]["resourceType"] == "PaymentReconciliation"), None)
        if recon is not None:
            existing = unit.current("PaymentReconciliation", recon["id"])
            if existing is not None and not existing.deleted:
                continue  # same payment identity: already posted
        targets = reversals.targets(unit, rem, known)
        reversals.prepare(unit, rem, entries, targets, claim_by_pcn)
        eobs = [e["resource"] for e in entries if e["resource"]["resourceType"] == "ExplanationOfBenefit"]
        unmatched = []  # payments for no claim of ours: unapplied until a person links or returns them
        for n, (cp, eob) in enumerate(zip(rem.claims, eobs)):
            if targets[n] is None:
                unapplied.mark_unapplied(eob, recon["detail"][n] if recon else None)
                unmatched.append((cp, eob))
        unit.update_many([e["resource"] for e in entries
                          if e["resource"]["resourceType"] in ("ExplanationOfBenefit", "PaymentReconciliation")])
        for cp, eob in unmatched:
            unapplied.open_work_item(unit, eob, recon["id"] if recon else None, pcn=cp.patient_control_number,
                                     paid=cp.paid, payer_claim_number=cp.payer_claim_control_number or None,
                                     trace=rem.trace_number or None)
        coverages = secondary.active_coverages(unit, [((c.get("patient") or {}).get("reference")) or ""
                                                      for c in targets if c is not None])
        paid: Moves = {}
        for cp, claim in zip(rem.claims, targets):
            if claim is None or reversals.is_reversal(cp):
                continue
            if claim["id"] in paid:  # paid twice in one remittance: the payments in their order
                move_many(unit, paid)
                paid = {}
            paid[claim["id"]] = (("accepted", paid_state(cp.paid, _claim_lines(cp))),
                                 corrections.payer_number_change(cp.payer_claim_control_number or None,
                                                                 adjudicated=True))
        move_many(unit, paid)  # every paid claim in one write round trip
        secondary.after_payments(unit, rem, [(cp, claim) for cp, claim in zip(rem.claims, targets)
                                             if claim is not None and not reversals.is_reversal(cp)], coverages)
        underpayment.open_work_items(unit, rem, known, eobs)
        denials.from_remittance(unit, rem, targets)
        for cp, claim in zip(rem.claims, targets):  # an answer to an appeal: its outcome
            if claim is not None and not reversals.is_reversal(cp):
                appeal_outcomes.settle(unit, claim, paid_state(cp.paid, _claim_lines(cp)),
                                       cp.payer_claim_control_number or None, rem.payment_date or rem.production_date)
        posted_any = True
    return posted_any


def post_271(unit: Unit, result: DecodeResult) -> int:
    """271: a CoverageEligibilityResponse linked to the request with the same trace number."""
    n = 0
    for elig in result.eligibility:
        for e in eligibility_to_fhir(elig):
            resource = e["resource"]
            if resource["resourceType"] != "CoverageEligibilityResponse":
                continue
            trace = elig.trace_number
            requests = find_resources(unit, "CoverageEligibilityRequest", [("identifier", f"{ELIGIBILITY_TRACE}|{trace}")])
            if requests:
                req = requests[0]
                resource["request"] = {"reference": f"CoverageEligibilityRequest/{req['id']}"}
                for key in ("patient", "insurer"):
                    if req.get(key):
                        resource[key] = req[key]
                link_to_request(resource, req)
            put(unit, resource)
            n += 1
    return n


def answer_states(response: dict[str, Any], claim: dict[str, Any] | None = None) -> list[str]:
    """The lifecycle states a payer's FHIR ClaimResponse moves its claim through (a void the
    payer processed is ``accepted``: it pays nothing and denies nothing)."""
    outcome = response.get("outcome")
    if outcome == "error":
        return ["rejected"]
    if outcome == "queued" or (claim is not None and voided_by(claim)):
        return ["accepted"]
    if outcome in ("complete", "partial"):
        return ["accepted", paid_state_of(response)]
    return []


def post_claim_response(unit: Unit, claim: dict[str, Any], response: dict[str, Any], *, source: str) -> None:
    """Store a payer's FHIR ClaimResponse (a rejection's work item is the denial Task
    ``denials.from_claim_response`` opens); the claim's states are ``answer_states``, and a pended claim (``queued``) is asked about later by the caller."""
    response = dict(response)
    response["id"] = stable_id(SERVER_NAMESPACE, "claim-response", claim["id"], response.get("id") or source,
                               response.get("outcome"))
    response["request"] = {**(response.get("request") or {}), "reference": f"Claim/{claim['id']}"}
    put(unit, response)
    eob = None if voided_by(claim) else claim_response_to_eob(response, claim)
    if eob is not None:  # the payment record money is read from, as an 835's claim payment is
        put(unit, eob)
    outcome = response.get("outcome")
    corrections.record_payer_number(unit, claim["id"], identifiers.payer_claim_number(response),
                                    adjudicated=outcome in ("complete", "partial"))
    if (voided := voided_by(claim)) and VOID_TAKEN & set(answer_states(response, claim)):
        cancel(unit, voided)
    denials.from_claim_response(unit, claim, response)
    if outcome in ("complete", "partial"):
        appeal_outcomes.settle(unit, claim, paid_state_of(response), identifiers.payer_claim_number(response),
                               response.get("created"))
        if not voided_by(claim):
            secondary.after_claim_response(unit, claim, response)  # the next payer's claim, if any
