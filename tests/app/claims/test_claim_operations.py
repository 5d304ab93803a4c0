"""$generate-claim, $scrub and $eligibility-request over HTTP against the demo practice."""
from __future__ import annotations

import pytest
from fhir.resources.R4B.claim import Claim
from fhir.resources.R4B.coverageeligibilityrequest import CoverageEligibilityRequest

from app.claims.corrections import record_payer_number
from app.claims.lifecycle import move


@pytest.fixture
async def practice(api, demo_bundle):
    r = await api.post("/fhir", json=demo_bundle, headers={"Prefer": "return=minimal"})
    assert r.status_code == 200, r.text
    return api


async def generate(api, encounter: str, **params: str):
    r = await api.post(f"/fhir/Encounter/{encounter}/$generate-claim", params=params)
    return r


async def test_generate_claim_builds_and_stores(practice):
    r = await generate(practice, "enc-alvarez-1")
    assert r.status_code == 200, r.text
    bundle = r.json()
    assert bundle["type"] == "collection"
    claim, outcome = bundle["entry"][0]["resource"], bundle["entry"][1]["resource"]
    Claim.model_validate(claim)
    assert outcome["resourceType"] == "OperationOutcome"
    assert claim["status"] == "active"
    lines = [(i["productOrService"]["coding"][0]["code"], [m["coding"][0]["code"] for m in i.get("modifier", [])],
              i["quantity"]["value"]) for i in claim["item"]]
    assert lines == [("97165", ["GO"], 1), ("97530", ["GO"], 2)]  # eval untimed; 23 timed minutes = 2 units
    assert claim["total"]["value"] == sum(i["net"]["value"] for i in claim["item"])
    stored = (await practice.get(f"/fhir/Claim/{claim['id']}")).json()
    assert stored == claim


async def test_regenerating_updates_the_open_claim(practice):
    first = (await generate(practice, "enc-alvarez-1")).json()["entry"][0]["resource"]
    again = (await generate(practice, "enc-alvarez-1")).json()["entry"][0]["resource"]
    assert again["id"] == first["id"] and again["meta"]["versionId"] == "2"
    assert (await practice.get("/fhir/Claim?encounter=Encounter/enc-alvarez-1")).json()["total"] == 1


async def test_submitted_claim_is_never_overwritten(practice, tenant_store):
    first = (await generate(practice, "enc-alvarez-2")).json()["entry"][0]["resource"]
    with tenant_store.unit() as unit:  # the server sent it (a client cannot set the lifecycle)
        move(unit, first["id"], "queued", "submitted")
    refused = await generate(practice, "enc-alvarez-2")  # the payer has not numbered it yet
    assert refused.status_code == 422 and refused.json()["issue"][0]["expression"] == ["Claim.related.reference"]
    with tenant_store.unit() as unit:  # its 277CA gave the payer's claim number
        record_payer_number(unit, first["id"], "PCN-AT-PAYER-1", adjudicated=False)
    correction = (await generate(practice, "enc-alvarez-2")).json()["entry"][0]["resource"]
    assert correction["id"] != first["id"]
    assert correction["related"][0]["claim"]["reference"] == f"Claim/{first['id']}"
    assert correction["related"][0]["relationship"]["coding"][0]["code"] == "prior"
    assert correction["related"][0]["reference"]["value"] == "PCN-AT-PAYER-1"
    untouched = (await practice.get(f"/fhir/Claim/{first['id']}")).json()
    assert untouched["meta"]["versionId"] == "3"


async def test_held_claim_opens_a_task_listing_the_issues(practice):
    r = await generate(practice, "enc-kim-1", profile="workers-comp")
    claim, outcome = (e["resource"] for e in r.json()["entry"])
    assert claim["status"] == "draft"
    errors = [i for i in outcome["issue"] if i["severity"] == "error"]
    assert errors and all(i["details"]["coding"][0]["code"] for i in errors)
    tasks = (await practice.get(f"/fhir/Task?focus=Claim/{claim['id']}")).json()
    assert tasks["total"] == 1
    task = tasks["entry"][0]["resource"]
    assert task["status"] == "requested" and task["for"]["reference"] == "Patient/pat-kim"
    assert len(task["input"]) == len(errors)


