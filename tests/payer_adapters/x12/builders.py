"""Realistic FHIR R4 input for the X12 codec: claim bundles as the mapping produces them.

``medicare_ot_bundle()``, ``commercial_bundle()``, ``workers_comp_bundle()``,
``replacement_bundle()``, ``void_bundle()`` and ``eligibility_bundle()``; every builder takes
overrides so tests state only what they care about.
"""
from __future__ import annotations

import copy
from typing import Any

import fhir_mappings.vocabulary as vocabulary
import payer_adapters.x12.resources as R

ROLE = "http://terminology.hl7.org/CodeSystem/claimcareteamrole"
C4BB_ROLE = "http://hl7.org/fhir/us/carin-bb/CodeSystem/C4BBClaimCareTeamRole"
POS = "https://www.cms.gov/Medicare/Coding/place-of-service-codes/Place_of_Service_Code_Set"
FILING = "https://therabridge.dev/fhir/CodeSystem/x12-claim-filing-indicator"
INFO = "http://terminology.hl7.org/CodeSystem/claiminformationcategory"
CLAIM_DATE = "https://therabridge.dev/fhir/CodeSystem/claim-date"


def billing_org(*, po_box: bool = False, npi: str = "1234567893") -> dict[str, Any]:
    address = [{"use": "work", "type": "physical", "line": ["100 Main Street"], "city": "Springfield",
                "state": "IL", "postalCode": "62701-1234"}]
    if po_box:
        address.append({"use": "billing", "type": "postal", "line": ["PO Box 4411"], "city": "Springfield",
                        "state": "IL", "postalCode": "627054411"})
    return {
        "resourceType": "Organization", "id": "billing",
        "identifier": [{"system": R.NPI, "value": npi}, {"system": R.TIN, "value": "37-1234567"}],
        "type": [{"coding": [{"system": R.NUCC, "code": "225X00000X"}]}],
        "name": "Bright Hands Occupational Therapy", "address": address,
    }


def payer_org(name: str = "Medicare Part B", payer_id: str = "00952", oid: str = "payer") -> dict[str, Any]:
    return {"resourceType": "Organization", "id": oid, "name": name,
            "identifier": [{"system": vocabulary.PAYER_ID, "value": payer_id}]}


def patient(pid: str = "pat1", family: str = "Doe", given: str = "Jane", birth: str = "1948-03-12",
            gender: str = "female") -> dict[str, Any]:
    return {"resourceType": "Patient", "id": pid, "name": [{"family": family, "given": [given]}],
            "gender": gender, "birthDate": birth,
            "address": [{"line": ["42 Elm Street"], "city": "Springfield", "state": "IL", "postalCode": "62702"}]}


def practitioner(pid: str, family: str, given: str, npi: str) -> dict[str, Any]:
    return {"resourceType": "Practitioner", "id": pid, "name": [{"family": family, "given": [given]}],
            "identifier": [{"system": R.NPI, "value": npi}]}


def coverage(*, cid: str = "cov1", member: str = "1EG4TE5MK73", filing: str = "MB", payer: str = "payer",
             relationship: str = "self", subscriber: str | None = None, group: str | None = None) -> dict[str, Any]:
    cov: dict[str, Any] = {
        "resourceType": "Coverage", "id": cid, "status": "active", "subscriberId": member,
        "type": {"coding": [{"system": FILING, "code": filing}]},
        "beneficiary": {"reference": "Patient/pat1"},
        "relationship": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/subscriber-relationship",
                                     "code": relationship}]},
        "payor": [{"reference": f"Organization/{payer}"}],
    }
    if subscriber:
        cov["subscriber"] = {"reference": subscriber}
    if group:
        cov["class"] = [{"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/coverage-class",
                                              "code": "group"}]}, "value": group}]
    return cov


def line(seq: int, cpt: str, mods: list[str], units: int | float, charge: float, date: str = "2025-01-14",
         pointers: list[int] | None = None, control: str | None = None, pos: str | None = None) -> dict[str, Any]:
    item: dict[str, Any] = {
        "sequence": seq,
        "productOrService": {"coding": [{"system": R.CPT, "code": cpt}]},
        "modifier": [{"coding": [{"system": R.CPT, "code": m}]} for m in mods],
        "quantity": {"value": units},
        "net": {"value": charge, "currency": "USD"},
        "servicedDate": date,
        "diagnosisSequence": pointers or [1],
        "careTeamSequence": [1],
        "extension": [{"url": vocabulary.LINE_CONTROL_NUMBER, "valueString": control or f"L{seq:03d}"}],
    }
    if pos:
        item["locationCodeableConcept"] = {"coding": [{"system": POS, "code": pos}]}
    return item


