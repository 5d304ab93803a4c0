"""Build the FHIR R4 Claim (a plain dict) from a ``BillingPlan``.

Outputs are built directly as JSON-ready dicts: validating a Claim model costs more than building
the claim, so the models are used on inputs (``inputs.py``) and in the tests, not here.
"""
from __future__ import annotations

import base64
import hashlib
from datetime import datetime
from decimal import Decimal
from typing import Any

import fhir_mappings.vocabulary as vocabulary
from fhir_mappings.charges import ChargeMaster
from fhir_mappings.inputs import ClaimInputs
from fhir_mappings.plan import BillingPlan, Line, plan_billing
from fhir_mappings.profiles import PayerProfile, get_profile
from fhir_mappings.resolve import npi_of, payer_id_of
from fhir_mappings.tables import CPT_SYSTEM, ICD10CM_SYSTEM, NPI_SYSTEM, NUCC_SYSTEM, modifier_system, place_of_service

CARE_TEAM_ROLE_R4 = "http://terminology.hl7.org/CodeSystem/claimcareteamrole"
CARE_TEAM_ROLE_C4BB = "http://hl7.org/fhir/us/carin-bb/CodeSystem/C4BBClaimCareTeamRole"
CLAIM_TYPE = "http://terminology.hl7.org/CodeSystem/claim-type"
PRIORITY = "http://terminology.hl7.org/CodeSystem/processpriority"
DX_TYPE = "http://terminology.hl7.org/CodeSystem/ex-diagnosistype"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
INFO_CATEGORY = "http://terminology.hl7.org/CodeSystem/claiminformationcategory"


def patient_control_number(claim_id: str) -> str:
    """CLM01 for the 837P: ``TB`` + 15 base32 characters of SHA-256(claim_id) — 17 characters,
    upper-case letters and digits only (X12 basic character set), stable for a claim id."""
    digest = hashlib.sha256(claim_id.encode("utf-8")).digest()
    return "TB" + base64.b32encode(digest).decode("ascii")[:15]


def _money(amount: Decimal, currency: str) -> dict[str, Any]:
    return {"value": float(amount.quantize(Decimal("0.01"))), "currency": currency}


def _iso(dt: datetime) -> str:
    if dt.tzinfo is None:
        raise ValueError("created must be timezone-aware (FHIR dateTime with a time needs an offset)")
    return dt.isoformat()


def build_claim(
    inputs: ClaimInputs,
    *,
    profile: PayerProfile | str,
    claim_id: str,
    created: datetime,
    charges: ChargeMaster | None = None,
    plan: BillingPlan | None = None,
) -> dict[str, Any]:
    """The professional Claim for the inputs' Encounter, as FHIR R4 JSON (dict).

    ``profile`` is a PayerProfile or a profile name. ``created`` must be timezone-aware
    (ValueError otherwise). ``charges`` defaults to the ChargeItemDefinitions among the inputs
    (none: every line is unpriced, a CHARGE-MISSING error). ``plan`` lets a caller reuse a plan it already computed.
    """
    charges = charges if charges is not None else ChargeMaster.of_inputs(inputs)
    if isinstance(profile, str):
        profile = get_profile(profile, payer_id_of(inputs.payer.resource) if inputs.payer else None)
    plan = plan or plan_billing(inputs, profile, charges, claim_id=claim_id)
    return claim_from_plan(inputs, plan, claim_id=claim_id, created=created, currency=charges.currency)


