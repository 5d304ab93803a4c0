"""The checks that read the Claim itself, each registered here under the rule ids it serves.

``CHECKS`` maps a rule id to its check; ``rules.py`` binds them to the catalog. Checks that
compare the claim with the clinical record use ``ctx.plan`` (what the record supports) and
return nothing when only the Claim is known.
"""
from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from functools import cached_property
from typing import Any

import fhir_mappings.identifiers as identifiers
import fhir_mappings.vocabulary as vocabulary
from fhir_mappings.claim_items import Item, read_items
from fhir_mappings.eligibility_answers import age_days, inactive_reason, max_age_days, newest_answer, visit_counts
from fhir_mappings.inputs import ClaimInputs
from fhir_mappings.identifiers import npi_is_valid
from fhir_mappings.outcome import Finding
from fhir_mappings.plan import BillingPlan
from fhir_mappings.profiles import PayerProfile
from fhir_mappings.resolve import day_of, member_id_of, npi_of, payer_id_of, tin_of
from fhir_mappings.tables import NUCC_SYSTEM, cpt_codes, disciplines, functional_reporting, msp_types


@dataclass(frozen=True)
class ScrubContext:
    """What a check may read. ``inputs`` and ``plan`` are None when only the Claim is known."""

    claim: dict[str, Any]
    profile: PayerProfile
    inputs: ClaimInputs | None
    plan: BillingPlan | None

    @cached_property
    def items(self) -> list[Item]:
        """The claim's items, parsed once for all checks."""
        return read_items(self.claim)


Check = Callable[[ScrubContext], Iterable[Finding]]

#: Rule id -> the check that reads the Claim for it (filled by ``@check`` below, in this module only).
CHECKS: dict[str, Check] = {}


def check(rule_id: str) -> Callable[[Check], Check]:
    """Register the decorated function as the check for ``rule_id`` (one function may serve several)."""
    def register(fn: Check) -> Check:
        CHECKS[rule_id] = fn
        return fn
    return register


ICD10CM = re.compile(r"^[A-Z][0-9][0-9A-Z](\.?[0-9A-Z]{1,4})?$")
DISTINCT = {"59", "XE", "XS", "XP", "XU"}


def _by_key(ctx: ScrubContext) -> dict[tuple[date | None, str | None], list[Item]]:
    grouped: dict[tuple[date | None, str | None], list[Item]] = defaultdict(list)
    for it in ctx.items:
        grouped[(it.day, it.code)].append(it)
    return grouped


# --- units --------------------------------------------------------------------------------

@check("THER-UNITS-8MIN")
@check("THER-UNITS-PER-CODE")
def units_match_minutes(ctx: ScrubContext) -> Iterator[Finding]:
    if ctx.plan is None:
        return
    rule = "THER-UNITS-8MIN" if ctx.profile.unit_method == "total-time" else "THER-UNITS-PER-CODE"
    expected: dict[tuple[date, str], int] = defaultdict(int)
    for line in ctx.plan.lines:
        if line.blocks[0].cpt.timed:
            expected[line.key] += line.units
    claimed = _by_key(ctx)
    method = ("the day's total timed minutes" if ctx.profile.unit_method == "total-time"
              else "each code's own minutes")
    for (day, code), its in sorted(claimed.items(), key=lambda kv: kv[1][0].index):
        cpt = cpt_codes().get(code or "")
        if cpt is None or not cpt.timed or day is None:
            continue
        billed = sum(i.quantity for i in its)
        want = expected.get((day, code), 0)
        if billed != want:
            yield Finding(rule, f"{its[0].path}.quantity",
                          f"{code} on {day} is billed for {billed} unit(s) but the documented minutes support "
                          f"{want} under {method}; bill {want}.")


@check("THER-UNITS-UNTIMED")
def untimed_one_unit(ctx: ScrubContext) -> Iterator[Finding]:
    for it in ctx.items:
        cpt = cpt_codes().get(it.code or "")
        if cpt is not None and not cpt.timed and it.quantity != 1:
            yield Finding("THER-UNITS-UNTIMED", f"{it.path}.quantity",
                          f"{it.code} ({cpt.label}) is billed once per date of service whatever its length; "
                          f"change the quantity from {it.quantity} to 1.")