def claim(*, cid: str = "claim1", pcn: str = "PCN20250114A", items: list[dict] | None = None,
          dx: list[str] | None = None, status: str = "active", payer: str = "payer",
          coverage_id: str = "cov1", pos: str = "11") -> dict[str, Any]:
    items = items or [line(1, "97165", ["GO"], 1, 150, pointers=[1, 2], control=f"{pcn[-6:]}01"),
                      line(2, "97110", ["GO"], 2, 100, control=f"{pcn[-6:]}02")]
    if pos:
        for it in items:
            it.setdefault("locationCodeableConcept", {"coding": [{"system": POS, "code": pos}]})
    dx = dx or ["I69.351", "R27.8"]
    total = sum(i["net"]["value"] for i in items)
    return {
        "resourceType": "Claim", "id": cid, "status": status,
        "identifier": [{"system": vocabulary.PATIENT_CONTROL_NUMBER, "value": pcn}],
        "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/claim-type", "code": "professional"}]},
        "use": "claim", "patient": {"reference": "Patient/pat1"}, "created": "2025-01-15",
        "provider": {"reference": "Organization/billing"}, "insurer": {"reference": f"Organization/{payer}"},
        "priority": {"coding": [{"code": "normal"}]},
        "careTeam": [
            {"sequence": 1, "provider": {"reference": "Practitioner/rendering"},
             "role": {"coding": [{"system": ROLE, "code": "primary"}]},
             "qualification": {"coding": [{"system": R.NUCC, "code": "225X00000X"}]}},
            {"sequence": 2, "provider": {"reference": "Practitioner/certifying"},
             "role": {"coding": [{"system": C4BB_ROLE, "code": "referring"}]}},
        ],
        "supportingInfo": [{"sequence": 1, "category": {"coding": [{"system": CLAIM_DATE, "code": "initial-treatment"}]},
                            "timingDate": items[0]["servicedDate"]}],
        "diagnosis": [{"sequence": n, "diagnosisCodeableConcept": {"coding": [{"system": R.ICD10CM, "code": c}]}}
                      for n, c in enumerate(dx, start=1)],
        "insurance": [{"sequence": 1, "focal": True, "coverage": {"reference": f"Coverage/{coverage_id}"}}],
        "item": items,
        "total": {"value": total, "currency": "USD"},
    }


def bundle(*resources: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": "collection",
            "entry": [{"fullUrl": f"urn:uuid:{r['resourceType'].lower()}-{r['id']}", "resource": r}
                      for r in resources]}


def _common() -> list[dict[str, Any]]:
    return [billing_org(), patient(), practitioner("rendering", "Jones", "Emily", "1982736450"),
            practitioner("certifying", "Smith", "John", "1245319599")]


def medicare_ot_bundle(**claim_overrides: Any) -> dict[str, Any]:
    """Medicare Part B OT: eval + therapeutic exercise, KX over threshold, an OTA line with CO."""
    items = [
        line(1, "97165", ["GO"], 1, 150, pointers=[1, 2], control="A1B2C3D401"),
        line(2, "97110", ["GO", "KX"], 2, 100, control="A1B2C3D402"),
        line(3, "97530", ["GO", "CO", "KX"], 1, 60, control="A1B2C3D403"),
    ]
    c = claim(items=claim_overrides.pop("items", items), **claim_overrides)
    return bundle(c, *_common(), payer_org(), coverage())


def commercial_bundle(**claim_overrides: Any) -> dict[str, Any]:
    """Commercial PPO, dependent patient (spouse subscriber), prior authorization, no KX."""
    defaults = {"pcn": "PCN20250201C", "dx": ["M54.50"],
                "items": [line(1, "97110", ["GP"], 3, 135, date="2025-02-01", control="C0MM0001"),
                          line(2, "97140", ["GP", "59"], 1, 55, date="2025-02-01", control="C0MM0002")]}
    c = claim(payer="acme", coverage_id="cov2", **{**defaults, **claim_overrides})
    c["insurance"][0]["preAuthRef"] = ["AUTH778899"]
    c["careTeam"] = c["careTeam"][:1]
    subscriber = {"resourceType": "RelatedPerson", "id": "spouse", "patient": {"reference": "Patient/pat1"},
                  "name": [{"family": "Doe", "given": ["John"]}], "gender": "male", "birthDate": "1979-02-02",
                  "address": [{"line": ["42 Elm Street"], "city": "Springfield", "state": "IL", "postalCode": "62702"}]}
    cov = coverage(cid="cov2", member="W123456789", filing="CI", payer="acme", relationship="spouse",
                   subscriber="RelatedPerson/spouse", group="GRP1001")
    return bundle(c, billing_org(po_box=True), patient(birth="1980-05-15"),
                  practitioner("rendering", "Jones", "Emily", "1982736450"),
                  payer_org("Acme Health Plan", "60054", "acme"), cov, subscriber)


