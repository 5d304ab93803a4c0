"""From clinical blocks to billing lines: the decisions a biller makes, made once.

``plan_billing`` reads ``ClaimInputs`` and returns a ``BillingPlan``: the lines to bill (code,
date, units, modifiers, fee, diagnoses, clinicians) and the findings met on the way (a code
whose minutes earn no unit, an overlapping NCCI pair, a plan of care that has lapsed …).
``claim.build_claim`` turns the plan into a Claim; the scrub rules compare any Claim with it.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import fhir_mappings.authorizations as auth_rules
import fhir_mappings.identifiers as identifiers
import fhir_mappings.units as unit_math
import fhir_mappings.vocabulary as vocabulary
from fhir_mappings.charges import ChargeMaster
from fhir_mappings.eligibility_answers import newest_answer
from fhir_mappings.inputs import ClaimInputs, Entry
from fhir_mappings.outcome import Finding
from fhir_mappings.profiles import PayerProfile
from fhir_mappings.resolve import (
    Clinician, care_plan_discipline, clinician, coding_code, cpt_of, day_of, icd10_of, procedure_day,
    procedure_minutes, procedure_times,
)
from fhir_mappings.tables import (
    CPT_SYSTEM, CptCode, certifier_taxonomy, cpt_codes, disciplines, functional_reporting, kx_review_threshold,
    kx_thresholds, ncci_pairs, place_of_service,
)

DISCIPLINE_ORDER = {"OT": 0, "PT": 1, "SLP": 2}
MAX_DIAGNOSES = 12
MAX_POINTERS = 4


@dataclass
class Block:
    """One Procedure: one block of treatment by one performer."""

    entry: Entry
    code: str
    cpt: CptCode
    day: date
    minutes: int | None
    start: datetime | None
    end: datetime | None
    discipline: str | None
    care_plan: Entry | None
    performers: list[Clinician]
    assistant_only: bool
    reasons: list[str]  # ICD-10-CM codes of Procedure.reasonReference


@dataclass
class Line:
    """One claim line: one code, one modifier set, one date of service."""

    day: date
    discipline: str | None
    code: str
    units: int
    blocks: list[Block]
    assistant: bool = False
    modifiers: dict[str, str] = field(default_factory=dict)  # category -> modifier
    ordered_modifiers: list[str] = field(default_factory=list)
    fee: Decimal | None = None
    expected_allowed: Decimal = Decimal(0)
    rendering: Clinician | None = None
    certifier: Clinician | None = None
    assistants: list[Clinician] = field(default_factory=list)
    diagnoses: list[str] = field(default_factory=list)  # ICD-10-CM codes pointed to

    @property
    def key(self) -> tuple[date, str]:
        return self.day, self.code


@dataclass
class PlanOfCare:
    discipline: str
    entry: Entry | None
    start: date | None
    end: date | None
    certifier: Clinician | None
    current: bool  # the date of service is inside the certified interval
    certified: bool  # a qualifying physician/NPP is on the plan


@dataclass
class BillingPlan:
    profile: PayerProfile
    service_day: date
    blocks: list[Block]
    lines: list[Line]
    plans: dict[str, PlanOfCare]
    diagnoses: list[str]  # ICD-10-CM codes, principal first, at most 12
    rendering: Clinician | None
    place_of_service: str | None
    pre_auth_refs: list[str]
    accident_date: str | None
    pc_claim_number: str | None
    findings: list[Finding] = field(default_factory=list)
    #: The patient's allowed therapy amounts this year before this claim, per KX bucket, when the
    #: KX rule read them (``kx_year_to_date``): the deadline checks start from the same figures.
    kx_before: dict[str, Decimal] | None = None
    #: ``treatment_days_since_report`` per discipline, once worked out (the progress-report edit
    #: and the deadline checks both ask).
    treatment_days: dict[str, tuple[int, date] | None] = field(default_factory=dict, repr=False, compare=False)

    def add(self, rule_id: str, expression: str, text: str) -> None:
        self.findings.append(Finding(rule_id, expression, text))


def plan_billing(inputs: ClaimInputs, profile: PayerProfile, charges: ChargeMaster,
                 *, claim_id: str | None = None) -> BillingPlan:
    """Decide the lines of the claim for ``inputs`` under ``profile`` (pure; no clock, no I/O)."""
    enc = inputs.encounter.resource
    service_day = day_of((enc.get("period") or {}).get("start")) or date.min
    plan = BillingPlan(profile=profile, service_day=service_day, blocks=[], lines=[], plans={}, diagnoses=[],
                       rendering=None, place_of_service=None, pre_auth_refs=[], accident_date=None,
                       pc_claim_number=None)
    plan.blocks = _blocks(inputs, plan)
    if plan.blocks:
        plan.service_day = min(b.day for b in plan.blocks)
    _plans_of_care(inputs, plan)
    plan.lines = _lines(plan)
    _clinicians(inputs, plan)
    _ncci(plan)
    _assistant_modifiers(plan)
    _discipline_modifiers(plan)
    _fees(inputs, plan, charges)
    _kx(inputs, plan, claim_id, charges)
    _order_modifiers(plan)
    _diagnoses(inputs, plan)
    _place_of_service(inputs, plan)
    _authorization(inputs, plan)
    _workers_comp(inputs, plan)
    _progress_report(inputs, plan)
    return plan


# --- blocks -------------------------------------------------------------------------------

def _blocks(inputs: ClaimInputs, plan: BillingPlan) -> list[Block]:
    table = cpt_codes()
    flr_from, flr_codes, _ = functional_reporting()
    out: list[Block] = []
    for entry in inputs.procedures:
        proc = entry.resource
        if proc.get("status") != "completed":
            plan.add("PROC-NOT-COMPLETED", f"{entry.path}.status",
                     f"Procedure {entry.id} is '{proc.get('status')}', so it is not billed; mark it completed if it was done.")
            continue
        code = cpt_of(proc)
        day = procedure_day(proc, inputs.encounter.resource) or plan.service_day
        if code in flr_codes and day >= flr_from:
            continue  # functional reporting ended 2019-01-01 [Noridian-FLR]; never billed again
        cpt = table.get(code or "")
        if cpt is None:
            plan.add("THER-CPT-UNKNOWN", f"{entry.path}.code",
                     f"Procedure {entry.id} has CPT code {code or '(none)'} which is not in the therapy code table; "
                     "code it with a CPT therapy code (system http://www.ama-assn.org/go/cpt).")
            continue
        minutes, why = procedure_minutes(proc)
        if cpt.timed and minutes is None:
            plan.add("THER-MINUTES-MISSING", f"{entry.path}.performedPeriod",
                     f"{code} is billed per 15 minutes but Procedure {entry.id} has no minutes: {why}.")
            continue
        performers = [c for c in (clinician(inputs, p.get("actor")) for p in proc.get("performer", ())) if c]
        start, end = procedure_times(proc)
        discipline, care_plan = _discipline(inputs, proc, performers, cpt, day)
        reasons = [icd10_of(c.resource) for c in (inputs.resolve(r) for r in proc.get("reasonReference", ())) if c]
        out.append(Block(
            entry, code, cpt, day, minutes, start, end, discipline, care_plan, performers,
            bool(performers) and all(p.kind == "assistant" for p in performers),
            [r for r in reasons if r],
        ))
    return out


def _discipline(inputs: ClaimInputs, proc: dict[str, Any], performers: list[Clinician], cpt: CptCode,
                day: date) -> tuple[str | None, Entry | None]:
    """Discipline of a block: the CarePlan it is based on, else its performer's taxonomy, else the
    patient's only plan, else the code's only discipline (GO/GP/GN follow the plan [TRP-modifiers])."""
    for ref in proc.get("basedOn", ()):
        cp = inputs.resolve(ref)
        if cp is not None and cp.resource["resourceType"] == "CarePlan":
            return care_plan_discipline(cp.resource), cp
    discipline = next((p.discipline for p in performers if p.discipline), None)
    if discipline is None:
        found = {care_plan_discipline(cp.resource) for cp in inputs.care_plans} - {None}
        if len(found) == 1:
            discipline = found.pop()
        elif len(cpt.disciplines) == 1:
            discipline = cpt.disciplines[0]
    return discipline, _care_plan_for(inputs, discipline, day)


def _care_plan_for(inputs: ClaimInputs, discipline: str | None, day: date) -> Entry | None:
    if discipline is None:
        return None
    candidates = [cp for cp in inputs.care_plans if care_plan_discipline(cp.resource) == discipline
                  and cp.resource.get("status") not in ("entered-in-error", "revoked", "draft")]

    def covers(cp: Entry) -> bool:
        p = cp.resource.get("period") or {}
        s, e = day_of(p.get("start")), day_of(p.get("end"))
        return (s is None or s <= day) and (e is None or day <= e)

    candidates.sort(key=lambda cp: (not covers(cp), -(day_of((cp.resource.get("period") or {}).get("start"))
                                                      or date.min).toordinal(), cp.id))
    return candidates[0] if candidates else None


# --- plan of care -------------------------------------------------------------------------

DELAYED_CERTIFICATION_DAYS = 30  # MBPM ch.15 §220.1.3 [MBPM-181]


def _delayed_certification(plan: BillingPlan, entry: Entry, start: date | None, disc: str) -> None:
    """Warn when the plan was certified (``CarePlan.created``, the date the physician/NPP signed)
    more than 30 days after the initial evaluation (``period.start``, the start of care): Medicare
    then wants a delayed certification statement with the reason (MBPM ch.15 §220.1.3)."""
    if not plan.profile.certifier_required or start is None:
        return
    signed = day_of(entry.resource.get("created"))
    if signed is not None and (signed - start).days > DELAYED_CERTIFICATION_DAYS:
        plan.add("THER-POC-DELAYED-CERT", f"{entry.path}.created",
                 f"The {disc} plan of care was certified on {signed}, {(signed - start).days} days after the initial "
                 f"evaluation ({start}); attach the delayed certification statement: the reason for the delay and "
                 "the record of the physician/NPP's involvement (orders, notes, requests for signature).")


def _plans_of_care(inputs: ClaimInputs, plan: BillingPlan) -> None:
    """Check each discipline's plan: certified interval, 90-day limit, certifier (MBPM ch.15 §220.1)."""
    profile = plan.profile
    allowed, excluded = certifier_taxonomy()
    for b in plan.blocks:
        if b.discipline is None:
            plan.add("THER-POC-MISSING", f"{b.entry.path}.basedOn",
                     f"Cannot tell whether {b.code} was OT, PT or SLP: link the Procedure to its plan of care "
                     "(Procedure.basedOn) or give the CarePlan a discipline category.")
    for disc in sorted({b.discipline for b in plan.blocks if b.discipline}, key=DISCIPLINE_ORDER.get):
        blocks = [b for b in plan.blocks if b.discipline == disc]
        entry = next((b.care_plan for b in blocks if b.care_plan), None)
        first, last = min(b.day for b in blocks), max(b.day for b in blocks)
        if entry is None:
            plan.plans[disc] = PlanOfCare(disc, None, None, None, None, False, False)
            plan.add("THER-POC-MISSING", blocks[0].entry.path,
                     f"No {disciplines()[disc].label} plan of care (CarePlan) is on file for this patient; "
                     "add the certified plan so the lines can carry their therapy modifier.")
            continue
        cp = entry.resource
        period = cp.get("period") or {}
        start, end = day_of(period.get("start")), day_of(period.get("end"))
        current = start is not None and start <= first and (end is None or last <= end)
        if not current:
            plan.add("THER-POC-DOS-OUTSIDE", f"{entry.path}.period",
                     f"The date of service {last if start and start <= first else first} is outside the plan of care's certified interval "
                     f"({start or '?'} to {end or 'open'}); get the plan recertified to cover this date.")
        limit = profile.max_certification_days
        if limit and start is not None and (last - start).days >= limit:
            current = False
            plan.add("THER-POC-90-DAYS", f"{entry.path}.period.start",
                     f"The date of service {last} is more than {limit} days after the plan started ({start}); "
                     "Medicare needs a recertification signed by the physician/NPP.")
        _delayed_certification(plan, entry, start, disc)
        certifier = clinician(inputs, cp.get("author"))
        certified = certifier is not None and certifier.npi is not None and bool(certifier.taxonomy) \
            and certifier.taxonomy.startswith(allowed) and not certifier.taxonomy.startswith(excluded)
        if profile.certifier_required and not certified:
            if certifier is None:
                why = "has no author (the certifying physician/NPP)"
            elif certifier.taxonomy and certifier.taxonomy.startswith(excluded):
                why = "is certified by a chiropractor or dentist, who may not certify therapy plans"
            elif not certifier.npi:
                why = "is certified by a practitioner without an NPI"
            else:
                why = "is certified by a practitioner whose taxonomy is not a physician or NPP"
            plan.add("THER-POC-CERTIFIER", f"{entry.path}.author",
                     f"The {disc} plan of care {why}; have a physician or NPP sign it and record them as CarePlan.author.")
        if not profile.certifier_required:
            certified = certifier is not None  # payers without the Medicare rule: any recorded author
        plan.plans[disc] = PlanOfCare(disc, entry, start, end, certifier, current, certified)