@check("THER-LINE-PER-DOS")
def one_line_per_date(ctx: ScrubContext) -> Iterator[Finding]:
    seen: dict[tuple[Any, ...], int] = {}
    for it in ctx.items:
        if it.day is None:
            yield Finding("THER-LINE-PER-DOS", f"{it.path}.servicedDate",
                          f"Line {it.index + 1} ({it.code}) has no single date of service; report each date on its own line.")
            continue
        key = (it.day, it.code, tuple(sorted(it.modifiers)))
        if key in seen:
            yield Finding("THER-LINE-PER-DOS", it.path,
                          f"{it.code} on {it.day} with the same modifiers appears on lines {seen[key] + 1} and "
                          f"{it.index + 1}; combine them into one line with the total units.")
        else:
            seen[key] = it.index


# --- modifiers ----------------------------------------------------------------------------

@check("THER-MOD-DISCIPLINE")
def discipline_modifier(ctx: ScrubContext) -> Iterator[Finding]:
    therapy_mods = {d.modifier: d for d in disciplines().values()}
    expected: dict[tuple[date, str], str] = {}
    if ctx.plan is not None:
        for line in ctx.plan.lines:
            if "discipline" in line.modifiers:
                expected[line.key] = line.modifiers["discipline"]
    for it in ctx.items:
        if it.code not in cpt_codes():
            continue
        present = [m for m in it.modifiers if m in therapy_mods]
        want = expected.get((it.day, it.code)) if it.day else None
        if not present:
            hint = f"add {want}" if want else "add GO, GP or GN for the plan of care's discipline"
            yield Finding("THER-MOD-DISCIPLINE", f"{it.path}.modifier",
                          f"{it.code} has no therapy modifier; {hint}.")
        elif len(present) > 1:
            yield Finding("THER-MOD-DISCIPLINE", f"{it.path}.modifier",
                          f"{it.code} carries {' and '.join(present)}; a line belongs to one plan of care — keep one.")
        elif want and present[0] != want:
            yield Finding("THER-MOD-DISCIPLINE", f"{it.path}.modifier",
                          f"{it.code} carries {present[0]} but was delivered under the plan of care that needs {want}; "
                          f"change it to {want}.")


@check("THER-MOD-ASSISTANT")
def assistant_modifier(ctx: ScrubContext) -> Iterator[Finding]:
    pairs = {d.assistant_modifier: d.modifier for d in disciplines().values() if d.assistant_modifier}
    for it in ctx.items:
        for a, disc in pairs.items():
            if a in it.modifiers and disc not in it.modifiers:
                yield Finding("THER-MOD-ASSISTANT", f"{it.path}.modifier",
                              f"{a} must go with {disc} on the same line; {it.code} has {a} without {disc}.")
    if ctx.plan is None or not ctx.profile.assistant_modifiers:
        return
    expected: dict[tuple[date, str], int] = defaultdict(int)
    for line in ctx.plan.lines:
        if line.assistant:
            expected[line.key] += line.units
    for (day, code), its in _by_key(ctx).items():
        if day is None or code is None:
            continue
        billed = sum(i.quantity for i in its if set(i.modifiers) & set(pairs))
        want = expected.get((day, code), 0)
        if billed != want:
            yield Finding("THER-MOD-ASSISTANT", f"{its[0].path}.modifier",
                          f"{code} on {day}: {want} unit(s) were furnished in part by an assistant (more than 10 % of "
                          f"the unit on their own) but {billed} carry CO/CQ; put CO/CQ on exactly {want} unit(s).")


def _without_planned_modifier(ctx: ScrubContext, category: str, accepted: set[str]) -> Iterator[Item]:
    """The items on a date and code the plan gave a ``category`` modifier (kx, distinct) that carry
    none of ``accepted``; nothing when only the Claim is known."""
    if ctx.plan is None:
        return
    needs = {line.key for line in ctx.plan.lines if category in line.modifiers}
    for it in ctx.items:
        if it.day and (it.day, it.code) in needs and not accepted & set(it.modifiers):
            yield it


