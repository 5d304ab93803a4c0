"""What a client may write as an ``Appointment`` (the store's guard for the type): the scheduled
eligibility check acts on it, so every reference it makes must resolve in the practice's own
data — a Patient participant that exists, and no participant, coverage or other reference
naming what the tenant does not hold (another practice's Coverage reads as missing: the store
isolates tenants). Refused whole with 422; nothing is stored."""
from __future__ import annotations

from typing import Any

from app.fhir.errors import FhirError, issue
from app.fhir.extract import reference_target
from app.fhir.registry import registry
from app.fhir.store import Reader, Unit, Version

# (element, its FHIRPath) of the references an Appointment makes that must resolve
REFERENCE_ELEMENTS = ("participant", "supportingInformation", "basedOn", "reasonReference", "slot")


def _references(resource: dict[str, Any]) -> list[tuple[str, str]]:
    """(reference, FHIRPath) of every literal reference the checks cover."""
    out = []
    for i, p in enumerate(resource.get("participant") or []):
        ref = (p.get("actor") or {}).get("reference")
        if ref:
            out.append((ref, f"Appointment.participant[{i}].actor"))
    for element in REFERENCE_ELEMENTS[1:]:
        for i, r in enumerate(resource.get(element) or []):
            if isinstance(r, dict) and r.get("reference"):
                out.append((r["reference"], f"Appointment.{element}[{i}]"))
    return out


def guard(unit: Unit, incoming: dict[str, Any] | None, current: Version | None) -> dict[str, Any] | None:
    """Refuse an Appointment without a known Patient participant, or naming what the tenant does not hold."""
    if incoming is None:
        return None
    server = Reader(unit.ts.store.for_tenant(unit.tenant_id), unit.conn)  # existence, whatever the token sees
    problems = []
    patients = 0
    for ref, where in _references(incoming):
        target = reference_target(ref)
        if target is None or target[0] not in registry().types:
            problems.append((where, f"The reference {ref!r} does not name a resource this server holds"))
            continue
        found = server.current(*target)
        if found is None or found.deleted:
            problems.append((where, f"{target[0]}/{target[1]} does not exist in this practice's data"))
        elif target[0] == "Patient":
            patients += 1
    if not patients and not problems:
        problems.append(("Appointment.participant", "An Appointment needs a participant whose actor is an existing Patient"))
    if problems:
        raise FhirError(422, "business-rule", problems[0][1],
                        issues=[issue("business-rule", text, expression=[where]) for where, text in problems])
    return incoming