# --- lines and units ----------------------------------------------------------------------

def _lines(plan: BillingPlan) -> list[Line]:
    """Units per code per date: total-time per discipline (Medicare) or per code (AMA)."""
    profile = plan.profile
    groups: dict[tuple[date, str | None], list[Block]] = defaultdict(list)
    for b in plan.blocks:
        groups[(b.day, b.discipline)].append(b)
    lines: list[Line] = []
    for (day, disc), blocks in sorted(groups.items(), key=lambda kv: (kv[0][0], DISCIPLINE_ORDER.get(kv[0][1], 9))):
        by_code: dict[str, list[Block]] = defaultdict(list)
        for b in blocks:
            if b.code in profile.not_separately_billable:
                plan.add("MCR-BUNDLED-OMITTED", f"{b.entry.path}.code",
                         f"{b.code} ({b.cpt.label}) is bundled under this payer and was left off the claim; "
                         "it stays in the record but cannot be billed to the payer or the patient.")
                continue
            by_code[b.code].append(b)
        timed = {code: sum(b.minutes or 0 for b in bs) for code, bs in by_code.items() if bs[0].cpt.timed}
        allocated = unit_math.allocate(profile.unit_method, timed)
        for code in sorted(by_code, key=lambda c: (not by_code[c][0].cpt.is_evaluation, c)):
            bs = by_code[code]
            cpt = bs[0].cpt
            if disc and disc not in cpt.disciplines:
                plan.add("THER-CPT-DISCIPLINE", f"{bs[0].entry.path}.code",
                         f"{code} ({cpt.label}) is not a {disc} code but sits under the {disc} plan of care; "
                         "check the code or link the Procedure to the right plan (Procedure.basedOn).")
            units = allocated.get(code, 0) if cpt.timed else 1
            if cpt.timed and units == 0:
                minutes = timed[code]
                method = "the day's total timed minutes" if profile.unit_method == "total-time" else "its own minutes"
                plan.add("THER-UNITS-ZERO", f"{bs[0].entry.path}",
                         f"{code} ({minutes} min) earns no unit under {method}; it stays documented "
                         "but is not billed.")
                continue
            lines.append(Line(day, disc, code, units, bs))
    return lines