@check("THER-KX-REQUIRED")
def kx_present(ctx: ScrubContext) -> Iterator[Finding]:
    for it in _without_planned_modifier(ctx, "kx", {"KX"}):
        yield Finding("THER-KX-REQUIRED", f"{it.path}.modifier",
                      f"{it.code} is past this year's therapy threshold; add KX (the record must support medical "
                      "necessity) or the line is denied (PR-119).")


@check("NCCI-PAIR-MODIFIER")
def ncci_modifier(ctx: ScrubContext) -> Iterator[Finding]:
    for it in _without_planned_modifier(ctx, "distinct", DISTINCT):
        yield Finding("NCCI-PAIR-MODIFIER", f"{it.path}.modifier",
                      f"{it.code} is the column-2 code of an NCCI pair billed the same day and was done in a "
                      f"separate time block; add {ctx.profile.distinct_modifier} (or the fitting X modifier).")


@check("MOD-MAX-FOUR")
def at_most_four(ctx: ScrubContext) -> Iterator[Finding]:
    limit = ctx.profile.max_modifiers
    for it in ctx.items:
        if len(it.modifiers) > limit:
            yield Finding("MOD-MAX-FOUR", f"{it.path}.modifier",
                          f"{it.code} carries {len(it.modifiers)} modifiers ({', '.join(it.modifiers)}); the 837P "
                          f"takes {limit} — ask the payer which to keep.")


@check("MOD-FLR-DISCONTINUED")
def no_functional_reporting(ctx: ScrubContext) -> Iterator[Finding]:
    start, gcodes, severities = functional_reporting()
    for it in ctx.items:
        code = next((c.get("code") for c in (it.raw.get("productOrService") or {}).get("coding", ())), None)
        if it.day is None or it.day < start:
            continue
        if code in gcodes or set(it.modifiers) & severities:
            yield Finding("MOD-FLR-DISCONTINUED", it.path,
                          f"Line {it.index + 1} reports functional limitation data, which Medicare stopped using "
                          "for dates from 2019-01-01; remove the G-code line and severity modifiers.")


@check("THER-EVAL-ONE-PER-DAY")
def one_evaluation(ctx: ScrubContext) -> Iterator[Finding]:
    seen: dict[tuple[Any, str], Item] = {}
    therapy_mods = {d.modifier for d in disciplines().values()}
    for it in ctx.items:
        cpt = cpt_codes().get(it.code or "")
        if cpt is None or not cpt.is_evaluation:
            continue
        disc = next((m for m in it.modifiers if m in therapy_mods), cpt.disciplines[0])
        key = (it.day, disc)
        if key in seen:
            yield Finding("THER-EVAL-ONE-PER-DAY", it.path,
                          f"{seen[key].code} and {it.code} are both evaluations for the same discipline on {it.day}; "
                          "bill one and remove the other.")
        else:
            seen[key] = it


@check("MCR-97010-BUNDLED")
def bundled(ctx: ScrubContext) -> Iterator[Finding]:
    for it in ctx.items:
        if it.code in ctx.profile.not_separately_billable:
            yield Finding("MCR-97010-BUNDLED", it.path,
                          f"{it.code} is bundled under Medicare and never paid separately (nor billable to the "
                          "patient); remove the line.")


# --- claim-level --------------------------------------------------------------------------

def _add_months(d: date, months: int) -> date:
    y, m = divmod(d.month - 1 + months, 12)
    year, month = d.year + y, m + 1
    for day in (d.day, 30, 29, 28):
        try:
            return date(year, month, min(d.day, day))
        except ValueError:
            continue
    raise ValueError(d)