def workers_comp_bundle(**claim_overrides: Any) -> dict[str, Any]:
    """Workers' comp: the employer holds the policy (Coverage.policyHolder) and is the 837P subscriber,
    the injured worker is the patient; accident date, claim number."""
    defaults = {"pcn": "PCN20250303C", "dx": ["S62.101D", "W23.0XXD"],
                "items": [line(1, "97530", ["GO"], 2, 120, date="2025-03-03", control="WC000001"),
                          line(2, "97760", ["GO"], 1, 60, date="2025-03-03", control="WC000002")]}
    c = claim(payer="wc", coverage_id="cov3", **{**defaults, **claim_overrides})
    c["accident"] = {"date": "2025-02-10", "type": {"coding": [
        {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "WPA"}]}}
    c["supportingInfo"] = [
        {"sequence": 1, "category": {"coding": [{"system": INFO, "code": "employmentimpacted"}]},
         "valueString": "WC2025000123"},
        {"sequence": 2, "category": {"coding": [{"system": INFO, "code": "attachment"}]},
         "valueString": "ATT20250303001"},
    ]
    employer = {"resourceType": "Organization", "id": "employer", "name": "Acme Manufacturing Inc"}
    cov = coverage(cid="cov3", member="WCPOL778899", filing="WC", payer="wc", relationship="injured")
    cov["policyHolder"] = {"reference": "Organization/employer"}  # R4: the employer owns the policy
    return bundle(c, *_common(), payer_org("Statewide Workers Comp Insurance", "WC123", "wc"), cov, employer)


def replacement_bundle(**claim_overrides: Any) -> dict[str, Any]:
    b = medicare_ot_bundle(**claim_overrides)
    b["entry"][0]["resource"]["related"] = [{
        "claim": {"reference": "Claim/original"},
        "relationship": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/related-claim-relationship",
                                     "code": "prior"}]},
        "reference": {"value": "22025031000001"}}]
    return b


def void_bundle(**claim_overrides: Any) -> dict[str, Any]:
    b = replacement_bundle(**claim_overrides)
    b["entry"][0]["resource"]["status"] = "cancelled"
    return b


def many_claims_bundle(n: int, lines: int = 3) -> dict[str, Any]:
    """``n`` Medicare claims for one billing provider and payer (benchmark / grouping tests)."""
    base = medicare_ot_bundle()
    others = [e["resource"] for e in base["entry"][1:]]
    claims = []
    cpts = ["97110", "97530", "97140", "97112", "97535"]
    for k in range(n):
        pcn = f"P{k:09d}"
        items = [line(j + 1, cpts[(k + j) % 5], ["GO"], 1 + (k + j) % 3, 40 + j * 10 + k % 7,
                      control=f"{pcn}{j + 1:02d}") for j in range(lines)]
        claims.append(claim(cid=f"c{k}", pcn=pcn, items=items))
    return bundle(*claims, *others)


def clone(b: dict[str, Any]) -> dict[str, Any]:
    return copy.deepcopy(b)


def eligibility_bundle(*, service_types: tuple[str, ...] = ("AD",), dependent: bool = False,
                       trace: str = "ELIG0001") -> dict[str, Any]:
    """A CoverageEligibilityRequest for OT benefits (subscriber, or spouse-dependent)."""
    from payer_adapters.x12.codes import SERVICE_TYPE_SYSTEM

    req = {
        "resourceType": "CoverageEligibilityRequest", "id": "elig1", "status": "active",
        "identifier": [{"system": vocabulary.ELIGIBILITY_TRACE, "value": trace}],
        "purpose": ["benefits"], "patient": {"reference": "Patient/pat1"}, "created": "2025-01-10",
        "servicedDate": "2025-01-10", "provider": {"reference": "Organization/billing"},
        "insurer": {"reference": "Organization/acme"},
        "insurance": [{"focal": True, "coverage": {"reference": "Coverage/cov2"}}],
        "item": [{"category": {"coding": [{"system": SERVICE_TYPE_SYSTEM, "code": st}]}} for st in service_types],
    }
    spouse = {"resourceType": "RelatedPerson", "id": "spouse", "patient": {"reference": "Patient/pat1"},
              "name": [{"family": "Doe", "given": ["John"]}], "gender": "male", "birthDate": "1979-02-02"}
    cov = coverage(cid="cov2", member="W123456789", filing="CI", payer="acme",
                   relationship="spouse" if dependent else "self",
                   subscriber="RelatedPerson/spouse" if dependent else None)
    return bundle(req, billing_org(), patient(birth="1980-05-15"), payer_org("Acme Health Plan", "60054", "acme"),
                  cov, spouse)