def _assistant_modifiers(plan: BillingPlan) -> None:
    """CO/CQ by the de minimis standard per unit (SSA §1834(v); [CMS-CQCO], [MediClaim-CQ])."""
    if not plan.profile.assistant_modifiers:
        return
    out: list[Line] = []
    for line in plan.lines:
        disc = disciplines().get(line.discipline or "")
        if disc is None or disc.assistant_modifier is None:
            out.append(line)
            continue
        a_min = sum(b.minutes or 0 for b in line.blocks if b.assistant_only)
        t_min = sum(b.minutes or 0 for b in line.blocks if not b.assistant_only)
        if line.blocks[0].cpt.timed:
            t_units, a_units = unit_math.split_assistant_units(line.units, t_min, a_min)
        else:
            by_time = unit_math.untimed_assistant_applies(t_min, a_min)
            only_assistants = all(b.assistant_only for b in line.blocks)
            a_units = 1 if by_time or only_assistants else 0
            t_units = 1 - a_units
        assistants = sorted({p.key: p for b in line.blocks if b.assistant_only for p in b.performers}.values(),
                            key=lambda p: p.key)
        if t_units:
            out.append(Line(line.day, line.discipline, line.code, t_units, line.blocks, False, dict(line.modifiers),
                            rendering=line.rendering, certifier=line.certifier))
        if a_units:
            mods = dict(line.modifiers)
            mods["assistant"] = disc.assistant_modifier
            out.append(Line(line.day, line.discipline, line.code, a_units, line.blocks, True, mods,
                            rendering=line.rendering, certifier=line.certifier, assistants=assistants))
    plan.lines = out