@check("TIMELY-FILING")
def timely_filing(ctx: ScrubContext) -> Iterator[Finding]:
    """Medicare: one calendar year after the date of service (a 29 Feb date runs to 28 Feb) [Noridian-TF]."""
    created = day_of(ctx.claim.get("created"))
    days = [it.day for it in ctx.items if it.day]
    if created is None or not days:
        return
    first = min(days)
    p = ctx.profile
    if p.timely_filing_months:
        deadline = _add_months(first, p.timely_filing_months)
    elif p.timely_filing_days:
        deadline = first + timedelta(days=p.timely_filing_days)
    else:
        return
    if created > deadline:
        yield Finding("TIMELY-FILING", "Claim.created",
                      f"The earliest date of service is {first}; the filing limit for this payer ended on {deadline}, "
                      "so the claim will be denied (CARC 29) unless an exception applies.")


@check("DX-MISSING")
def has_diagnosis(ctx: ScrubContext) -> Iterator[Finding]:
    if not ctx.claim.get("diagnosis"):
        yield Finding("DX-MISSING", "Claim.diagnosis",
                      "The claim has no diagnosis; rank the treated ICD-10-CM conditions on the Encounter (Encounter.diagnosis).")


@check("DX-FORMAT")
def diagnosis_format(ctx: ScrubContext) -> Iterator[Finding]:
    for i, dx in enumerate(ctx.claim.get("diagnosis", ())):
        codes = [c.get("code", "") for c in (dx.get("diagnosisCodeableConcept") or {}).get("coding", ())]
        if not codes or not ICD10CM.match(codes[0] or ""):
            yield Finding("DX-FORMAT", f"Claim.diagnosis[{i}].diagnosisCodeableConcept",
                          f"Diagnosis {i + 1} ({codes[0] if codes else 'no code'}) is not a well-formed ICD-10-CM code; "
                          "correct it on the Condition.")


@check("DX-MAX-12")
def at_most_twelve(ctx: ScrubContext) -> Iterator[Finding]:
    n = len(ctx.claim.get("diagnosis", ()))
    if n > 12:
        yield Finding("DX-MAX-12", "Claim.diagnosis",
                      f"The claim has {n} diagnoses; the 837P carries 12 — keep the 12 most relevant.")


@check("DX-POINTERS")
def pointers(ctx: ScrubContext) -> Iterator[Finding]:
    known = {dx.get("sequence") for dx in ctx.claim.get("diagnosis", ())}
    for it in ctx.items:
        seqs = it.raw.get("diagnosisSequence") or []
        if not seqs or len(seqs) > 4 or any(s not in known for s in seqs):
            yield Finding("DX-POINTERS", f"{it.path}.diagnosisSequence",
                          f"{it.code} points to diagnoses {seqs or 'none'}; a line needs 1 to 4 pointers to "
                          "diagnoses listed on the claim.")


@check("CLAIM-TOTAL")
def total_matches(ctx: ScrubContext) -> Iterator[Finding]:
    for it in ctx.items:
        price = (it.raw.get("unitPrice") or {}).get("value")
        net = (it.raw.get("net") or {}).get("value")
        if price is not None and net is not None and Decimal(str(price)) * it.quantity != Decimal(str(net)):
            yield Finding("CLAIM-TOTAL", f"{it.path}.net",
                          f"Line {it.index + 1} ({it.code}): net {net} is not unit price {price} x quantity "
                          f"{it.quantity}; recompute the line charge.")
    total = Decimal(str((ctx.claim.get("total") or {}).get("value", 0)))
    net = sum((Decimal(str((it.raw.get("net") or {}).get("value", 0))) for it in ctx.items), Decimal(0))
    if total != net:
        yield Finding("CLAIM-TOTAL", "Claim.total",
                      f"Claim.total is {total} but the lines add up to {net}; set the total to the sum of the lines.")


@check("NPI-CHECK-DIGIT")
def npi_digits(ctx: ScrubContext) -> Iterator[Finding]:
    refs = [("Claim.provider", ctx.claim.get("provider") or {})]
    refs += [(f"Claim.careTeam[{i}].provider", m.get("provider") or {}) for i, m in enumerate(ctx.claim.get("careTeam", ()))]
    for path, ref in refs:
        npi = identifiers.npi(None, ref)
        if npi is not None and not npi_is_valid(npi):
            yield Finding("NPI-CHECK-DIGIT", f"{path}.identifier",
                          f"NPI {npi} fails the check digit; correct the NPI on "
                          f"{ref.get('reference', 'the provider')} (it must match NPPES).")


