"""Builders for realistic input Bundles: ``make_encounter_bundle(**overrides)``.

The defaults describe a Medicare OT visit on 2025-01-14 at an outpatient clinic (POS 11): an OT
with an OTA, a plan of care certified by a family physician, two ICD-10-CM diagnoses.
All people and numbers are fictitious; NPIs carry valid check digits.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from tests.fees import demo_definitions

NPI = "http://hl7.org/fhir/sid/us-npi"
NUCC = "http://nucc.org/provider-taxonomy"
CPT = "http://www.ama-assn.org/go/cpt"
ICD = "http://hl7.org/fhir/sid/icd-10-cm"
DISCIPLINE = "https://therabridge.dev/fhir/CodeSystem/therapy-discipline"
SOPT = "https://nahdo.org/sopt"
POS = "https://www.cms.gov/Medicare/Coding/place-of-service-codes/Place_of_Service_Code_Set"

PEOPLE = {
    "ot-1": ("Emily", "Jones", "1982736450", "225X00000X"),
    "ota-1": ("Sam", "Rivera", "1555555550", "224Z00000X"),
    "pt-1": ("Ana", "Lopez", "1666666668", "225100000X"),
    "pta-1": ("Lee", "Chen", "1777777776", "225200000X"),
    "slp-1": ("Maya", "Patel", "1444444446", "235Z00000X"),
    "md-1": ("John", "Smith", "1245319599", "207Q00000X"),
    "dc-1": ("Rob", "Bones", "1234567893", "111N00000X"),
}


@dataclass
class Block:
    """One Procedure: code, minutes after the visit start, length, performer (Practitioner id)."""

    code: str
    offset: int
    minutes: int
    performer: str = "ot-1"
    discipline_plan: str | None = None  # CarePlan id for Procedure.basedOn
    minutes_extension: bool = False  # record only a duration (no performedPeriod)
    status: str = "completed"
    reasons: tuple[str, ...] = ()


def practitioner(pid: str) -> dict[str, Any]:
    given, family, npi, taxonomy = PEOPLE[pid]
    return {
        "resourceType": "Practitioner", "id": pid,
        "identifier": [{"system": NPI, "value": npi}],
        "name": [{"family": family, "given": [given]}],
        "qualification": [{"code": {"coding": [{"system": NUCC, "code": taxonomy}]}}],
    }


def care_plan(cp_id: str, discipline: str, start: str, end: str | None, author: str | None = "md-1") -> dict[str, Any]:
    period = {"start": start} | ({"end": end} if end else {})
    res = {
        "resourceType": "CarePlan", "id": cp_id, "status": "active", "intent": "plan",
        "category": [{"coding": [{"system": DISCIPLINE, "code": discipline}]}],
        "subject": {"reference": "Patient/pat-1"}, "period": period,
    }
    if author:
        res["author"] = {"reference": f"Practitioner/{author}"}
    return res


def make_encounter_bundle(
    *,
    day: str = "2025-01-14",
    blocks: list[Block] | None = None,
    coverage_type: tuple[str, str] = (SOPT, "121"),
    payer_id: str = "00952",
    payer_name: str = "Medicare Part B",
    care_plans: list[dict[str, Any]] | None = None,
    extra: list[dict[str, Any]] | None = None,
    pos: str = "11",
    coverage_extra: dict[str, Any] | None = None,
    patient_extra: dict[str, Any] | None = None,
    fees: bool = True,
) -> dict[str, Any]:
    """A collection Bundle with everything a claim needs; override pieces with the arguments.

    ``fees``: include the demo practice's ChargeItemDefinitions for the codes billed (the blocks'
    and those of earlier claims in ``extra``), as the practice's fee schedule."""
    blocks = blocks if blocks is not None else [Block("97165", 0, 45), Block("97530", 45, 30)]
    start = datetime.fromisoformat(f"{day}T09:00:00-06:00")
    last = max((b.offset + b.minutes for b in blocks), default=60)
    resources: list[dict[str, Any]] = [
        {"resourceType": "Patient", "id": "pat-1", "name": [{"family": "Doe", "given": ["Jane"]}],
         "gender": "female", "birthDate": "1948-03-12",
         "address": [{"line": ["42 Elm Street"], "city": "Springfield", "state": "IL", "postalCode": "62702"}]}
        | (patient_extra or {}),
        {"resourceType": "Organization", "id": "org-clinic", "name": "Bright Hands Occupational Therapy",
         "identifier": [{"system": NPI, "value": "1234567893"},
                        {"system": "urn:oid:2.16.840.1.113883.4.4", "value": "371234567"}],
         "address": [{"line": ["100 Main Street"], "city": "Springfield", "state": "IL", "postalCode": "627011234"}]},
        {"resourceType": "Organization", "id": "org-payer", "name": payer_name,
         "identifier": [{"system": "https://therabridge.dev/fhir/sid/payer-id", "value": payer_id}]},
        {"resourceType": "Coverage", "id": "cov-1", "status": "active",
         "type": {"coding": [{"system": coverage_type[0], "code": coverage_type[1]}]},
         "subscriberId": "1EG4TE5MK73", "beneficiary": {"reference": "Patient/pat-1"},
         "payor": [{"reference": "Organization/org-payer"}]} | (coverage_extra or {}),
        {"resourceType": "Location", "id": "loc-1", "name": "Main clinic",
         "type": [{"coding": [{"system": POS, "code": pos}]}]},
        {"resourceType": "Condition", "id": "cond-1", "subject": {"reference": "Patient/pat-1"},
         "code": {"coding": [{"system": ICD, "code": "I69.351"}]}, "onsetDateTime": "2024-11-02"},
        {"resourceType": "Condition", "id": "cond-2", "subject": {"reference": "Patient/pat-1"},
         "code": {"coding": [{"system": ICD, "code": "R27.8"}]}},
    ]
    people = sorted({b.performer for b in blocks} | {"ot-1", "md-1"})
    resources += [practitioner(p) for p in people if p in PEOPLE]
    if care_plans is None:
        care_plans = [care_plan("cp-ot", "OT", day, None)]
    resources += care_plans
    if any(cp.get("author", {}).get("reference") == "Practitioner/dc-1" for cp in care_plans):
        resources.append(practitioner("dc-1"))
    resources.append({
        "resourceType": "Encounter", "id": "enc-1", "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
        "subject": {"reference": "Patient/pat-1"},
        "participant": [{"individual": {"reference": "Practitioner/ot-1"}}],
        "period": {"start": start.isoformat(), "end": (start + timedelta(minutes=last)).isoformat()},
        "diagnosis": [{"condition": {"reference": "Condition/cond-2"}, "rank": 2},
                      {"condition": {"reference": "Condition/cond-1"}, "rank": 1}],
        "location": [{"location": {"reference": "Location/loc-1"}}],
        "serviceProvider": {"reference": "Organization/org-clinic"},
    })
    for n, b in enumerate(blocks, start=1):
        proc: dict[str, Any] = {
            "resourceType": "Procedure", "id": f"proc-{n}", "status": b.status,
            "code": {"coding": [{"system": CPT, "code": b.code}]},
            "subject": {"reference": "Patient/pat-1"}, "encounter": {"reference": "Encounter/enc-1"},
            "performer": [{"actor": {"reference": f"Practitioner/{b.performer}"}}],
        }
        s = start + timedelta(minutes=b.offset)
        if b.minutes_extension:
            proc["performedDateTime"] = s.isoformat()
            proc["extension"] = [{"url": "https://therabridge.dev/fhir/StructureDefinition/procedure-minutes",
                                  "valueQuantity": {"value": b.minutes, "unit": "min",
                                                    "system": "http://unitsofmeasure.org", "code": "min"}}]
        else:
            proc["performedPeriod"] = {"start": s.isoformat(), "end": (s + timedelta(minutes=b.minutes)).isoformat()}
        if b.discipline_plan:
            proc["basedOn"] = [{"reference": f"CarePlan/{b.discipline_plan}"}]
        if b.reasons:
            proc["reasonReference"] = [{"reference": f"Condition/{r}"} for r in b.reasons]
        resources.append(proc)
    resources += copy.deepcopy(extra or [])
    if fees:
        codes = {b.code for b in blocks} | {
            c["code"] for r in extra or () if r["resourceType"] == "Claim"
            for item in r.get("item", ()) for c in item["productOrService"].get("coding", ())}
        resources += demo_definitions(codes)
    return {"resourceType": "Bundle", "type": "collection",
            "entry": [{"fullUrl": f"urn:therabridge:test:{r['resourceType']}/{r['id']}", "resource": r}
                      for r in resources]}