def _discipline_modifiers(plan: BillingPlan) -> None:
    for line in plan.lines:
        disc = disciplines().get(line.discipline or "")
        if disc is not None and plan.plans.get(disc.code) and plan.plans[disc.code].entry is not None:
            line.modifiers["discipline"] = disc.modifier


def _clinicians(inputs: ClaimInputs, plan: BillingPlan) -> None:
    """Rendering therapist per discipline: the therapist performer with the most minutes, else an
    Encounter participant who is a therapist of that discipline (the supervising therapist)."""
    minutes: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    people: dict[str, Clinician] = {}
    for b in plan.blocks:
        for p in b.performers:
            if p.kind == "therapist":
                minutes[b.discipline or ""][p.key] += b.minutes or 0
                people[p.key] = p
    participants = [c for c in (clinician(inputs, part.get("individual"))
                                for part in inputs.encounter.resource.get("participant", ())) if c]
    rendering: dict[str, Clinician | None] = {}
    for disc in sorted({b.discipline or "" for b in plan.blocks}):
        ranked = sorted(minutes[disc].items(), key=lambda kv: (-kv[1], kv[0]))
        if ranked:
            rendering[disc] = people[ranked[0][0]]
        else:
            rendering[disc] = next((c for c in participants if c.kind == "therapist"
                                    and (c.discipline == disc or not disc)), None)
    overall = sorted(((sum(m.values()), d) for d, m in minutes.items()), key=lambda t: (-t[0], t[1]))
    top = overall[0][1] if overall else next(iter(sorted(rendering)), "")
    plan.rendering = rendering.get(top) or next((r for r in rendering.values() if r), None)
    for line in plan.lines:
        line.rendering = rendering.get(line.discipline or "")
        poc = plan.plans.get(line.discipline or "")
        line.certifier = poc.certifier if poc else None


# --- NCCI, fees, KX, ordering -------------------------------------------------------------

def _overlap(a: Block, b: Block) -> bool:
    assert a.start and a.end and b.start and b.end
    return a.start < b.end and b.start < a.end


