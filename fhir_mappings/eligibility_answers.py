"""What the payer's newest eligibility answer says about a claim: coverage in force on the day of
service, and the visits allowed, used and remaining per discipline.

The answer is the newest ``CoverageEligibilityResponse`` among the inputs whose
``insurance.coverage`` is the claim's Coverage (the server links each stored answer to its
request's Coverage). "Used" is the payer's count when it answered plus the visits billed since
(earlier claims of the discipline created after the answer): the payer has not seen those yet,
and a claim beyond the limit is denied (CARC 119) whatever the practice believed.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timezone
from typing import Any

from fhir_mappings.inputs import ClaimInputs, Entry
from fhir_mappings.resolve import day_of
from fhir_mappings.tables import disciplines, load_json

VISIT = "visit"
VISIT_REMAINING = "visit-remaining"


@dataclass(frozen=True)
class VisitCount:
    """One discipline's visit limit as the claim meets it."""

    discipline: str
    service_type: str
    allowed: int
    payer_used: int  # what the payer counted when it answered
    billed_since: int  # visits of the discipline billed after the answer
    this_claim: int  # visits this claim adds (distinct dates of service)

    @property
    def used(self) -> int:
        return self.payer_used + self.billed_since

    @property
    def remaining(self) -> int:
        """Visits left after this claim (negative: beyond the limit)."""
        return self.allowed - self.used - self.this_claim


def answer_instant(resource: dict[str, Any]) -> datetime:
    """When the payer answered (``created``; a date alone is the start of that day, UTC)."""
    raw = str(resource.get("created") or "")
    try:
        if len(raw) == 10:
            return datetime.combine(date.fromisoformat(raw), time(0), timezone.utc)
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
    except ValueError:
        return datetime.min.replace(tzinfo=timezone.utc)


def _covers(inputs: ClaimInputs, response: dict[str, Any]) -> bool:
    for ins in response.get("insurance") or ():
        hit = inputs.resolve(ins.get("coverage"))
        if hit is not None and hit is inputs.coverage:
            return True
    return False


def newest_answer(inputs: ClaimInputs) -> Entry | None:
    """The newest answer about the claim's Coverage (a queued request's placeholder is no answer)."""
    answers = [e for e in inputs.eligibility
               if e.resource.get("outcome") in ("complete", "partial", "error") and _covers(inputs, e.resource)]
    if not answers:
        return None
    return max(answers, key=lambda e: (answer_instant(e.resource),
                                       str((e.resource.get("meta") or {}).get("lastUpdated") or ""), e.id))


def _insurance(inputs: ClaimInputs, response: dict[str, Any]) -> dict[str, Any]:
    return next((i for i in response.get("insurance") or () if inputs.resolve(i.get("coverage")) is inputs.coverage),
                {})


def inactive_reason(inputs: ClaimInputs, answer: Entry, day: date) -> str | None:
    """Why the answer says the coverage is not in force on ``day`` (None: it is, or it does not say)."""
    res = answer.resource
    if res.get("outcome") == "error":
        unknown = set(load_json("eligibility_answers.json")["unknown_member_reject_reasons"])
        codes = {c.get("code") for err in res.get("error") or () for c in (err.get("code") or {}).get("coding") or ()}
        if codes & unknown:
            return f"the payer does not know the member (AAA {', '.join(sorted(codes & unknown))})"
        return None
    ins = _insurance(inputs, res)
    if ins.get("inforce") is False:
        return "the payer reported the coverage inactive"
    end = day_of((ins.get("benefitPeriod") or {}).get("end"))
    if end is not None and day > end:
        return f"the coverage ended on {end}"
    return None


def _number(benefit: dict[str, Any], prefix: str) -> int | None:
    value = benefit.get(f"{prefix}UnsignedInt")
    if value is None and str(benefit.get(f"{prefix}String") or "").isdigit():
        value = int(benefit[f"{prefix}String"])
    return int(value) if value is not None else None


def _limit(item: dict[str, Any]) -> tuple[int, int] | None:
    """(allowed, used) from an item's ``visit`` benefit (used from ``visit-remaining`` when the
    payer gave the remainder instead)."""
    allowed = used = remaining = None
    for b in item.get("benefit") or ():
        code = next((c.get("code") for c in (b.get("type") or {}).get("coding") or ()), None)
        if code == VISIT:
            allowed, used = _number(b, "allowed"), _number(b, "used")
        elif code == VISIT_REMAINING:
            remaining = _number(b, "allowed")
    if allowed is None:
        return None
    if used is None:
        used = allowed - remaining if remaining is not None else 0
    return allowed, used


def _service_type(item: dict[str, Any]) -> str | None:
    return next((c.get("code") for c in (item.get("category") or {}).get("coding") or ()), None)


def _claim_visits(claim: dict[str, Any], modifier: str) -> set[date]:
    """Dates of service of the claim's lines of the discipline (by its GO/GP/GN modifier)."""
    out = set()
    for it in claim.get("item") or ():
        mods = {c.get("code") for m in it.get("modifier") or () for c in (m.get("coding") or ())[:1]}
        day = day_of(it.get("servicedDate"))
        if modifier in mods and day is not None:
            out.add(day)
    return out


def visit_counts(inputs: ClaimInputs, answer: Entry, claim: dict[str, Any]) -> list[VisitCount]:
    """The visit limits the answer gives for the disciplines ``claim`` bills."""
    ins = _insurance(inputs, answer.resource)
    since = answer_instant(answer.resource)
    out = []
    for disc in disciplines().values():
        here = _claim_visits(claim, disc.modifier)
        if not here:
            continue
        limits = [lim for item in ins.get("item") or () if _service_type(item) == disc.service_type
                  and not item.get("excluded") and (lim := _limit(item)) is not None]
        if not limits:
            continue
        allowed, used = min(limits)
        billed: set[date] = set()
        for prior in inputs.prior_claims:
            res = prior.resource
            if res.get("status") in ("cancelled", "entered-in-error") or res.get("id") == claim.get("id"):
                continue
            if answer_instant({"created": res.get("created")}) > since:
                billed |= _claim_visits(res, disc.modifier)
        billed -= here
        out.append(VisitCount(disc.code, disc.service_type, allowed, used, len(billed), len(here)))
    return out


def age_days(answer: Entry, claim: dict[str, Any]) -> int | None:
    """Whole days between the answer and the claim's creation (None when the claim has no date)."""
    created = day_of(claim.get("created"))
    if created is None:
        return None
    return (created - answer_instant(answer.resource).date()).days


def max_age_days(inputs: ClaimInputs) -> int:
    """The age after which an answer is refreshed: the caller's setting, else the data file's."""
    if inputs.eligibility_max_age_days is not None:
        return inputs.eligibility_max_age_days
    return int(load_json("eligibility_answers.json")["max_age_days"])


def is_stale(inputs: ClaimInputs, answer: Entry, claim: dict[str, Any]) -> bool:
    age = age_days(answer, claim)
    return age is not None and age > max_age_days(inputs)