async def test_unbillable_encounter_is_422(practice):
    enc = (await practice.get("/fhir/Encounter/enc-brooks-1")).json()
    enc["status"] = "in-progress"
    await practice.put("/fhir/Encounter/enc-brooks-1", json=enc)
    r = await generate(practice, "enc-brooks-1")
    assert r.status_code == 422
    assert any("finished" in (i.get("diagnostics") or i["details"]["text"]) for i in r.json()["issue"])
    assert (await generate(practice, "no-such-encounter")).status_code == 404
    assert (await generate(practice, "enc-alvarez-1", profile="nonsense")).status_code == 400


async def test_scrub_posted_and_stored(practice):
    claim = (await generate(practice, "enc-brooks-1")).json()["entry"][0]["resource"]
    stored = await practice.post(f"/fhir/Claim/{claim['id']}/$scrub")
    assert stored.status_code == 200 and stored.json()["resourceType"] == "OperationOutcome"
    broken = {**claim, "careTeam": [{**claim["careTeam"][0], "provider": {"reference": "Practitioner/ot-rivera"}}]}
    broken["item"] = [{**broken["item"][0], "modifier": []}]
    posted = await practice.post("/fhir/Claim/$scrub", json=broken)
    assert posted.status_code == 200
    assert any(i["severity"] == "error" for i in posted.json()["issue"])
    wrapped = await practice.post("/fhir/Claim/$scrub", json={"resourceType": "Parameters", "parameter": [
        {"name": "resource", "resource": claim}]})
    assert wrapped.status_code == 200
    assert (await practice.post("/fhir/Claim/$scrub", json={"resourceType": "Patient"})).status_code == 400


async def test_eligibility_request_is_stored(practice):
    r = await practice.post("/fhir/Coverage/cov-alvarez/$eligibility-request",
                            params={"servicedDate": "2026-11-20", "discipline": "PT"})
    assert r.status_code == 201, r.text
    req = r.json()
    CoverageEligibilityRequest.model_validate(req)
    assert req["servicedDate"] == "2026-11-20" and req["patient"]["reference"] == "Patient/pat-alvarez"
    assert (await practice.get(f"/fhir/CoverageEligibilityRequest/{req['id']}")).status_code == 200
    assert (await practice.post("/fhir/Coverage/cov-alvarez/$eligibility-request",
                                params={"servicedDate": "soon"})).status_code == 400
    assert (await practice.post("/fhir/Coverage/cov-alvarez/$eligibility-request",
                                params={"discipline": "XX"})).status_code == 400


async def test_operations_are_advertised(api):
    cs = (await api.get("/fhir/metadata")).json()
    ops = {(r["type"], o["name"]) for r in cs["rest"][0]["resource"] for o in r.get("operation", [])}
    assert {("Encounter", "generate-claim"), ("Claim", "scrub"), ("Coverage", "eligibility-request")} <= ops
    for r in cs["rest"][0]["resource"]:
        for o in r.get("operation", []):
            op_id = o["definition"].rsplit("/", 1)[1]
            d = (await api.get(f"/fhir/OperationDefinition/{op_id}")).json()
            assert d["code"] == o["name"] and d["resourceType"] == "OperationDefinition"


async def test_claims_are_searchable_by_lifecycle(practice):
    held = (await generate(practice, "enc-kim-1", profile="workers-comp")).json()["entry"][0]["resource"]
    clean = (await generate(practice, "enc-alvarez-1")).json()["entry"][0]["resource"]
    drafts = (await practice.get("/fhir/Claim?lifecycle=draft")).json()
    assert [e["resource"]["id"] for e in drafts["entry"]] == [held["id"]]
    assert (await practice.get("/fhir/Claim?lifecycle=clean")).json()["entry"][0]["resource"]["id"] == clean["id"]