def _ncci(plan: BillingPlan) -> None:
    """59/X{EPSU} on the column-2 code of a pair with modifier indicator 1 when the blocks were
    distinct; an error when they overlapped [WebPT-59], [APTA-NCCI-QA]."""
    if not plan.profile.ncci:
        return
    by_day: dict[date, dict[str, list[Line]]] = defaultdict(lambda: defaultdict(list))
    for line in plan.lines:
        by_day[line.day][line.code].append(line)
    for day, codes in sorted(by_day.items()):
        for pair in ncci_pairs():
            if pair.column1 not in codes or pair.column2 not in codes or not pair.active_on(day) \
                    or pair.modifier_indicator == "9":
                continue
            col1 = [b for ln in codes[pair.column1] for b in ln.blocks]
            col2 = [b for ln in codes[pair.column2] for b in ln.blocks]
            where = col2[0].entry.path
            if pair.modifier_indicator == "0":
                plan.add("NCCI-PAIR-OVERLAP", where,
                         f"{pair.column2} cannot be billed with {pair.column1} on the same day (NCCI modifier indicator 0); remove it.")
                continue
            if any(b.start is None or b.end is None for b in col1 + col2):
                plan.add("NCCI-PAIR-TIMES-UNKNOWN", f"{where}.performedPeriod",
                         f"{pair.column1} and {pair.column2} form an NCCI pair; record each block's start and end "
                         "times so the separate time blocks can be shown, or drop one code.")
                continue
            if any(_overlap(a, b) for a in col1 for b in col2):
                plan.add("NCCI-PAIR-OVERLAP", f"{where}.performedPeriod",
                         f"{pair.column2} overlapped in time with {pair.column1} (NCCI pair); it cannot be billed "
                         "separately — bill only the time-distinct service or correct the documented times.")
                continue
            for ln in codes[pair.column2]:
                ln.modifiers["distinct"] = plan.profile.distinct_modifier
            plan.add("NCCI-PAIR-DISTINCT", f"{where}.performedPeriod",
                     f"{plan.profile.distinct_modifier} was added to {pair.column2} because it was done in a separate time "
                     f"block from {pair.column1}; the note must show both blocks.")


def _fees(inputs: ClaimInputs, plan: BillingPlan, charges: ChargeMaster) -> None:
    """The fee in force on each line's date of service, for its code and modifiers."""
    payer = inputs.payer.key if inputs.payer else None
    for line in plan.lines:
        mods = line.modifiers.values()
        line.fee = charges.fee(line.code, mods, on=line.day)
        line.expected_allowed = charges.allowed_estimate(line.code, mods, on=line.day, payer=payer) * line.units
        if line.fee is None:
            billed = " ".join([line.code, *sorted(m for m in mods if m)])
            plan.add("CHARGE-MISSING", line.blocks[0].entry.path + ".code",
                     f"{billed} has no fee in force on {line.day.isoformat()} in the practice's fee schedule; "
                     "add an active ChargeItemDefinition for the code covering that date (or load the schedule "
                     "with `therabridge fees load`) and regenerate the claim.")


def kx_year_to_date(inputs: ClaimInputs, year: int, up_to: date, exclude_claim_id: str | None,
                    charges: ChargeMaster | None = None) -> dict[str, Decimal]:
    """Allowed therapy amounts already used this year per KX bucket (OT; PT+SLP).

    ExplanationOfBenefit lines count their ``eligible`` adjudication (the allowed amount,
    deductible and coinsurance included [NGS-KX2024]); Claims without an EOB count the fee
    schedule's expected allowed amount per unit (``ChargeMaster.allowed_estimate``; none without
    ``charges``). The bucket comes from each line's GO/GP/GN.
    """
    by_modifier = {d.modifier: d.kx_bucket for d in disciplines().values()}
    totals: dict[str, Decimal] = defaultdict(Decimal)
    adjudicated: set[str] = set()

    def item_bucket_day(item: dict[str, Any], fallback: str | None) -> tuple[str | None, date | None]:
        mods = [c.get("code") for m in item.get("modifier", ()) for c in m.get("coding", ())]
        bucket = next((by_modifier[m] for m in mods if m in by_modifier), None)
        return bucket, day_of(item.get("servicedDate") or (item.get("servicedPeriod") or {}).get("start") or fallback)

    for e in inputs.eobs:
        eob = e.resource
        if eob.get("status") != "active":
            continue
        claim = inputs.resolve(eob.get("claim"))
        if claim is not None:
            adjudicated.add(claim.id)
        elif eob.get("claim", {}).get("reference"):
            adjudicated.add(eob["claim"]["reference"].split("/")[-1])
        for item in eob.get("item", ()):
            bucket, d = item_bucket_day(item, (eob.get("billablePeriod") or {}).get("start"))
            if bucket is None or d is None or d.year != year or d > up_to:
                continue
            for adj in item.get("adjudication", ()):
                if coding_code(adj.get("category"), "http://terminology.hl7.org/CodeSystem/adjudication") == "eligible":
                    totals[bucket] += Decimal(str((adj.get("amount") or {}).get("value", 0)))
    schedule = charges or ChargeMaster.empty()
    for e in inputs.prior_claims:
        claim = e.resource
        if e.id in adjudicated or e.id == exclude_claim_id or claim.get("status") != "active" or claim.get("use") != "claim":
            continue
        for item in claim.get("item", ()):
            bucket, d = item_bucket_day(item, (claim.get("billablePeriod") or {}).get("start"))
            if bucket is None or d is None or d.year != year or d > up_to:
                continue
            code = coding_code(item.get("productOrService"), CPT_SYSTEM) or ""
            qty = Decimal(str((item.get("quantity") or {}).get("value", 1)))
            mods = [c.get("code") for m in item.get("modifier", ()) for c in m.get("coding", ())]
            payer = (claim.get("insurer") or {}).get("reference")
            totals[bucket] += schedule.allowed_estimate(code, mods, on=d, payer=payer) * qty
    return dict(totals)


