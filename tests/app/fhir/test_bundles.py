"""Batch and transaction Bundles (R4 http.html §3.1.0.11)."""
from __future__ import annotations

from tests.app.fhir.helpers import encounter, patient


def txn(*entries: dict) -> dict:
    return {"resourceType": "Bundle", "type": "transaction", "entry": list(entries)}


def post(full_url: str, resource: dict, **request: str) -> dict:
    return {"fullUrl": full_url, "resource": resource,
            "request": {"method": "POST", "url": resource["resourceType"], **request}}


async def test_transaction_rewrites_urn_uuid_everywhere(api):
    p = "urn:uuid:8d6e5a3c-0000-4000-8000-000000000001"
    bundle = txn(
        post("urn:uuid:8d6e5a3c-0000-4000-8000-000000000002",
             encounter(p, text={"status": "generated", "div": f'<div xmlns="http://www.w3.org/1999/xhtml"><a href="{p}">pt</a></div>'})),
        post(p, patient(mrn="T1")),
    )
    r = await api.post("/fhir", json=bundle)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["type"] == "transaction-response"
    enc, pat = out["entry"][0], out["entry"][1]  # request order kept
    assert enc["response"]["status"] == "201 Created" and pat["response"]["status"] == "201 Created"
    assert enc["resource"]["subject"]["reference"] == f"Patient/{pat['resource']['id']}"
    assert f"Patient/{pat['resource']['id']}" in enc["resource"]["text"]["div"]
    stored = (await api.get(f"/fhir/Encounter/{enc['resource']['id']}")).json()
    assert stored["subject"]["reference"] == f"Patient/{pat['resource']['id']}"


async def test_conditional_create_and_conditional_reference(api):
    existing = (await api.post("/fhir/Patient", json=patient(mrn="C9"))).json()["id"]
    bundle = txn(
        post("urn:uuid:a", patient(mrn="C9"), ifNoneExist="identifier=urn:mrn|C9"),
        post("urn:uuid:b", encounter("urn:uuid:a")),
        post("urn:uuid:c", encounter("Patient?identifier=urn:mrn|C9")),
    )
    out = (await api.post("/fhir", json=bundle)).json()
    assert out["entry"][0]["response"]["status"] == "200 OK"
    assert out["entry"][1]["resource"]["subject"]["reference"] == f"Patient/{existing}"
    assert out["entry"][2]["resource"]["subject"]["reference"] == f"Patient/{existing}"
    assert (await api.get("/fhir/Patient?identifier=urn:mrn|C9")).json()["total"] == 1


async def test_transaction_is_atomic(api):
    bundle = txn(post("urn:uuid:p", patient(mrn="ATOM")),
                 post("urn:uuid:e", encounter("Patient?identifier=urn:mrn|does-not-exist")))
    r = await api.post("/fhir", json=bundle)
    assert r.status_code == 404
    assert r.json()["resourceType"] == "OperationOutcome"
    assert (await api.get("/fhir/Patient?identifier=urn:mrn|ATOM")).json()["total"] == 0


async def test_transaction_invalid_entry_points_at_it(api):
    bad = txn(post("urn:uuid:p", patient()), post("urn:uuid:e", {"resourceType": "Encounter", "status": 5}))
    r = await api.post("/fhir", json=bad)
    assert r.status_code == 400
    assert any(x.startswith("Bundle.entry[1].resource") for i in r.json()["issue"] for x in i["expression"])
    dangling = txn(post("urn:uuid:e", encounter("urn:uuid:nowhere")))
    assert (await api.post("/fhir", json=dangling)).status_code == 400
    assert (await api.post("/fhir", json={"resourceType": "Bundle", "type": "collection"})).status_code == 400
    twice = txn(post("urn:uuid:x", patient()), post("urn:uuid:x", patient()))
    assert (await api.post("/fhir", json=twice)).status_code == 400


async def test_transaction_put_delete_get_and_multiple_match(api):
    a = (await api.post("/fhir/Patient", json=patient(mrn="M1"))).json()["id"]
    b = (await api.post("/fhir/Patient", json=patient(mrn="M1"))).json()["id"]
    multi = txn(post("urn:uuid:e", encounter("Patient?identifier=urn:mrn|M1")))
    assert (await api.post("/fhir", json=multi)).status_code == 412
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"request": {"method": "GET", "url": f"Patient/{b}"}},
        {"resource": {**patient(), "id": "fixed-1"}, "request": {"method": "PUT", "url": "Patient/fixed-1"}},
        {"request": {"method": "DELETE", "url": f"Patient/{a}"}},
    ]}
    out = (await api.post("/fhir", json=bundle)).json()
    assert [e["response"]["status"] for e in out["entry"]] == ["200 OK", "201 Created", "204 No Content"]
    assert out["entry"][0]["resource"]["id"] == b
    # GET runs after DELETE (processing order), so reading what the same transaction deletes fails it all
    failing = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"request": {"method": "GET", "url": f"Patient/{b}"}},
        {"resource": {**patient(), "id": "fixed-2"}, "request": {"method": "PUT", "url": "Patient/fixed-2"}},
        {"request": {"method": "DELETE", "url": f"Patient/{b}"}},
    ]}
    r = await api.post("/fhir", json=failing)
    assert r.status_code == 410
    assert (await api.get("/fhir/Patient/fixed-2")).status_code == 404
    assert (await api.get(f"/fhir/Patient/{b}")).status_code == 200


async def test_batch_entries_are_independent(api):
    bundle = {"resourceType": "Bundle", "type": "batch", "entry": [
        {"resource": patient(mrn="OK1"), "request": {"method": "POST", "url": "Patient"}},
        {"resource": {"resourceType": "Patient", "birthDate": "nope"}, "request": {"method": "POST", "url": "Patient"}},
        {"request": {"method": "GET", "url": "Patient/missing"}},
        {"request": {"method": "GET", "url": "Patient?identifier=urn:mrn|OK1"}},
    ]}
    r = await api.post("/fhir", json=bundle)
    assert r.status_code == 200
    statuses = [e["response"]["status"] for e in r.json()["entry"]]
    assert statuses[0] == "201 Created"
    assert statuses[1].startswith("400")
    assert r.json()["entry"][1]["response"]["outcome"]["issue"][0]["expression"][0].startswith("Bundle.entry[1]")
    assert statuses[2].startswith("404")
    assert r.json()["entry"][3]["resource"]["total"] == 1
