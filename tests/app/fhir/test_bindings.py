"""Codes of elements with a required binding must come from their value set (R4
terminologies.html): refused with a 400 OperationOutcome naming the element, in the resource,
its backbone elements, datatypes, extension values and contained resources; nothing stored."""
from __future__ import annotations

import json

import pytest

from app.fhir.bindings import DATA
from tests.app.fhir.helpers import encounter, patient

CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
VERIFICATION = "http://terminology.hl7.org/CodeSystem/condition-ver-status"


def claim(**extra):
    return {"resourceType": "Claim", "status": "active", "use": "claim",
            "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/claim-type", "code": "professional"}]},
            "patient": {"reference": "Patient/p1"}, "created": "2024-03-01", "provider": {"reference": "Organization/o1"},
            "priority": {"coding": [{"code": "normal"}]},
            "insurance": [{"sequence": 1, "focal": True, "coverage": {"reference": "Coverage/c1"}}], **extra}


def condition(clinical: dict, **extra):
    return {"resourceType": "Condition", "subject": {"reference": "Patient/p1"}, "clinicalStatus": clinical, **extra}


REFUSED = [
    (encounter("Patient/p1", status="bogus"), ["Encounter.status"]),
    (patient(gender="robot"), ["Patient.gender"]),
    (claim(use="sometimes"), ["Claim.use"]),
    (patient(telecom=[{"system": "phone", "value": "1"}, {"system": "beeper", "value": "2", "use": "car"}]),
     ["Patient.telecom[1].system", "Patient.telecom[1].use"]),
    (patient(name=[{"family": "Ito", "use": "nick"}], identifier=[{"use": "primary", "value": "7"}]),
     ["Patient.name[0].use", "Patient.identifier[0].use"]),
    (encounter("Patient/p1", statusHistory=[{"status": "done", "period": {"start": "2024-03-01"}}]),
     ["Encounter.statusHistory[0].status"]),
    ({"resourceType": "PractitionerRole", "availableTime": [{"daysOfWeek": ["mon", "monday"]}]},
     ["PractitionerRole.availableTime[0].daysOfWeek[1]"]),
    ({"resourceType": "Observation", "status": "final", "code": {"text": "x"},
      "valueQuantity": {"value": 5, "comparator": "=="}}, ["Observation.valueQuantity.comparator"]),
    (encounter("Patient/p1", serviceProvider={"identifier": {"use": "main", "value": "9"}}),
     ["Encounter.serviceProvider.identifier.use"]),
    (patient(extension=[{"url": "urn:x", "valueContactPoint": {"system": "pigeon"}}]),
     ["Patient.extension[0].valueContactPoint.system"]),
    (claim(contained=[patient(gender="robot", id="p1")]), ["Claim.contained[0].gender"]),
    (patient(text={"status": "pretty", "div": '<div xmlns="http://www.w3.org/1999/xhtml">x</div>'}),
     ["Patient.text.status"]),
    (condition({"coding": [{"system": CLINICAL, "code": "dormant"}]}), ["Condition.clinicalStatus"]),
    (condition({"coding": [{"system": "http://snomed.info/sct", "code": "active"}]}), ["Condition.clinicalStatus"]),
    (condition({"text": "active"}), ["Condition.clinicalStatus"]),
]


@pytest.mark.parametrize("resource,expressions", REFUSED, ids=[e[0] for _, e in REFUSED])
async def test_code_outside_a_required_value_set_is_refused(api, resource, expressions):
    rtype = resource["resourceType"]
    r = await api.post(f"/fhir/{rtype}", json=resource)
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["resourceType"] == "OperationOutcome"
    assert [i["expression"][0] for i in body["issue"]] == expressions
    assert {i["code"] for i in body["issue"]} == {"code-invalid"}
    assert "required value set" in body["issue"][0]["diagnostics"]
    assert (await api.get(f"/fhir/{rtype}?_summary=count")).json()["total"] == 0  # nothing stored


async def test_refused_on_update_and_in_bundles(api):
    pid = (await api.post("/fhir/Patient", json=patient())).json()["id"]
    r = await api.put(f"/fhir/Patient/{pid}", json={**patient(), "id": pid, "gender": "robot"})
    assert r.status_code == 400 and r.json()["issue"][0]["expression"] == ["Patient.gender"]
    entries = [{"resource": encounter(f"Patient/{pid}", status="bogus"), "request": {"method": "POST", "url": "Encounter"}}]
    txn = await api.post("/fhir", json={"resourceType": "Bundle", "type": "transaction", "entry": entries})
    assert txn.status_code == 400
    assert txn.json()["issue"][0]["expression"] == ["Bundle.entry[0].resource.status"]
    batch = await api.post("/fhir", json={"resourceType": "Bundle", "type": "batch", "entry": entries})
    response = batch.json()["entry"][0]["response"]
    assert response["status"].startswith("400")
    assert response["outcome"]["issue"][0]["expression"] == ["Bundle.entry[0].resource.status"]
    assert (await api.get("/fhir/Encounter?_summary=count")).json()["total"] == 0
    assert (await api.get(f"/fhir/Patient/{pid}")).json().get("gender") is None


async def test_codes_from_the_value_sets_are_accepted(api):
    accepted = [
        patient(gender="female", telecom=[{"system": "phone", "value": "1", "use": "mobile"}],
                name=[{"family": "Ito", "use": "official"}], identifier=[{"use": "usual", "value": "7"}],
                photo=[{"contentType": "image/x-unlisted"}]),  # mime types are not enumerable: not enforced
        claim(use="preauthorization"),
        encounter("Patient/p1", status="in-progress",
                  statusHistory=[{"status": "arrived", "period": {"start": "2024-03-01"}}]),
        {"resourceType": "Observation", "status": "final", "code": {"text": "x"},
         "valueQuantity": {"value": 5, "comparator": ">="}},
        # one coding from the value set is enough; others may sit beside it
        condition({"coding": [{"system": "http://snomed.info/sct", "code": "55561003"},
                              {"system": CLINICAL, "code": "active"}]},
                  verificationStatus={"coding": [{"system": VERIFICATION, "code": "confirmed"}]}),
    ]
    for resource in accepted:
        r = await api.post(f"/fhir/{resource['resourceType']}", json=resource)
        assert r.status_code == 201, r.text


def test_value_sets_name_their_source():
    data = json.loads(DATA.read_text())
    assert data["_source"]["package"] == "hl7.fhir.r4.core" and data["_source"]["fhirVersion"] == "4.0.1"
    assert data["valueSets"]["http://hl7.org/fhir/ValueSet/encounter-status"] == {
        "http://hl7.org/fhir/encounter-status": ["arrived", "cancelled", "entered-in-error", "finished",
                                                 "in-progress", "onleave", "planned", "triaged", "unknown"]}