def claim_from_plan(inputs: ClaimInputs, plan: BillingPlan, *, claim_id: str, created: datetime,
                    currency: str = "USD") -> dict[str, Any]:
    pcn = patient_control_number(claim_id)
    care_team, seq_of = _care_team(plan)
    dx_seq = {code: i + 1 for i, code in enumerate(plan.diagnoses)}
    pos_system = place_of_service()[0]
    encounter_ref = {"reference": inputs.encounter.key}
    items = []
    total = Decimal(0)
    for n, line in enumerate(plan.lines, start=1):
        net = (line.fee or Decimal(0)) * line.units
        total += net
        items.append(_item(n, pcn, line, seq_of, dx_seq, plan.place_of_service, pos_system, encounter_ref, net, currency))
    days = sorted({ln.day for ln in plan.lines}) or [plan.service_day]
    payer = inputs.payer
    insurer: dict[str, Any] = {"reference": payer.key} if payer else dict(
        (inputs.coverage.resource.get("payor") or [{}])[0])
    payer_id = payer_id_of(payer.resource) if payer else None
    if payer_id:
        insurer["identifier"] = {"system": vocabulary.PAYER_ID, "value": payer_id}
    insurance: dict[str, Any] = {"sequence": 1, "focal": True, "coverage": {"reference": inputs.coverage.key}}
    if plan.pc_claim_number:
        insurance["identifier"] = {"system": vocabulary.PC_CLAIM_NUMBER, "value": plan.pc_claim_number}
    if plan.pre_auth_refs:
        insurance["preAuthRef"] = list(plan.pre_auth_refs)
    claim: dict[str, Any] = {
        "resourceType": "Claim",
        "id": claim_id,
        "identifier": [{"system": vocabulary.PATIENT_CONTROL_NUMBER, "value": pcn}],
        "status": "active",
        "type": {"coding": [{"system": CLAIM_TYPE, "code": "professional"}]},
        "use": "claim",
        "patient": {"reference": inputs.patient.key},
        "billablePeriod": {"start": days[0].isoformat(), "end": days[-1].isoformat()},
        "created": _iso(created),
        "insurer": insurer,
        "provider": _billing_provider(inputs),
        "priority": {"coding": [{"system": PRIORITY, "code": "normal"}]},
    }
    if inputs.service_requests:
        claim["referral"] = {"reference": sorted(e.key for e in inputs.service_requests)[0]}
    if care_team:
        claim["careTeam"] = care_team
    if plan.pc_claim_number:
        # Also in insurance.identifier; the 837P encoder reads REF*Y4 from this supportingInfo entry.
        claim["supportingInfo"] = [{
            "sequence": 1,
            "category": {"coding": [{"system": INFO_CATEGORY, "code": "employmentimpacted"}]},
            "valueString": plan.pc_claim_number,
        }]
    if plan.diagnoses:
        claim["diagnosis"] = [
            {
                "sequence": i + 1,
                "diagnosisCodeableConcept": {"coding": [{"system": ICD10CM_SYSTEM, "code": code}]},
                **({"type": [{"coding": [{"system": DX_TYPE, "code": "principal"}]}]} if i == 0 else {}),
            }
            for i, code in enumerate(plan.diagnoses)
        ]
    claim["insurance"] = [insurance]
    if plan.accident_date:
        claim["accident"] = {"date": plan.accident_date}
        if plan.profile.requires_accident:
            claim["accident"]["type"] = {"coding": [{"system": ACT_CODE, "code": "WPA"}]}
    if items:
        claim["item"] = items
    claim["total"] = _money(total, currency)
    return claim


def _billing_provider(inputs: ClaimInputs) -> dict[str, Any]:
    ref: dict[str, Any] = {"reference": inputs.billing_org.key}
    npi = npi_of(inputs.billing_org.resource)
    if npi:
        ref["identifier"] = {"system": NPI_SYSTEM, "value": npi}
    return ref


def _care_team(plan: BillingPlan) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Rendering therapists (role primary, NUCC qualification), certifying physicians (CARIN BB
    role ``referring`` → 837P 2310A) and assistants (role assist)."""
    members: list[tuple[Any, str, str]] = []
    seen: set[tuple[str, str]] = set()

    def add(person: Any, role_system: str, role: str) -> None:
        if person is not None and (person.key, role) not in seen:
            seen.add((person.key, role))
            members.append((person, role_system, role))

    add(plan.rendering, CARE_TEAM_ROLE_R4, "primary")
    for line in plan.lines:
        add(line.rendering, CARE_TEAM_ROLE_R4, "primary")
    for line in plan.lines:
        add(line.certifier, CARE_TEAM_ROLE_C4BB, "referring")
    for line in plan.lines:
        for a in line.assistants:
            add(a, CARE_TEAM_ROLE_R4, "assist")
    team = []
    seq_of: dict[str, int] = {}
    for n, (person, system, role) in enumerate(members, start=1):
        member: dict[str, Any] = {"sequence": n, "provider": dict(person.reference),
                                  "role": {"coding": [{"system": system, "code": role}]}}
        if person.taxonomy and role != "referring":
            member["qualification"] = {"coding": [{"system": NUCC_SYSTEM, "code": person.taxonomy}]}
        if role == "primary":
            member["responsible"] = True
        team.append(member)
        seq_of[f"{role}:{person.key}"] = n
    return team, seq_of


def _item(n: int, pcn: str, line: Line, seq_of: dict[str, int], dx_seq: dict[str, int], pos: str | None,
          pos_system: str, encounter_ref: dict[str, Any], net: Decimal, currency: str) -> dict[str, Any]:
    item: dict[str, Any] = {
        "extension": [{"url": vocabulary.LINE_CONTROL_NUMBER, "valueString": f"{pcn}-{n}"}],
        "sequence": n,
    }
    team = []
    if line.rendering is not None:
        team.append(seq_of[f"primary:{line.rendering.key}"])
    if line.certifier is not None:
        team.append(seq_of[f"referring:{line.certifier.key}"])
    team += [seq_of[f"assist:{a.key}"] for a in line.assistants]
    if team:
        item["careTeamSequence"] = team
    pointers = [dx_seq[c] for c in line.diagnoses if c in dx_seq]
    if pointers:
        item["diagnosisSequence"] = pointers
    item["productOrService"] = {"coding": [{"system": CPT_SYSTEM, "code": line.code}]}
    if line.ordered_modifiers:
        item["modifier"] = [{"coding": [{"system": modifier_system(m), "code": m}]} for m in line.ordered_modifiers]
    item["servicedDate"] = line.day.isoformat()
    if pos:
        item["locationCodeableConcept"] = {"coding": [{"system": pos_system, "code": pos}]}
    item["quantity"] = {"value": line.units}
    if line.fee is not None:
        item["unitPrice"] = _money(line.fee, currency)
    item["net"] = _money(net, currency)
    item["encounter"] = [dict(encounter_ref)]
    return item
