"""Scopes, the patient compartment and granular filters, enforced inside the store."""
from __future__ import annotations

import pytest

from tests.app.fhir.helpers import encounter, patient

CAT = "http://terminology.hl7.org/CodeSystem/condition-category"


@pytest.fixture
async def two_patients(api):
    a = (await api.post("/fhir/Patient", json=patient("Alpha"))).json()["id"]
    b = (await api.post("/fhir/Patient", json=patient("Beta"))).json()["id"]
    ea = (await api.post("/fhir/Encounter", json=encounter(f"Patient/{a}"))).json()["id"]
    eb = (await api.post("/fhir/Encounter", json=encounter(f"Patient/{b}"))).json()["id"]
    org = (await api.post("/fhir/Organization", json={"resourceType": "Organization", "name": "Clinic"})).json()["id"]
    await api.post("/fhir/PaymentReconciliation", json={
        "resourceType": "PaymentReconciliation", "status": "active", "created": "2026-01-01",
        "paymentDate": "2026-01-01", "paymentAmount": {"value": 10, "currency": "USD"}})
    for pid, code in ((a, "problem-list-item"), (a, "encounter-diagnosis"), (b, "problem-list-item")):
        await api.post("/fhir/Condition", json={"resourceType": "Condition", "subject": {"reference": f"Patient/{pid}"},
                                                "category": [{"coding": [{"system": CAT, "code": code}]}]})
    return {"a": a, "b": b, "ea": ea, "eb": eb, "org": org}


def as_patient(pid: str, scope: str = "patient/*.rs launch/patient") -> dict[str, str]:
    return {"x-test-scope": scope, "x-test-patient": pid}


async def test_patient_token_sees_only_its_compartment(api, two_patients):
    p = two_patients
    h = as_patient(p["a"])
    assert (await api.get(f"/fhir/Encounter/{p['ea']}", headers=h)).status_code == 200
    assert (await api.get(f"/fhir/Encounter/{p['eb']}", headers=h)).status_code == 404
    assert (await api.get(f"/fhir/Patient/{p['b']}", headers=h)).status_code == 404
    assert (await api.get(f"/fhir/Encounter/{p['eb']}/_history/1", headers=h)).status_code == 404
    enc = (await api.get("/fhir/Encounter", headers=h)).json()
    assert [e["resource"]["id"] for e in enc["entry"]] == [p["ea"]] and enc["total"] == 1
    pats = (await api.get("/fhir/Patient", headers=h)).json()
    assert [e["resource"]["id"] for e in pats["entry"]] == [p["a"]]
    assert (await api.get(f"/fhir/Organization/{p['org']}", headers=h)).status_code == 200  # shared reference data
    assert (await api.get("/fhir/PaymentReconciliation", headers=h)).json()["total"] == 0  # never one patient's
    rev = (await api.get(f"/fhir/Patient?_id={p['a']},{p['b']}&_revinclude=Encounter:patient", headers=h)).json()
    assert {e["resource"]["id"] for e in rev["entry"]} == {p["a"], p["ea"]}
    assert (await api.get("/fhir/Encounter/_history", headers=h)).status_code == 403


async def test_patient_token_writes_stay_in_compartment(api, two_patients):
    p = two_patients
    h = as_patient(p["a"], "patient/Encounter.cruds launch/patient")
    assert (await api.post("/fhir/Encounter", json=encounter(f"Patient/{p['b']}"), headers=h)).status_code == 403
    assert (await api.post("/fhir/Encounter", json=encounter(f"Patient/{p['a']}"), headers=h)).status_code == 201
    moved = {**encounter(f"Patient/{p['a']}"), "id": p["eb"]}
    assert (await api.put(f"/fhir/Encounter/{p['eb']}", json=moved, headers=h)).status_code == 404
    txn = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": encounter(f"Patient/{p['a']}"), "request": {"method": "POST", "url": "Encounter"}},
        {"resource": encounter(f"Patient/{p['b']}"), "request": {"method": "POST", "url": "Encounter"}}]}
    assert (await api.post("/fhir", json=txn, headers=h)).status_code == 403
    assert (await api.get(f"/fhir/Encounter?patient={p['b']}")).json()["total"] == 1  # nothing half-written


async def test_scope_checks_per_interaction(api, two_patients):
    p = two_patients
    h = {"x-test-scope": "system/Patient.r"}
    assert (await api.get(f"/fhir/Patient/{p['a']}", headers=h)).status_code == 200
    assert (await api.get("/fhir/Patient", headers=h)).status_code == 403
    assert (await api.post("/fhir/Patient", json=patient(), headers=h)).status_code == 403
    assert (await api.get(f"/fhir/Encounter/{p['ea']}", headers=h)).status_code == 403
    v1 = {"x-test-scope": "user/Encounter.read"}
    assert (await api.get("/fhir/Encounter", headers=v1)).status_code == 200
    assert (await api.delete(f"/fhir/Encounter/{p['ea']}", headers=v1)).status_code == 403
    inc = (await api.get("/fhir/Encounter?_include=Encounter:patient", headers={"x-test-scope": "system/Encounter.rs"}))
    assert inc.status_code == 200  # included resources the token may not read are left out, like other results
    assert {e["resource"]["resourceType"] for e in inc.json()["entry"]} == {"Encounter"}


async def test_granular_scope_filters_results(api, two_patients):
    h = {"x-test-scope": f"user/Condition.rs?category={CAT}|problem-list-item"}
    found = (await api.get("/fhir/Condition", headers=h)).json()
    codes = {e["resource"]["category"][0]["coding"][0]["code"] for e in found["entry"]}
    assert codes == {"problem-list-item"} and found["total"] == 2
    all_ = (await api.get("/fhir/Condition")).json()
    other = next(e["resource"]["id"] for e in all_["entry"]
                 if e["resource"]["category"][0]["coding"][0]["code"] == "encounter-diagnosis")
    assert (await api.get(f"/fhir/Condition/{other}", headers=h)).status_code == 404
