"""Small readers for the input resources: codes, dates, minutes, performers, disciplines.

Each returns plain values; nothing here decides billing. The accepted shapes are documented in
PROFILE.md.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import fhir_mappings.identifiers as identifiers
import fhir_mappings.vocabulary as vocabulary
from fhir_mappings.inputs import ClaimInputs, Entry
from fhir_mappings.tables import (
    CPT_SYSTEM, ICD10CM_SYSTEM, NPI_SYSTEM, NUCC_SYSTEM, discipline_category_codes, disciplines,
)


def parse_dt(value: str | None) -> datetime | None:
    """A FHIR dateTime with a time part, else None (date-only values carry no block time)."""
    if not value or len(value) <= 10:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def day_of(value: str | None) -> date | None:
    """The calendar date as written (local to the source system; no time-zone conversion)."""
    return date.fromisoformat(value[:10]) if value and len(value) >= 10 else None


def coding_code(concept: dict[str, Any] | None, system: str) -> str | None:
    for c in (concept or {}).get("coding", ()):
        if c.get("system") == system and c.get("code"):
            return c["code"]
    return None


def npi_of(resource: dict[str, Any] | None) -> str | None:
    return identifiers.npi(resource)


def tin_of(resource: dict[str, Any]) -> str | None:
    return identifiers.tin(resource)


def payer_id_of(org: dict[str, Any] | None) -> str | None:
    return identifiers.payer_id(org)


def member_id_of(coverage: dict[str, Any]) -> str | None:
    """Coverage.subscriberId, else a typed (MB, SN, MC, MA) or own identifier (PROFILE.md, Identifiers)."""
    return identifiers.member_id(coverage)


def cpt_of(procedure: dict[str, Any]) -> str | None:
    return coding_code(procedure.get("code"), CPT_SYSTEM)


def icd10_of(condition: dict[str, Any]) -> str | None:
    code = coding_code(condition.get("code"), ICD10CM_SYSTEM)
    return code.strip().upper() if code else None


def procedure_minutes(procedure: dict[str, Any]) -> tuple[int | None, str | None]:
    """Direct treatment minutes and where they came from.

    The minutes extension (valueQuantity in UCUM ``min``) wins because EHRs that record only a
    duration use it; otherwise ``performedPeriod`` end − start, whole minutes rounded down.
    Returns (None, reason) when neither is usable.
    """
    for ext in procedure.get("extension", ()):
        if ext.get("url") == vocabulary.PROCEDURE_MINUTES:
            q = ext.get("valueQuantity") or {}
            if q.get("value") is None or (q.get("code") or q.get("unit")) != "min":
                return None, "the procedure-minutes extension needs valueQuantity with code 'min'"
            return int(q["value"]), None
    period = procedure.get("performedPeriod") or {}
    start, end = parse_dt(period.get("start")), parse_dt(period.get("end"))
    if start and end and end >= start:
        return int((end - start).total_seconds() // 60), None
    return None, "performedPeriod needs both start and end times (or use the procedure-minutes extension)"


def procedure_times(procedure: dict[str, Any]) -> tuple[datetime | None, datetime | None]:
    period = procedure.get("performedPeriod") or {}
    return parse_dt(period.get("start")), parse_dt(period.get("end"))


def procedure_day(procedure: dict[str, Any], encounter: dict[str, Any]) -> date | None:
    period = procedure.get("performedPeriod") or {}
    return (day_of(period.get("start")) or day_of(procedure.get("performedDateTime"))
            or day_of((encounter.get("period") or {}).get("start")))


def care_plan_discipline(care_plan: dict[str, Any]) -> str | None:
    table = discipline_category_codes()
    for cat in care_plan.get("category", ()):
        for c in cat.get("coding", ()):
            hit = table.get((c.get("system", ""), c.get("code", "")))
            if hit:
                return hit
    return None


@dataclass(frozen=True)
class Clinician:
    """A practitioner as the claim needs it: reference, NPI, NUCC taxonomy and kind."""

    key: str  # Practitioner/<id> (or PractitionerRole/<id> when no Practitioner is known)
    reference: dict[str, Any]
    npi: str | None
    taxonomy: str | None
    kind: str  # therapist | assistant | other
    discipline: str | None
    path: str


def taxonomy_kind(taxonomy: str | None) -> tuple[str, str | None]:
    """(therapist | assistant | other, discipline) from a NUCC taxonomy code prefix."""
    if taxonomy:
        for disc in disciplines().values():
            if taxonomy.startswith(disc.assistant_taxonomy_prefixes):
                return "assistant", disc.code
            if taxonomy.startswith(disc.therapist_taxonomy_prefixes):
                return "therapist", disc.code
    return "other", None


def clinician(inputs: ClaimInputs, ref: dict[str, Any] | None) -> Clinician | None:
    """Resolve a Practitioner or PractitionerRole reference to a Clinician (None when unresolvable)."""
    entry = inputs.resolve(ref)
    if entry is None:
        return None
    res = entry.resource
    role: dict[str, Any] | None = None
    practitioner: Entry | None = entry
    if res["resourceType"] == "PractitionerRole":
        role = res
        practitioner = inputs.resolve(res.get("practitioner"))
    elif res["resourceType"] != "Practitioner":
        return None
    taxonomy = None
    if role is not None:
        taxonomy = next((coding_code(c, NUCC_SYSTEM) for c in role.get("code", ()) if coding_code(c, NUCC_SYSTEM)), None)
    if taxonomy is None and practitioner is not None:
        for q in practitioner.resource.get("qualification", ()):
            taxonomy = coding_code(q.get("code"), NUCC_SYSTEM)
            if taxonomy:
                break
    if taxonomy is None and practitioner is not None:
        for e in inputs.index.values():
            r = e.resource
            if r.get("resourceType") == "PractitionerRole" and inputs.resolve(r.get("practitioner")) is practitioner:
                taxonomy = next((coding_code(c, NUCC_SYSTEM) for c in r.get("code", ()) if coding_code(c, NUCC_SYSTEM)), None)
                if taxonomy:
                    break
    target = practitioner or entry
    npi = npi_of(target.resource) or (npi_of(role) if role else None)
    kind, disc = taxonomy_kind(taxonomy)
    reference: dict[str, Any] = {"reference": target.key}
    if npi:
        reference["identifier"] = {"system": NPI_SYSTEM, "value": npi}
    return Clinician(target.key, reference, npi, taxonomy, kind, disc, target.path)