@check("RENDERING-PROVIDER")
def rendering(ctx: ScrubContext) -> Iterator[Finding]:
    team = {m.get("sequence"): m for m in ctx.claim.get("careTeam", ())}
    for it in ctx.items:
        seqs = it.raw.get("careTeamSequence") or []
        member = team.get(seqs[0]) if seqs else None
        role = next((c.get("code") for c in ((member or {}).get("role") or {}).get("coding", ())), None)
        if member is None or role != "primary":
            yield Finding("RENDERING-PROVIDER", f"{it.path}.careTeamSequence",
                          f"{it.code} has no rendering therapist; record the treating therapist as the Procedure "
                          "performer (an assistant cannot be the rendering provider — add the supervising therapist "
                          "as an Encounter participant).")
            continue
        npi = identifiers.npi(None, member.get("provider"))
        taxonomy = next((c.get("code") for c in (member.get("qualification") or {}).get("coding", ())
                         if c.get("system") == NUCC_SYSTEM), None)
        if not npi or not taxonomy:
            missing = " and ".join(x for x, v in (("NPI", npi), ("NUCC taxonomy", taxonomy)) if not v)
            yield Finding("RENDERING-PROVIDER", f"Claim.careTeam[{list(team).index(seqs[0])}].provider",
                          f"The rendering therapist for {it.code} has no {missing}; add it to the Practitioner "
                          "(identifier) or PractitionerRole (code).")


@check("WC-ACCIDENT")
def workers_comp(ctx: ScrubContext) -> Iterator[Finding]:
    if not (ctx.claim.get("accident") or {}).get("date"):
        yield Finding("WC-ACCIDENT", "Claim.accident.date",
                      "The workers' compensation claim has no accident (injury) date; add it to the Coverage "
                      "(accident-date extension) or as the principal Condition's onsetDateTime.")
    focal = next((i for i in ctx.claim.get("insurance", ()) if i.get("focal")), {})
    if not (focal.get("identifier") or {}).get("value"):
        yield Finding("WC-ACCIDENT", "Claim.insurance[0].identifier",
                      "The workers' compensation carrier's claim number is missing; add it to the Coverage "
                      f"identifier (system {vocabulary.PC_CLAIM_NUMBER}).")


@check("MSP-TYPE")
def medicare_secondary_type(ctx: ScrubContext) -> Iterator[Finding]:
    """Medicare after another payer: its Coverage says why Medicare is secondary (the 837P's SBR05)."""
    focal = next((i for i in ctx.claim.get("insurance", ()) if i.get("focal")), None)
    if focal is None or int(focal.get("sequence", 1)) <= 1 or ctx.inputs is None:
        return
    entry = ctx.inputs.resolve(focal.get("coverage"))
    coverage = entry.resource if entry is not None else {}
    code = next((e.get("valueCode") for e in coverage.get("extension") or [] if e.get("url") == vocabulary.MSP_TYPE), None)
    if code not in msp_types():
        n = ctx.claim["insurance"].index(focal)
        yield Finding("MSP-TYPE", f"Claim.insurance[{n}].coverage",
                      f"Medicare is billed as payer {focal.get('sequence')} but Coverage/{coverage.get('id')} "
                      + (f"has the MSP type {code!r}, which is not one of " if code else "does not say why: add ")
                      + f"the extension {vocabulary.MSP_TYPE} (valueCode {', '.join(sorted(msp_types()))}).")


