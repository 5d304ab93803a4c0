"""Secondary and tertiary claims: after a payer's answer is posted, the claim to the patient's next
payer, or the record of why none is sent (the payer forwarded it: Medicare crossover).

``after_payments`` runs for the claim payments ``posting.post_835`` posts, ``after_claim_response``
once per adjudication a payer API answers (``posting.post_claim_response``). When the patient has
a further active Coverage (``Coverage.order`` after the one just billed) and the payer left the
patient a balance (CLP05, else the PR adjustments), it stores a new Claim to that payer: the
same lines and charges, ``insurance`` listing every payer so far in order — the earlier ones
``focal: false`` with ``claimResponse`` (the payer's adjudication, a ClaimResponse built from
its 835), the next one ``focal: true`` — and ``insurer`` the next payer. The claim is scrubbed
and stored like a generated one (clean → auto-submitted when the payer's connection says so), so
the normal pipeline sends it. Its id derives from the claim it follows, so a second delivery of
the 835 (or a replay of the posting) never makes a second one.

A payment the payer forwarded (CLP02 19/20/21, RARC MA18/N89 on the claim or a line, or a
crossover payer in 2100 NM1*TT; ``data/cob.json``) makes no claim: the paid claim records why
(extension ``claim-crossover``, server-owned) and a Task ``await-crossover`` asks a person to
bill the next payer only if the crossover does not arrive.
"""
from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any

import fhir_mappings
from app import directory
from app.claims import gather, workflow
from app.claims.lifecycle import set_lifecycle, without_server_owned
from app.fhir.dates import instant
from app.fhir.extract import reference_target
from app.fhir.queries import find_referring
from app.fhir.store import Unit
from app.payers.outcomes import biller_task, issues_text
from fhir_mappings.vocabulary import CLAIM_CROSSOVER, PATIENT_CONTROL_NUMBER, SERVER_NAMESPACE, stable_id
from payer_adapters.x12 import cob
from payer_adapters.x12.cob import payment_to_claim_response
from payer_adapters.x12.decode_835 import ClaimPayment, Remittance
from payer_adapters.x12.fhir_835 import remittance_key


@lru_cache(maxsize=1)
def rules() -> dict[str, Any]:
    return json.loads((Path(__file__).parent / "data" / "cob.json").read_text())


def crossover_reason(cp: ClaimPayment) -> str | None:
    """Why the payer's answer says it forwarded the claim to the next payer itself, or None."""
    r = rules()
    if cp.status in r["crossover_claim_statuses"]:
        return f"835 CLP02 {cp.status}: processed and forwarded to an additional payer"
    remarks = [*cp.remarks, *(x for s in cp.services for x in s.remarks)]
    found = next((x for x in remarks if x in r["crossover_remarks"]), None)
    if found:
        return f"835 remark {found}: claim information forwarded to the supplemental payer"
    if cp.crossover_payer:
        return "835 NM1*TT: forwarded to a crossover payer"
    return None


def _focal(claim: dict[str, Any]) -> dict[str, Any] | None:
    insurances = claim.get("insurance") or []
    return next((i for i in insurances if i.get("focal")), insurances[0] if insurances else None)


def _coverage_key(cov: dict[str, Any]) -> tuple[int, str]:
    return int(cov.get("order", 1)), cov["id"]


Coverages = dict[str, list[dict[str, Any]]]  # "Patient/id" -> the patient's active Coverages


def active_coverages(unit: Unit, patients: list[str]) -> Coverages:
    """The active Coverages of each patient (``Patient/id``), in a few searches: an 835 looks up
    the coverages of all its patients at once."""
    out: Coverages = {ref: [] for ref in patients if ref}
    by_target = {reference_target(ref): ref for ref in out}
    wanted = sorted(out)
    for start in range(0, len(wanted), COVERAGE_CHUNK):
        ids = [t[1] for ref in wanted[start:start + COVERAGE_CHUNK] if (t := reference_target(ref)) and t[0] == "Patient"]
        for cov in find_referring(unit, "Coverage", "beneficiary", "Patient", ids):
            ref = by_target.get(reference_target(((cov.get("beneficiary") or {}).get("reference")) or ""))
            if ref is not None and cov.get("status") == "active":
                out[ref].append(cov)
    return out


COVERAGE_CHUNK = 100  # patients per Coverage search


def next_coverage(unit: Unit, claim: dict[str, Any], known: Coverages | None = None) -> dict[str, Any] | None:
    """The patient's active Coverage after the one ``claim`` billed (by ``order``, then id) that
    no insurance entry of the claim names yet, or None. ``known``: the coverages already looked
    up (``active_coverages``)."""
    focal = _focal(claim)
    target = reference_target(((focal or {}).get("coverage") or {}).get("reference") or "")
    patient = ((claim.get("patient") or {}).get("reference")) or ""
    if target is None or target[0] != "Coverage" or not patient:
        return None
    covs = (known if known is not None and patient in known else active_coverages(unit, [patient]))[patient]
    billed = {reference_target(((i.get("coverage") or {}).get("reference")) or "") for i in claim.get("insurance") or []}
    current = next((c for c in covs if c["id"] == target[1]), None)
    if current is None:
        return None
    later = sorted((c for c in covs if ("Coverage", c["id"]) not in billed and _coverage_key(c) > _coverage_key(current)),
                   key=_coverage_key)
    return later[0] if later else None