def eob(eob_id: str, day: str, code: str, modifier: str, allowed: float, units: int = 1) -> dict[str, Any]:
    """An adjudicated earlier visit (its allowed amount counts toward the KX threshold)."""
    return {
        "resourceType": "ExplanationOfBenefit", "id": eob_id, "status": "active",
        "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/claim-type", "code": "professional"}]},
        "use": "claim", "patient": {"reference": "Patient/pat-1"}, "created": f"{day}T12:00:00+00:00",
        "insurer": {"reference": "Organization/org-payer"}, "provider": {"reference": "Organization/org-clinic"},
        "outcome": "complete", "insurance": [{"focal": True, "coverage": {"reference": "Coverage/cov-1"}}],
        "item": [{
            "sequence": 1, "servicedDate": day, "quantity": {"value": units},
            "productOrService": {"coding": [{"system": CPT, "code": code}]},
            "modifier": [{"coding": [{"system": "https://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets", "code": modifier}]}],
            "adjudication": [{"category": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/adjudication",
                                                       "code": "eligible"}]},
                              "amount": {"value": allowed, "currency": "USD"}}],
        }],
    }


def preauth(auth_id: str, start: str, end: str, ref: str = "AUTH-7788") -> dict[str, Any]:
    return {
        "resourceType": "ClaimResponse", "id": auth_id, "status": "active",
        "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/claim-type", "code": "professional"}]},
        "use": "preauthorization", "patient": {"reference": "Patient/pat-1"}, "created": f"{start}T08:00:00+00:00",
        "insurer": {"reference": "Organization/org-payer"}, "outcome": "complete",
        "preAuthRef": ref, "preAuthPeriod": {"start": start, "end": end},
    }
