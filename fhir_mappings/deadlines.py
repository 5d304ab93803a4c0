"""Documentation deadlines and therapy thresholds seen ahead of time (pure; no clock, no I/O).

``upcoming`` reads one visit's inputs and billing plan and names what a person should do before
it is too late: a progress report due soon (treatment day N of 10 since the last one), a
recertification due (the certified interval ends within N days), a patient's KX threshold
nearly reached or the targeted medical-review threshold passed. Each item carries a ``key`` that
is stable for its due point, so the caller opens it once.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from functools import cache

from fhir_mappings.charges import ChargeMaster
from fhir_mappings.inputs import ClaimInputs, Entry
from fhir_mappings.plan import BillingPlan, kx_year_to_date, treatment_days_since_report
from fhir_mappings.tables import disciplines, kx_review_threshold, kx_thresholds, load_json

PROGRESS = "progress-report-due"
RECERT = "recertification-due"
KX_APPROACHING = "kx-threshold-approaching"
REVIEW = "medical-review-threshold"
BUCKET_LABEL = {"OT": "OT", "PT-SLP": "PT and SLP combined"}


@dataclass(frozen=True)
class Settings:
    progress_day: int
    recert_days: int
    kx_share: Decimal


@cache
def settings() -> Settings:
    raw = load_json("therapy_deadlines.json")
    return Settings(int(raw["progress_report_task_at_treatment_day"]), int(raw["recertification_task_days_before_end"]),
                    Decimal(raw["kx_approaching_share"]))


@cache
def review_through_year() -> int:
    """The last year the $3,000 targeted medical review threshold is set in law for."""
    return int(load_json("kx_thresholds.json")["targeted_review_threshold"]["through_year"])


@dataclass(frozen=True)
class Upcoming:
    """One work item to open: ``code`` (task code), ``key`` (stable per due point), ``care_plan``
    (the plan it is about, None for the patient-level thresholds), ``due`` and ``text``."""

    code: str
    key: str
    care_plan: Entry | None
    due: date | None
    text: str


def upcoming(inputs: ClaimInputs, plan: BillingPlan, charges: ChargeMaster, claim_id: str | None,
             today: date | None = None) -> list[Upcoming]:
    """The deadlines and thresholds this visit brings near (Medicare profiles only: those with a
    progress-report interval, a certification limit or KX); the recertification is measured from
    ``today`` (the daily sweep) or else the visit's date. ``plan`` is the one planned with the
    same ``claim_id`` and ``charges`` (its KX year-to-date figures are reused)."""
    today = today or plan.service_day
    out: list[Upcoming] = []
    cfg = settings()
    every = plan.profile.progress_report_treatment_days
    for disc, poc in sorted(plan.plans.items()):
        if poc.entry is None:
            continue
        counted = treatment_days_since_report(inputs, plan, disc) if every else None
        if counted is not None and counted[0] >= cfg.progress_day:
            count, last = counted
            out.append(Upcoming(PROGRESS, f"{disc}:{last}", poc.entry, None,
                                f"Treatment day {count} of the {disc} plan since the last progress report ({last}); "
                                f"write the progress report on or before treatment day {every}."))
        limit = plan.profile.max_certification_days
        if limit and poc.start is not None:
            ends = poc.start + timedelta(days=limit - 1)
            ends = min(ends, poc.end) if poc.end else ends
            if ends >= today and (ends - today).days <= cfg.recert_days:
                out.append(Upcoming(RECERT, f"{disc}:{ends}", poc.entry, ends,
                                    f"The {disc} plan of care's certification ends on {ends}; have the physician/NPP "
                                    "sign a recertification before then to keep treating."))
    out += _thresholds(inputs, plan, charges, claim_id)
    return out


def _thresholds(inputs: ClaimInputs, plan: BillingPlan, charges: ChargeMaster, claim_id: str | None) -> list[Upcoming]:
    """KX approaching (share of the year's threshold reached) and the targeted review threshold
    passed, per calendar year and bucket (OT; PT+SLP), counting this claim's lines."""
    if not plan.profile.kx or not plan.lines:
        return []
    year = plan.service_day.year
    thresholds = kx_thresholds().get(year)
    if thresholds is None:
        return []  # THER-KX-THRESHOLD-UNKNOWN holds the claim and says which data to add
    # the plan read them for KX with the same claim and fee schedule (else: read them here)
    totals = dict(plan.kx_before) if plan.kx_before is not None else kx_year_to_date(
        inputs, year, plan.service_day, claim_id, charges)
    for line in plan.lines:
        disc = disciplines().get(line.discipline or "")
        if disc is not None:
            totals[disc.kx_bucket] = totals.get(disc.kx_bucket, Decimal(0)) + line.expected_allowed
    out = []
    review = kx_review_threshold()
    share = settings().kx_share
    for bucket, total in sorted(totals.items()):
        label = BUCKET_LABEL.get(bucket, bucket)
        if total >= thresholds[bucket] * share:
            out.append(Upcoming(KX_APPROACHING, f"{year}:{bucket}", None, None,
                                f"The patient's {label} therapy this year is about ${total:,.2f} of the "
                                f"${thresholds[bucket]:,.2f} KX threshold for {year}; from the threshold on, lines "
                                "carry KX: make sure the record shows medical necessity."))
        if total > review and year <= review_through_year():
            out.append(Upcoming(REVIEW, f"{year}:{bucket}", None, None,
                                f"The patient's {label} therapy this year (about ${total:,.2f}) passed the "
                                f"${review:,.2f} targeted medical review threshold; keep the documentation ready."))
    return out