def _liability(cp: ClaimPayment) -> Decimal:
    return cp.patient_responsibility or cp.adjustment_total("PR")


def after_payments(unit: Unit, rem: Remittance, paid: list[tuple[ClaimPayment, dict[str, Any]]],
                   coverages: Coverages | None = None) -> None:
    """The claims to the next payers after the payments ``paid`` (an 835's, in order), or the
    crossover records; ``coverages``: the patients' coverages already looked up
    (``active_coverages``). Done together: which next payers' claims exist already is one
    read, the visits they are scrubbed against are prefetched (``gather.prefetch_visits``),
    and the new claims and the answers they carry are written in one pipelined round trip."""
    due = [(cp, claim, nxt) for cp, claim in paid if (nxt := next_coverage(unit, claim, coverages)) is not None]
    if not due:
        return
    found = unit.current_many([("Claim", _next_claim_id(claim)) for _, claim, _ in due])
    billed = {rid for _, rid in found}  # deleted ones too: a claim id is used once
    visits = {t[1] for _, claim, _ in due for item in claim.get("item") or [] for ref in item.get("encounter") or []
              if (t := reference_target(ref.get("reference", ""))) and t[0] == "Encounter"}
    gather.prefetch_visits(unit, sorted(visits))
    bills: list[_Bill] = []
    for cp, claim, nxt in due:
        reason = crossover_reason(cp)
        if reason is not None:
            _record_crossover(unit, claim, nxt, reason, cp.crossover_payer)
            continue
        if _liability(cp) <= 0:
            continue  # paid in full (or nothing left to the patient): nothing for the next payer
        claim_id = _next_claim_id(claim)
        if claim_id in billed:
            continue
        billed.add(claim_id)
        response = payment_to_claim_response(
            rem, cp, claim, response_id=stable_id(SERVER_NAMESPACE, "cob-response", claim["id"], *remittance_key(rem)))
        bills.append(_prepare_bill(unit, claim, response, nxt, claim_id))
    _store_bills(unit, bills, carried=True)


def after_payment(unit: Unit, rem: Remittance, cp: ClaimPayment, claim: dict[str, Any],
                  coverages: Coverages | None = None) -> None:
    """``after_payments`` for one payment."""
    after_payments(unit, rem, [(cp, claim)], coverages)


def after_claim_response(unit: Unit, claim: dict[str, Any], response: dict[str, Any]) -> None:
    """The same after a payer API's adjudication (its stored ``ClaimResponse``, outcome complete
    or partial): the next payer's claim carries that response as the prior payer's answer, or
    the claim records the crossover the response's remark codes announce."""
    nxt = next_coverage(unit, claim)
    if nxt is None:
        return
    remarks = [str(n.get("text") or "").split(":")[0].strip() for n in response.get("processNote") or []]
    found = next((r for r in remarks if r in rules()["crossover_remarks"]), None)
    if found is not None:
        _record_crossover(unit, claim, nxt, f"payer remark {found}: claim information forwarded to the "
                                              "supplemental payer", None)
        return
    if cob.patient_liability(response) <= 0:
        return
    claim_id = _next_claim_id(claim)
    if unit.current("Claim", claim_id) is None:
        _store_bills(unit, [_prepare_bill(unit, claim, response, nxt, claim_id)], carried=False)


def _next_claim_id(claim: dict[str, Any]) -> str:
    """The next payer's claim id, from the claim it follows: one per claim, however often its
    answer is posted."""
    focal = _focal(claim) or {}
    return stable_id(SERVER_NAMESPACE, "cob-claim", claim["id"], str(int(focal.get("sequence", 1)) + 1))


@dataclass
class _Bill:
    """A next payer's claim ready to store, with the prior payer's answer it carries."""

    claim: dict[str, Any]
    response: dict[str, Any]
    after: list[workflow.AfterStore]
    outcome: dict[str, Any]
    follows: str  # the id of the claim it follows

    @property
    def held(self) -> bool:
        return fhir_mappings.outcome_has_errors(self.outcome)


def _prepare_bill(unit: Unit, claim: dict[str, Any], response: dict[str, Any], nxt: dict[str, Any],
                  claim_id: str) -> _Bill:
    """The claim to the payer of ``nxt``, scrubbed under its profile and prepared like a
    generated claim (clean → auto-submitted once stored)."""
    new = next_claim(claim, response, nxt, claim_id, unit.now)
    link = directory.for_insurer_in(unit, new.get("insurer"))  # scrubbed under the next payer's profile
    outcome = workflow.scrub_claim(unit, new, profile=link.profile if link is not None else None)
    held = fhir_mappings.outcome_has_errors(outcome)
    new["status"] = "draft" if held else "active"
    set_lifecycle(new, "draft" if held else "clean")
    after = [f for prepare in workflow.CLAIM_PREPARERS if (f := prepare(unit, new)) is not None]
    return _Bill(new, response, after, outcome, claim["id"])