def _kx(inputs: ClaimInputs, plan: BillingPlan, claim_id: str | None, charges: ChargeMaster) -> None:
    """KX once the year's allowed amount for the bucket passes the threshold, and only with a
    current certified plan (BBA 2018 §50202; MCPM ch.5 §10.3.3; [Noridian-KX], [NGS-KX2024])."""
    if not plan.profile.kx or not plan.lines:
        return
    year = plan.service_day.year
    thresholds = kx_thresholds().get(year)
    if thresholds is None:
        plan.add("THER-KX-THRESHOLD-UNKNOWN", "Claim.item",
                 f"No therapy (KX) threshold is on file for {year}, so KX cannot be decided: add \"{year}\" with its "
                 "OT and PT-SLP amounts and source (the CY Physician Fee Schedule final rule) under \"years\" "
                 "in fhir_mappings/data/kx_thresholds.json.")
        return
    running = kx_year_to_date(inputs, year, plan.service_day, claim_id, charges)
    plan.kx_before = dict(running)
    review = kx_review_threshold()
    reported: set[tuple[str, str]] = set()

    def first(bucket: str, finding: str) -> bool:
        """True the first time ``finding`` comes up for ``bucket``: each is reported once per claim."""
        if (bucket, finding) in reported:
            return False
        reported.add((bucket, finding))
        return True

    for index, line in enumerate(plan.lines):
        disc = disciplines().get(line.discipline or "")
        if disc is None:
            continue
        bucket = disc.kx_bucket
        before = running.get(bucket, Decimal(0))
        running[bucket] = before + line.expected_allowed
        label = "OT" if bucket == "OT" else "PT and SLP combined"
        if running[bucket] > review and before <= review and first(bucket, "review"):
            plan.add("THER-KX-REVIEW-THRESHOLD", f"Claim.item[{index}]",
                     f"The {label} allowed amount this year passes ${review:,.2f}; the claim may be picked for "
                     "targeted medical review — keep the documentation ready.")
        if running[bucket] <= thresholds[bucket]:
            continue
        poc = plan.plans.get(disc.code)
        if poc is None or not (poc.current and poc.certified):
            if first(bucket, "nocert"):
                plan.add("THER-KX-NO-CERT", f"Claim.item[{index}]",
                         f"The {label} therapy threshold (${thresholds[bucket]:,.2f} for {year}) is passed but the "
                         f"{disc.code} plan of care is not current and certified, so KX cannot be attested; "
                         "get the plan (re)certified first.")
            continue
        line.modifiers["kx"] = "KX"
        if first(bucket, "kx"):
            plan.add("THER-KX-APPLIED", f"Claim.item[{index}].modifier",
                     f"KX was added: the {label} allowed amount this year (about ${running[bucket]:,.2f}) passes "
                     f"the ${thresholds[bucket]:,.2f} threshold for {year}; the record must show the therapy is "
                     "medically necessary.")


def _order_modifiers(plan: BillingPlan) -> None:
    order = plan.profile.modifier_order
    for line in plan.lines:
        line.ordered_modifiers = [line.modifiers[c] for c in order if c in line.modifiers]
        line.ordered_modifiers += [m for c, m in sorted(line.modifiers.items()) if c not in order]


# --- claim-level pieces -------------------------------------------------------------------

