"""The authorization ledger through the API and the worker: billers record authorizations (and
only those), claims consume them, the visit past the authorized ones is held, a void gives its
visit back, and the renewal Task is opened once."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.app.payers.test_corrections_flow import _paid_original
from tests.flows import adrain, claim_for, lifecycle

BILLER = " ".join(s for s in json.loads((Path(__file__).parents[3] / "app/auth/data/roles.json").read_text())["biller"]
                  if "/" in s)
DISCIPLINE = "https://therabridge.dev/fhir/CodeSystem/therapy-discipline"
ADJUDICATION = "http://terminology.hl7.org/CodeSystem/adjudication"
TASK_CODE = "https://therabridge.dev/fhir/CodeSystem/task-code"


def authorization(visits: int = 1, *, start: str = "2026-11-01", end: str = "2099-12-31",
                  patient: str = "Patient/pat-alvarez", ref: str = "MCR-AUTH-1") -> dict[str, Any]:
    return {
        "resourceType": "ClaimResponse", "id": "auth-alvarez", "status": "active",
        "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/claim-type", "code": "professional"}]},
        "use": "preauthorization", "patient": {"reference": patient}, "created": "2026-10-30T12:00:00Z",
        "insurer": {"reference": "Organization/payer-medicare"}, "requestor": {"reference": "Organization/demo-practice"},
        "outcome": "complete", "preAuthRef": ref, "preAuthPeriod": {"start": start, "end": end},
        "addItem": [{"productOrService": {"coding": [{"system": DISCIPLINE, "code": "OT"}]},
                     "quantity": {"value": visits},
                     "adjudication": [{"category": {"coding": [{"system": ADJUDICATION, "code": "submitted"}]}}]}],
    }


def with_authorization(bundle: dict[str, Any], auth: dict[str, Any]) -> dict[str, Any]:
    bundle["entry"].append({"fullUrl": f"ClaimResponse/{auth['id']}", "resource": auth,
                            "request": {"method": "PUT", "url": f"ClaimResponse/{auth['id']}"}})
    return bundle


def rules_of(outcome_or_claim_bundle: dict[str, Any]) -> list[str]:
    outcome = next(e["resource"] for e in outcome_or_claim_bundle["entry"]
                   if e["resource"]["resourceType"] == "OperationOutcome")
    return [i["details"]["coding"][0]["code"] for i in outcome["issue"] if i.get("details", {}).get("coding")]


def parts(usage: dict[str, Any]) -> dict[str, int]:
    item = next(p for p in usage["parameter"] if p["name"] == "item")
    return {p["name"]: p["valueInteger"] for p in item["part"] if "valueInteger" in p}


def counted(usage: dict[str, Any]) -> list[str]:
    return [p["valueReference"]["reference"] for p in usage["parameter"] if p["name"] == "claim"]


async def renewal_tasks(api: Any) -> list[dict[str, Any]]:
    bundle = (await api.get("/fhir/Task", params={"focus": "ClaimResponse/auth-alvarez"})).json()
    return [e["resource"] for e in bundle.get("entry", [])
            if e["resource"]["code"]["coding"][0] == {"system": TASK_CODE, "code": "authorization-renewal",
                                                      "display": "Renew the authorization"}]


async def test_an_authorization_used_up_holds_the_next_visit_and_a_void_gives_it_back(
        api, store, tenant, payer_settings, mailbox: Path, demo_bundle, route_to_sandbox):
    # The practice (two finished visits of Mrs Alvarez) and one authorized OT visit, the worker
    # generating the claims: the first visit uses the authorization, the second is held.
    original, _payer = await _paid_original(api, store, tenant, payer_settings, mailbox,
                                            with_authorization(demo_bundle, authorization(visits=1)))
    assert original["insurance"][0]["preAuthRef"] == ["MCR-AUTH-1"]
    second = await claim_for(api, "enc-alvarez-2")
    assert lifecycle(second) == "draft" and "preAuthRef" not in second["insurance"][0]
    r = await api.post("/fhir/Claim/$scrub", json=second)
    held = [i for i in r.json()["issue"] if i["details"]["coding"][0]["code"] == "AUTH-EXHAUSTED"]
    assert held and "allows 1 visit of OT; 1 used" in held[0]["details"]["text"]

    usage = (await api.get("/fhir/ClaimResponse/auth-alvarez/$usage", headers={"x-test-scope": BILLER})).json()
    assert usage["resourceType"] == "Parameters"
    assert parts(usage) == {"authorized": 1, "used": 1, "remaining": 0}
    assert counted(usage) == [f"Claim/{original['id']}"]
    assert (await api.post("/fhir/ClaimResponse/auth-alvarez/$usage")).json() == usage  # GET or POST, same numbers

    # Nothing left: one renewal Task.
    [task] = await renewal_tasks(api)
    assert task["focus"] == {"reference": "ClaimResponse/auth-alvarez"} and task["status"] == "requested"
    assert "0 visits of OT left of 1 visit authorized" in task["description"]

    # The void of the first claim gives its visit back: the second visit is billed under it.
    r = await api.post(f"/fhir/Claim/{original['id']}/$void", headers={"x-test-scope": BILLER})
    assert r.status_code == 201, r.text
    usage = (await api.get("/fhir/ClaimResponse/auth-alvarez/$usage")).json()
    assert parts(usage) == {"authorized": 1, "used": 0, "remaining": 1} and counted(usage) == []
    r = await api.post("/fhir/Encounter/enc-alvarez-2/$generate-claim")
    assert r.status_code == 200, r.text
    assert "AUTH-EXHAUSTED" not in rules_of(r.json())
    second = await claim_for(api, "enc-alvarez-2")
    assert second["insurance"][0]["preAuthRef"] == ["MCR-AUTH-1"] and lifecycle(second) == "clean"
    usage = (await api.get("/fhir/ClaimResponse/auth-alvarez/$usage")).json()
    assert parts(usage)["used"] == 1 and counted(usage) == [f"Claim/{second['id']}"]
    # Used up again by another claim: the renewal Task is not opened a second time.
    await adrain(store)
    assert [t["id"] for t in await renewal_tasks(api)] == [task["id"]]


async def test_a_biller_records_an_authorization_and_bad_ones_are_refused(api, store, tenant, demo_bundle):
    r = await api.post("/fhir", json=demo_bundle, headers={"Prefer": "return=minimal"})
    assert r.status_code == 200, r.text
    biller = {"x-test-scope": BILLER}
    r = await api.put("/fhir/ClaimResponse/auth-alvarez", json=authorization(12), headers=biller)
    assert r.status_code == 201, r.text
    changed = {**authorization(20), "preAuthPeriod": {"start": "2026-11-01", "end": "2027-02-28"}}
    r = await api.put("/fhir/ClaimResponse/auth-alvarez", json=changed, headers=biller)
    assert r.status_code == 200, r.text

    bad: list[tuple[dict[str, Any], str]] = [
        (authorization(0), "ClaimResponse.addItem[0].quantity.value"),
        (authorization(-2), "ClaimResponse.addItem[0].quantity.value"),
        (authorization(start="2026-12-01", end="2026-11-01"), "ClaimResponse.preAuthPeriod"),
        (authorization(patient="Patient/nobody"), "ClaimResponse.patient"),
        ({k: v for k, v in authorization().items() if k != "preAuthRef"}, "ClaimResponse.preAuthRef"),
    ]
    for resource, where in bad:
        for send in (api.post("/fhir/ClaimResponse", json={k: v for k, v in resource.items() if k != "id"},
                              headers=biller),
                     api.put("/fhir/ClaimResponse/auth-alvarez", json=resource, headers=biller)):
            r = await send
            assert r.status_code == 422, r.text
            body = r.json()
            assert body["resourceType"] == "OperationOutcome"
            assert where in [e for i in body["issue"] for e in i.get("expression", [])]
    found = (await api.get("/fhir/ClaimResponse", params={"use": "preauthorization"})).json()
    assert [e["resource"]["id"] for e in found["entry"]] == ["auth-alvarez"]  # nothing else stored
    stored = (await api.get("/fhir/ClaimResponse/auth-alvarez")).json()
    assert stored["meta"]["versionId"] == "2" and stored["addItem"][0]["quantity"]["value"] == 20
    # Reading usage needs the claims too; writing authorizations needs the write scope.
    r = await api.get("/fhir/ClaimResponse/auth-alvarez/$usage", headers={"x-test-scope": "user/ClaimResponse.rs"})
    assert r.status_code == 403 and r.json()["resourceType"] == "OperationOutcome"
    r = await api.put("/fhir/ClaimResponse/auth-alvarez", json=authorization(3),
                      headers={"x-test-scope": "user/ClaimResponse.rs user/Patient.rs"})
    assert r.status_code == 403


async def test_the_payers_answers_stay_the_servers(api, store, tenant, demo_bundle):
    r = await api.post("/fhir", json=demo_bundle, headers={"Prefer": "return=minimal"})
    assert r.status_code == 200, r.text
    answer = {"resourceType": "ClaimResponse", "status": "active", "use": "claim", "outcome": "complete",
              "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/claim-type", "code": "professional"}]},
              "patient": {"reference": "Patient/pat-alvarez"}, "created": "2026-11-20T12:00:00Z",
              "insurer": {"reference": "Organization/payer-medicare"}}
    with store.for_tenant(tenant).unit() as unit:  # the server records the payer's answer
        unit.update("ClaimResponse", "payer-answer", answer)
    biller = {"x-test-scope": BILLER}
    r = await api.put("/fhir/ClaimResponse/payer-answer", json={**answer, "id": "payer-answer", "outcome": "partial"}, headers=biller)
    assert r.status_code == 422 and r.json()["issue"][0]["expression"] == ["ClaimResponse.use"], r.text
    r = await api.put("/fhir/ClaimResponse/payer-answer", json={**authorization(), "id": "payer-answer"},
                      headers=biller)
    assert r.status_code == 422
    assert (await api.delete("/fhir/ClaimResponse/payer-answer", headers=biller)).status_code == 422
    assert (await api.post("/fhir/ClaimResponse", json=answer, headers=biller)).status_code == 422
    stored = (await api.get("/fhir/ClaimResponse/payer-answer")).json()
    assert stored["meta"]["versionId"] == "1" and stored["outcome"] == "complete"
    assert (await api.get("/fhir/ClaimResponse/payer-answer/$usage")).status_code == 422


async def test_an_authorization_ending_soon_opens_one_renewal_task_and_the_sweep_runs_daily(
        api, store, tenant, demo_bundle):
    from datetime import date, datetime, timedelta, timezone

    from app.claims.authorizations import SWEEP, run_sweep
    from tests.flows import jobs

    r = await api.post("/fhir", json=demo_bundle, headers={"Prefer": "return=minimal"})
    assert r.status_code == 200, r.text
    await adrain(store)
    today = datetime.now(timezone.utc).date()
    auth = authorization(20, start=(today - timedelta(days=60)).isoformat(), end=(today + timedelta(days=10)).isoformat())
    r = await api.put("/fhir/ClaimResponse/auth-alvarez", json=auth, headers={"x-test-scope": BILLER})
    assert r.status_code == 201, r.text
    await adrain(store)
    [task] = await renewal_tasks(api)
    assert f"ends on {today + timedelta(days=10)}" in task["description"]

    # The sweep is queued for the start of tomorrow; run now, it opens nothing twice.
    [sweep] = jobs(store, tenant, SWEEP)
    assert sweep.status == "queued" and sweep.run_after.date() == today + timedelta(days=1)
    with store.for_tenant(tenant).unit() as unit:
        run_sweep(unit, {"day": date.today().isoformat()})
    assert [t["id"] for t in await renewal_tasks(api)] == [task["id"]]
    # A change that leaves two visits opens the other reason's Task, once.
    r = await api.put("/fhir/ClaimResponse/auth-alvarez", json={**auth, "addItem": authorization(2)["addItem"]},
                      headers={"x-test-scope": BILLER})
    assert r.status_code == 200, r.text
    await adrain(store)
    tasks = await renewal_tasks(api)
    assert len(tasks) == 2 and any("2 visits of OT left of 2 visits authorized" in t["description"] for t in tasks)


async def test_an_authorization_arrives_with_its_patient_in_one_transaction(api, store, tenant):
    patient = {"resourceType": "Patient", "name": [{"family": "Ng"}], "birthDate": "1950-01-02"}
    auth = {k: v for k, v in authorization(4).items() if k != "id"}
    auth["patient"] = {"reference": "urn:uuid:6a1c1f9e-0d0b-4c55-9d0e-1f1c2b3a4d5e"}
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": "urn:uuid:6a1c1f9e-0d0b-4c55-9d0e-1f1c2b3a4d5e", "resource": patient,
         "request": {"method": "POST", "url": "Patient"}},
        {"resource": auth, "request": {"method": "POST", "url": "ClaimResponse"}}]}
    r = await api.post("/fhir", json=bundle, headers={"x-test-scope": BILLER + " user/Patient.c"})
    assert r.status_code == 200, r.text
    bad = {**bundle, "entry": [bundle["entry"][0], {"resource": {**auth, "preAuthPeriod": {
        "start": "2026-12-01", "end": "2026-11-01"}}, "request": {"method": "POST", "url": "ClaimResponse"}}]}
    r = await api.post("/fhir", json=bad)
    assert r.status_code == 422 and r.json()["issue"][0]["expression"] == ["ClaimResponse.preAuthPeriod"]
    assert len((await api.get("/fhir/Patient", params={"family": "Ng"})).json().get("entry", [])) == 1  # atomic


def test_the_sweep_checks_every_authorization_past_one_page(store, tenant):
    """More authorizations than one search page (1,000): each one ending soon gets its Task."""
    from datetime import datetime, timedelta, timezone

    from app.claims.authorizations import TASK_CODE as CODE, run_sweep
    from fhir_mappings.vocabulary import SERVER_NAMESPACE, stable_id

    today = datetime.now(timezone.utc).date()
    n = 1001
    with store.for_tenant(tenant).unit() as unit:
        for i in range(n):
            auth = authorization(20, start=(today - timedelta(days=60)).isoformat(),
                                 end=(today + timedelta(days=10)).isoformat(), ref=f"MCR-AUTH-{i}")
            unit.update("ClaimResponse", f"auth-{i}", {**auth, "id": f"auth-{i}"})
    with store.for_tenant(tenant).unit() as unit:
        run_sweep(unit, {"day": today.isoformat()})
    with store.for_tenant(tenant).unit() as unit:
        opened = [i for i in range(n)
                  if unit.current("Task", stable_id(SERVER_NAMESPACE, "task", CODE, f"auth-{i}", "ending")) is not None]
    assert len(opened) == n