def _store_bills(unit: Unit, bills: list[_Bill], *, carried: bool) -> None:
    """Store the next payers' claims (with the answers they carry when ``carried``: those are
    stored already otherwise) in one pipelined write, then what their preparers left for after
    (the queue entry); a held one opens a review Task."""
    if not bills:
        return
    answers = [b.response for b in bills] if carried else []
    written = unit.update_many([*answers, *(b.claim for b in bills)])[len(answers):]
    for bill, result in zip(bills, written):
        for f in bill.after:
            f(result.version)
        if bill.held:
            biller_task(unit, bill.claim, "claim-review", "Review held claim",
                        f"The claim to the next payer after Claim/{bill.follows} is held by the scrubber: fix and "
                        "resubmit it.", issues_text({"issue": [i for i in bill.outcome.get("issue", [])
                                                               if i.get("severity") in ("error", "fatal")]}),
                        unit.now, key=f"{bill.claim['id']}:cob-review")


def next_claim(claim: dict[str, Any], response: dict[str, Any], coverage: dict[str, Any], claim_id: str,
               now: datetime) -> dict[str, Any]:
    """``claim`` addressed to the payer of ``coverage``: same lines and charges, the payers so
    far in ``insurance`` (the one just answered with ``response`` as its claimResponse), its own
    patient control number, and ``related`` naming the claim it follows."""
    new = without_server_owned(copy.deepcopy(claim))
    for key in ("id", "text", "meta"):
        new.pop(key, None)
    extensions = [e for e in new.get("extension") or [] if e.get("url") != CLAIM_CROSSOVER]
    if extensions:
        new["extension"] = extensions
    else:
        new.pop("extension", None)
    focal = _focal(claim) or {}
    insurance = []
    for ins in sorted(claim.get("insurance") or [], key=lambda i: int(i.get("sequence", 0))):
        if ins is focal:
            ins = {**ins, "focal": False, "claimResponse": {"reference": f"ClaimResponse/{response['id']}"}}
        insurance.append(dict(ins))
    insurance.append({"sequence": int(focal.get("sequence", 1)) + 1, "focal": True,
                      "coverage": {"reference": f"Coverage/{coverage['id']}"}})
    new.update(
        id=claim_id, status="active", created=now.date().isoformat(),
        identifier=[{"system": PATIENT_CONTROL_NUMBER, "value": fhir_mappings.patient_control_number(claim_id)}],
        insurer=dict((coverage.get("payor") or [{}])[0]), insurance=insurance,
        related=[{"claim": {"reference": f"Claim/{claim['id']}"},
                  "relationship": {"coding": [rules()["related_relationship"]]}}])
    return new


def _business_days_after(start: date, days: int) -> date:
    d = start
    while days > 0:
        d += timedelta(days=1)
        if d.weekday() < 5:
            days -= 1
    return d


def _record_crossover(unit: Unit, claim: dict[str, Any], coverage: dict[str, Any], reason: str,
                      crossover_payer: tuple[str, str] | None) -> None:
    """The paid claim says the payer forwarded it (extension ``claim-crossover``), and a Task asks
    a person to bill the next payer only if the crossover does not arrive by the due date."""
    due = _business_days_after(unit.now.date(), int(rules()["await_crossover_business_days"]))
    subs: list[dict[str, Any]] = [{"url": "reason", "valueString": reason},
                                  {"url": "coverage", "valueReference": {"reference": f"Coverage/{coverage['id']}"}},
                                  {"url": "recorded", "valueDateTime": instant(unit.now)},
                                  {"url": "due", "valueDate": due.isoformat()}]
    if crossover_payer:
        name, payer_id = crossover_payer
        subs.insert(1, {"url": "payer", "valueString": " ".join(x for x in (name, f"({payer_id})" if payer_id else "") if x)})

    def mark(current: dict[str, Any]) -> bool:
        if any(e.get("url") == CLAIM_CROSSOVER for e in current.get("extension") or []):
            return False
        current["extension"] = [*(current.get("extension") or []), {"url": CLAIM_CROSSOVER, "extension": subs}]
        return True

    unit.modify("Claim", claim["id"], mark)
    biller_task(unit, claim, "await-crossover", "Await crossover to the next payer",
                f"The payer forwarded this claim to the patient's next payer (Coverage/{coverage['id']}); no claim "
                f"is sent to it by us. If its payment has not arrived by {due.isoformat()}, check the claim's "
                "status with that payer before billing it.", [reason], unit.now, key=f"{claim['id']}:crossover")