@check("INPUT-REQUIRED")
def required_inputs(ctx: ScrubContext) -> Iterator[Finding]:
    inputs = ctx.inputs
    if inputs is None:
        return
    patient, cov, org = inputs.patient, inputs.coverage, inputs.billing_org
    if inputs.payer is None or not payer_id_of(inputs.payer.resource):
        where = f"{inputs.payer.path}.identifier" if inputs.payer else f"{cov.path}.payor"
        yield Finding("INPUT-REQUIRED", where,
                      "The payer has no payer id; add it to the payer Organization "
                      f"(identifier system {vocabulary.PAYER_ID}, or typed C4BB payerid "
                      "or v2-0203 NIIP).")
    if not member_id_of(cov.resource):
        yield Finding("INPUT-REQUIRED", f"{cov.path}.subscriberId",
                      "The Coverage has no member id; enter Coverage.subscriberId from the insurance card.")
    for field, label in (("birthDate", "birth date"), ("gender", "sex"), ("name", "name")):
        if not patient.resource.get(field):
            yield Finding("INPUT-REQUIRED", f"{patient.path}.{field}", f"The patient's {label} is missing; add it.")
    if not npi_of(org.resource):
        yield Finding("INPUT-REQUIRED", f"{org.path}.identifier",
                      "The billing Organization has no NPI (system http://hl7.org/fhir/sid/us-npi); add it.")
    if not tin_of(org.resource):
        yield Finding("INPUT-REQUIRED", f"{org.path}.identifier",
                      "The billing Organization has no tax id (system urn:oid:2.16.840.1.113883.4.4); add the EIN.")
    if not org.resource.get("address"):
        yield Finding("INPUT-REQUIRED", f"{org.path}.address",
                      "The billing Organization has no street address; the 837P needs one (not a PO box).")
    if ctx.plan is not None and ctx.plan.place_of_service is None:
        yield Finding("INPUT-REQUIRED", f"{inputs.encounter.path}.location",
                      "No place of service: give the Encounter a Location whose type carries the CMS POS code "
                      "(or an Encounter.class of AMB, HH or VR).")


def _answer(ctx: ScrubContext) -> Any:
    """The newest eligibility answer about the claim's Coverage (None without inputs)."""
    return newest_answer(ctx.inputs) if ctx.inputs is not None else None


@check("ELIG-INACTIVE")
def eligibility_inactive(ctx: ScrubContext) -> Iterator[Finding]:
    """The newest answer about the claim's Coverage says it is not in force on the date of service."""
    answer = _answer(ctx)
    days = sorted({it.day for it in ctx.items if it.day})
    if answer is None or not days:
        return
    reason = inactive_reason(ctx.inputs, answer, days[0])
    if reason:
        yield Finding("ELIG-INACTIVE", f"{answer.path}.insurance",
                      f"CoverageEligibilityResponse/{answer.id} of {answer.resource.get('created')}: {reason}, "
                      f"so a claim for {days[0]} would be denied. Confirm the patient's insurance, update the "
                      "Coverage and check eligibility again.")


@check("ELIG-VISIT-LIMIT")
def eligibility_visit_limit(ctx: ScrubContext) -> Iterator[Finding]:
    """Allowed visits against the payer's count plus the visits billed since it answered."""
    answer = _answer(ctx)
    if answer is None:
        return
    for n in visit_counts(ctx.inputs, answer, ctx.claim):
        if n.remaining < 0:
            yield Finding("ELIG-VISIT-LIMIT", f"{answer.path}.insurance",
                          f"CoverageEligibilityResponse/{answer.id} of {answer.resource.get('created')}: "
                          f"{n.allowed} {n.discipline} visits allowed, {n.payer_used} used when the payer answered "
                          f"and {n.billed_since} billed since, so this claim's {n.this_claim} visit(s) exceed the "
                          f"limit by {-n.remaining}. Ask the payer for more visits (or an authorization) or bill "
                          "the patient under the plan's terms.")


@check("ELIG-STALE")
def eligibility_stale(ctx: ScrubContext) -> Iterator[Finding]:
    """The answer relied on is older than the refresh age (the server asks the payer again)."""
    answer = _answer(ctx)
    if answer is None:
        return
    age = age_days(answer, ctx.claim)
    limit = max_age_days(ctx.inputs)
    if age is not None and age > limit:
        yield Finding("ELIG-STALE", f"{answer.path}.created",
                      f"CoverageEligibilityResponse/{answer.id} is {age} days old (older than {limit}); the "
                      "edits used it, and a fresh eligibility check has been asked for.")