def _diagnoses(inputs: ClaimInputs, plan: BillingPlan) -> None:
    """Encounter.diagnosis by rank, then Procedure.reasonReference conditions; 12 at most."""
    enc = inputs.encounter
    ranked = sorted(enumerate(enc.resource.get("diagnosis", ())),
                    key=lambda t: (t[1].get("rank", 10**6), t[0]))
    codes: list[str] = []
    for i, dx in ranked:
        cond = inputs.resolve(dx.get("condition"))
        if cond is None:
            plan.add("DX-MISSING", f"{enc.path}.diagnosis[{i}].condition",
                     "The Encounter lists a diagnosis whose Condition is not in the input; include the Condition.")
            continue
        code = icd10_of(cond.resource)
        if code is None:
            plan.add("DX-FORMAT", f"{cond.path}.code",
                     f"Condition {cond.id} has no ICD-10-CM code (system http://hl7.org/fhir/sid/icd-10-cm); code it in ICD-10-CM.")
            continue
        if code not in codes:
            codes.append(code)
    for b in plan.blocks:
        for code in b.reasons:
            if code not in codes:
                codes.append(code)
    if len(codes) > MAX_DIAGNOSES:
        plan.add("DX-TRUNCATED", f"{enc.path}.diagnosis",
                 f"{len(codes)} diagnoses were documented; the claim keeps the 12 highest-ranked "
                 f"and drops {', '.join(codes[MAX_DIAGNOSES:])}.")
        codes = codes[:MAX_DIAGNOSES]
    plan.diagnoses = codes
    for line in plan.lines:
        reasons = [c for b in line.blocks for c in b.reasons if c in codes]
        pointed = sorted(dict.fromkeys(reasons), key=codes.index)[:MAX_POINTERS]
        line.diagnoses = pointed or codes[:MAX_POINTERS]


def _place_of_service(inputs: ClaimInputs, plan: BillingPlan) -> None:
    system, known, class_map = place_of_service()
    enc = inputs.encounter.resource
    for loc in enc.get("location", ()):
        location = inputs.resolve(loc.get("location"))
        if location is not None:
            for t in location.resource.get("type", ()):
                code = coding_code(t, system)
                if code:
                    plan.place_of_service = code
                    return
    code = (enc.get("class") or {}).get("code")
    plan.place_of_service = class_map.get(code or "")


def _authorization(inputs: ClaimInputs, plan: BillingPlan) -> None:
    """preAuthRef from the payer's authorization (a ClaimResponse, use = preauthorization) whose
    preAuthPeriod covers every date and whose limits the earlier claims under it have not used
    up. Held when the payer requires one (its profile, or the 271's authorizationRequired)
    and none is on file; when the visit falls outside every period of the payer's
    authorizations; or when this claim would pass the visits or units authorized."""
    days = sorted({ln.day for ln in plan.lines}) or [plan.service_day]
    on_file = [e for e in sorted(inputs.authorizations, key=lambda e: e.id)
               if auth_rules.in_force(e.resource) and _same_payer(inputs, e.resource)]
    if not on_file:
        if plan.profile.requires_auth or _eligibility_requires_auth(inputs, plan):
            plan.add("PRIOR-AUTH-MISSING", "Claim.insurance[0].preAuthRef",
                     f"This payer requires an authorization but none on file covers {days[0]}; obtain one "
                     "(or record the payer's ClaimResponse with preAuthRef and preAuthPeriod) before sending.")
        return
    covering = [e for e in on_file if auth_rules.covers(e.resource, days)]
    if not covering:
        spans = ", ".join(f"{e.resource['preAuthRef']} ({_span(e.resource)})" for e in on_file)
        plan.add("AUTH-PERIOD", "Claim.insurance[0].preAuthRef",
                 f"The visit on {days[0]} falls outside every authorized period of this payer: {spans}; "
                 "ask the payer to extend the authorization or record the new one before sending.")
        return
    earlier = [e.resource for e in inputs.prior_claims if not _bills_visit(inputs, e.resource)]
    verdicts = [(e, _overrun(e.resource, earlier, plan)) for e in covering]
    chosen = next((e for e, o in verdicts if not o), None)
    if chosen is not None:
        plan.pre_auth_refs.append(chosen.resource["preAuthRef"])
        return
    # Not billed under an authorization it would overdraw: the held claim uses none of it.
    for text in verdicts[0][1]:
        plan.add("AUTH-EXHAUSTED", "Claim.insurance[0].preAuthRef", text)


def _span(auth: dict[str, Any]) -> str:
    start, end = auth_rules.period(auth)
    return f"{start or 'open'} to {end or 'open'}"


def _same_payer(inputs: ClaimInputs, auth: dict[str, Any]) -> bool:
    """An authorization from the coverage's payer (or one that names no insurer we hold)."""
    insurer = inputs.resolve(auth.get("insurer"))
    return insurer is None or inputs.payer is None or insurer is inputs.payer


def _bills_visit(inputs: ClaimInputs, claim: dict[str, Any]) -> bool:
    """Whether ``claim`` bills this very visit (an earlier version of the claim being made)."""
    return any(inputs.resolve(ref) is inputs.encounter
               for item in claim.get("item") or () for ref in item.get("encounter") or ())


def _overrun(auth: dict[str, Any], earlier: list[dict[str, Any]], plan: BillingPlan) -> list[str]:
    """One sentence per limit of ``auth`` this claim would pass (none when it fits)."""
    used = auth_rules.usage(auth, earlier)
    out = []
    for limit in used.limits:
        if limit.kind == "units":
            this = Decimal(sum(ln.units for ln in plan.lines if ln.code == limit.code))
        else:
            this = Decimal(len({ln.day for ln in plan.lines if ln.discipline == limit.code}))
        before = used.used.get(limit.index, Decimal(0))
        if this and before + this > limit.authorized:
            out.append(f"Authorization {auth['preAuthRef']} allows {auth_rules.unit_word(limit, limit.authorized)} "
                       f"of {limit.code}; {before} used by earlier claims and this claim needs {this}; "
                       "ask the payer for more before sending.")
    return out


def _eligibility_requires_auth(inputs: ClaimInputs, plan: BillingPlan) -> bool:
    """Whether the newest eligibility answer for the coverage (the one the ELIG edits read) says the
    therapy billed needs an authorization (271 EB11 → authorizationRequired)."""
    newest = newest_answer(inputs)
    if newest is None:
        return False
    latest = newest.resource
    billed = {disciplines()[ln.discipline].service_type for ln in plan.lines if ln.discipline in disciplines()}
    for ins in latest.get("insurance") or ():
        if inputs.resolve(ins.get("coverage")) is not inputs.coverage:
            continue
        for item in ins.get("item") or ():
            kinds = {c.get("code") for c in (item.get("category") or {}).get("coding") or ()}
            if item.get("authorizationRequired") is True and (not kinds or kinds & billed or not billed):
                return True
    return False


def _workers_comp(inputs: ClaimInputs, plan: BillingPlan) -> None:
    cov = inputs.coverage.resource
    accident = next((x.get("valueDate") for x in cov.get("extension", ()) if x.get("url") == vocabulary.ACCIDENT_DATE), None)
    if accident is None and plan.profile.requires_accident:
        principal = next((inputs.resolve(d.get("condition")) for d in sorted(
            inputs.encounter.resource.get("diagnosis", ()), key=lambda d: d.get("rank", 10**6))), None)
        if principal is not None:
            onset = principal.resource.get("onsetDateTime")
            accident = onset[:10] if onset else None
    plan.accident_date = accident
    plan.pc_claim_number = identifiers.pc_claim_number(cov)


def _progress_report(inputs: ClaimInputs, plan: BillingPlan) -> None:
    """Warn when more than N treatment days passed since the last progress report ([Noridian-Doc])."""
    every = plan.profile.progress_report_treatment_days
    if not every:
        return
    for disc, poc in plan.plans.items():
        counted = treatment_days_since_report(inputs, plan, disc)
        if counted is None:
            continue
        count, last_report = counted
        if count > every:
            assert poc.entry is not None
            plan.add("THER-POC-PROGRESS-DUE", f"{poc.entry.path}",
                     f"This is treatment day {count} of the {disc} plan since the last progress report "
                     f"({last_report}); a progress report is due at least every {every} treatment days — document one.")


def treatment_days_since_report(inputs: ClaimInputs, plan: BillingPlan, disc: str) -> tuple[int, date] | None:
    """(treatment days of ``disc`` since the last progress report, the report's day — the start
    of care when none), this visit included; None without a dated plan or on an evaluation day
    (an evaluation includes a progress report). Kept on the plan (``inputs`` are the plan's)."""
    if disc not in plan.treatment_days:
        plan.treatment_days[disc] = _treatment_days_since_report(inputs, plan, disc)
    return plan.treatment_days[disc]


def _treatment_days_since_report(inputs: ClaimInputs, plan: BillingPlan, disc: str) -> tuple[int, date] | None:
    modifier_of = {d.modifier: d.code for d in disciplines().values()}
    table = cpt_codes()
    poc = plan.plans.get(disc)
    if poc is None or poc.entry is None or poc.start is None:
        return None
    if any(b.cpt.is_evaluation for b in plan.blocks if b.discipline == disc):
        return None
    last_report = poc.start
    for e in inputs.documents:
        doc = e.resource
        if coding_code(doc.get("type"), vocabulary.THERAPY_DOCUMENT_TYPE) != "progress-report":
            continue
        related = [inputs.resolve(r) for r in (doc.get("context") or {}).get("related", ())]
        if related and poc.entry not in related:
            continue
        d = day_of(doc.get("date"))
        if d and d <= plan.service_day and d > last_report:
            last_report = d
    days: set[date] = {plan.service_day}
    for e in inputs.prior_claims + inputs.eobs:
        res = e.resource
        for item in res.get("item", ()):
            mods = {c.get("code") for m in item.get("modifier", ()) for c in m.get("coding", ())}
            if not any(modifier_of.get(m) == disc for m in mods):
                continue
            d = day_of(item.get("servicedDate"))
            code = coding_code(item.get("productOrService"), CPT_SYSTEM) or ""
            if d is None or d > plan.service_day:
                continue
            if code in table and table[code].is_evaluation and d > last_report:
                last_report = d  # an evaluation or re-evaluation includes a progress report
            days.add(d)
    # Treatment days since the last report; the plan's first day counts when no report followed it.
    count = len({d for d in days if d > last_report or d == last_report == poc.start})
    return count, last_report
