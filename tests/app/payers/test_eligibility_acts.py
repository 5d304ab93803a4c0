"""Eligibility that acts: booked Appointments are checked with the sandbox payer ahead of the
visit, and its answers hold claims (inactive coverage, visit limit reached) before they leave and
open work items (eligibility-problem, visit-limit-low)."""
from __future__ import annotations

import copy
import json
from datetime import timedelta
from typing import Any

from orjson import loads as orjson_loads

from app.jobs import J

from tests.flows import SANDBOX, adrain, claim_for, connect, jobs, load_practice

# The demo practice's Acme patient whose plan has used 20 of 20 OT visits (sandbox ACMMAXED0001),
# and two more made from it: an inactive plan (ACMLAPSED001) and 2 visits left (ACMLOWVIS001).
PATIENTS = {
    "lapse": {"member": "ACMLAPSED001", "family": "Lapse", "given": "Ina", "birth": "1980-01-01"},
    "lowe": {"member": "ACMLOWVIS001", "family": "Lowe", "given": "Vera", "birth": "1982-03-04"},
}


def _of(entry: dict[str, Any], name: str) -> bool:
    return name in json.dumps(entry["resource"])


def practice_without_visits(demo: dict[str, Any]) -> tuple[dict[str, Any], dict[str, list[dict[str, Any]]]]:
    """The demo practice plus the two made-up patients, without the Maxwell-like visits (their
    Encounter and Procedures), which come later, once the payer has answered."""
    entries, visits = [], {"maxwell": []}
    made = {k: [] for k in PATIENTS}
    for e in demo["entry"]:
        r = e["resource"]
        if _of(e, "maxwell"):
            for key, p in PATIENTS.items():
                text = (json.dumps(e).replace("maxwell", key).replace("Maxwell", p["family"])
                        .replace("ACMMAXED0001", p["member"]).replace('"Vi"', f'"{p["given"]}"')
                        .replace("1985-01-01", p["birth"]))
                made[key].append(json.loads(text))
        if r["resourceType"] in ("Encounter", "Procedure") and _of(e, "enc-maxwell-1"):
            visits["maxwell"].append(e)
        else:
            entries.append(e)
    for key, made_entries in made.items():
        visits[key] = [e for e in made_entries if e["resource"]["resourceType"] in ("Encounter", "Procedure")]
        entries += [e for e in made_entries if e["resource"]["resourceType"] not in ("Encounter", "Procedure")]
    return {**demo, "entry": entries}, visits


def appointment(patient: str, start: str, **extra: Any) -> dict[str, Any]:
    return {"resourceType": "Appointment", "status": "booked", "start": start,
            "end": start.replace("T09:00", "T09:45"),
            "serviceType": [{"coding": [{"system": "https://therabridge.dev/fhir/CodeSystem/therapy-discipline",
                                         "code": "OT"}]}],
            "participant": [{"actor": {"reference": f"Patient/{patient}"}, "status": "accepted"},
                            {"actor": {"reference": "Practitioner/ot-rivera"}, "status": "accepted"}], **extra}


async def _tasks(api: Any, code: str) -> list[dict[str, Any]]:
    found = (await api.get("/fhir/Task", params={"code": f"https://therabridge.dev/fhir/CodeSystem/task-code|{code}"})).json()
    return [e["resource"] for e in found.get("entry", [])]


async def _answers(api: Any, patient: str) -> list[dict[str, Any]]:
    found = (await api.get("/fhir/CoverageEligibilityResponse",
                           params={"patient": f"Patient/{patient}", "_sort": "-created"})).json()
    return [e["resource"] for e in found.get("entry", [])]


async def _issue_text(api: Any, claim: dict[str, Any], rule: str) -> str:
    """The scrub's sentence for ``rule`` on the stored claim (``$scrub``)."""
    r = await api.post(f"/fhir/Claim/{claim['id']}/$scrub")
    assert r.status_code == 200, r.text
    return next(i["details"]["text"] for i in r.json()["issue"]
                if (i.get("details", {}).get("coding") or [{}])[0].get("code") == rule)


def _rules(task: dict[str, Any]) -> set[str]:
    return {i["type"]["text"] for i in task.get("input", [])}


async def _setup(api: Any, store: Any, tenant: str, payer_settings: Any, demo_bundle: dict[str, Any]):
    bundle, visits = practice_without_visits(copy.deepcopy(demo_bundle))
    await load_practice(api, bundle)
    connect(store, payer_settings, tenant, "payer-acme", "clearinghouse-json", {"base_url": SANDBOX},
            {"api_key": "test_sandbox_key"}, profile="commercial")
    await adrain(store)  # today's sweep: nothing booked yet
    return visits


async def _book_and_sweep(api: Any, store: Any, tenant: str, patients: list[str]) -> str:
    """Book a visit ``eligibility_days_ahead`` days from today for each patient, then sweep."""
    from app.payers.eligibility_sweep import queue_checks

    today = store.clock().date()
    start = f"{(today + timedelta(days=3)).isoformat()}T09:00:00Z"
    for p in patients:
        r = await api.post("/fhir/Appointment", json=appointment(p, start))
        assert r.status_code == 201, r.text
    with store.for_tenant(tenant).unit() as unit:
        assert queue_checks(unit, today) == len(patients)
    with store.for_tenant(tenant).unit() as unit:
        assert queue_checks(unit, today) == 0  # the same appointments and day: nothing new
    await adrain(store)
    return start


async def _bill(api: Any, store: Any, entries: list[dict[str, Any]]) -> None:
    r = await api.post("/fhir", json={"resourceType": "Bundle", "type": "transaction", "entry": entries},
                       headers={"Prefer": "return=minimal"})
    assert r.status_code == 200, r.text
    await adrain(store)


async def test_booked_visit_is_checked_ahead_and_a_visit_beyond_the_limit_is_held(
        api, store, tenant, payer_settings, demo_bundle, route_to_sandbox, ledger):
    visits = await _setup(api, store, tenant, payer_settings, demo_bundle)
    await _book_and_sweep(api, store, tenant, ["pat-maxwell"])
    # the sweep asked the payer and kept its answer, linked to the patient and the coverage
    answers = await _answers(api, "pat-maxwell")
    assert len(answers) == 1
    ins = answers[0]["insurance"][0]
    assert ins["coverage"]["reference"] == "Coverage/cov-maxwell" and ins["inforce"] is True
    ot = next(i for i in ins["item"] if i["category"]["coding"][0]["code"] == "AD")
    visit = next(b for b in ot["benefit"] if b["type"]["coding"][0]["code"] == "visit")
    assert (visit["allowedUnsignedInt"], visit["usedUnsignedInt"]) == (20, 20)
    assert len(jobs(store, tenant, "eligibility-appointment")) == 1

    # the visit happens and is billed: held before it leaves, naming the answer and the numbers
    await _bill(api, store, visits["maxwell"])
    claim = await claim_for(api, "enc-maxwell-1")
    assert claim["status"] == "draft"
    review = [t for t in await _tasks(api, "claim-review") if t["focus"]["reference"] == f"Claim/{claim['id']}"]
    assert len(review) == 1 and "ELIG-VISIT-LIMIT" in _rules(review[0])
    text = await _issue_text(api, claim, "ELIG-VISIT-LIMIT")
    assert f"CoverageEligibilityResponse/{answers[0]['id']}" in text and "20 OT visits allowed, 20 used" in text
    # never sent, so never denied
    assert ledger()["by_member"].get("ACMMAXED0001", 0) == 0


async def test_inactive_coverage_opens_a_task_before_the_visit_and_holds_its_claim(
        api, store, tenant, payer_settings, demo_bundle, route_to_sandbox, ledger):
    visits = await _setup(api, store, tenant, payer_settings, demo_bundle)
    await _book_and_sweep(api, store, tenant, ["pat-lapse"])
    answers = await _answers(api, "pat-lapse")
    assert len(answers) == 1 and answers[0]["insurance"][0]["inforce"] is False
    problems = await _tasks(api, "eligibility-problem")
    assert len(problems) == 1
    assert problems[0]["focus"]["reference"] == "Coverage/cov-lapse"
    assert problems[0]["input"][0]["valueReference"]["reference"] == f"CoverageEligibilityResponse/{answers[0]['id']}"

    await _bill(api, store, visits["lapse"])
    claim = await claim_for(api, "enc-lapse-1")
    assert claim["status"] == "draft"
    review = [t for t in await _tasks(api, "claim-review") if t["focus"]["reference"] == f"Claim/{claim['id']}"]
    assert "ELIG-INACTIVE" in _rules(review[0])
    text = await _issue_text(api, claim, "ELIG-INACTIVE")
    assert f"CoverageEligibilityResponse/{answers[0]['id']} of {answers[0]['created']}" in text
    assert ledger()["by_member"].get("ACMLAPSED001", 0) == 0
    assert len(await _tasks(api, "eligibility-problem")) == 1  # billing added none


async def test_few_visits_left_opens_one_work_item(api, store, tenant, payer_settings, demo_bundle,
                                                   route_to_sandbox):
    visits = await _setup(api, store, tenant, payer_settings, demo_bundle)
    await _book_and_sweep(api, store, tenant, ["pat-lowe"])
    low = await _tasks(api, "visit-limit-low")
    assert len(low) == 1
    facts = {i["type"]["text"]: next(v for k, v in i.items() if k.startswith("value")) for i in low[0]["input"]}
    assert (facts["allowed"], facts["used"], facts["remaining"], facts["discipline"]) == (20, 18, 2, "OT")
    # billing the visit (one left after it) keeps the one work item of this answer
    await _bill(api, store, visits["lowe"])
    claim = await claim_for(api, "enc-lowe-1")
    assert claim["status"] == "active"
    assert len(await _tasks(api, "visit-limit-low")) == 1


async def test_appointment_for_an_unknown_patient_or_another_practices_coverage_is_refused(
        api, store, tenant, demo_bundle):
    await load_practice(api, demo_bundle)
    r = await api.post("/fhir/Appointment", json=appointment("nobody", "2026-12-20T09:00:00Z"))
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["resourceType"] == "OperationOutcome"
    assert body["issue"][0]["expression"] == ["Appointment.participant[0].actor"]
    other = f"{tenant}-other"
    store.ensure_tenant(other)
    with store.for_tenant(other).unit() as unit:
        unit.update("Coverage", "cov-elsewhere", {"resourceType": "Coverage", "status": "active",
                                                  "beneficiary": {"reference": "Patient/p"},
                                                  "payor": [{"reference": "Organization/o"}]})
    r = await api.post("/fhir/Appointment", json=appointment(
        "pat-maxwell", "2026-12-20T09:00:00Z", supportingInformation=[{"reference": "Coverage/cov-elsewhere"}]))
    assert r.status_code == 422, r.text
    assert r.json()["issue"][0]["expression"] == ["Appointment.supportingInformation[0]"]
    found = (await api.get("/fhir/Appointment")).json()
    assert found.get("total", len(found.get("entry", []))) == 0 and not found.get("entry")
    r = await api.post("/fhir/Appointment", json=appointment("pat-maxwell", "2026-12-20T09:00:00Z"))
    assert r.status_code == 201, r.text
    found = (await api.get("/fhir/Appointment", params={"patient": "Patient/pat-maxwell", "date": "2026-12-20"})).json()
    assert len(found["entry"]) == 1


async def test_the_daily_sweep_checks_the_day_and_days_ahead_and_schedules_itself(
        api, store, tenant, payer_settings, demo_bundle, route_to_sandbox):
    from app.payers.eligibility_sweep import SWEEP

    await _setup(api, store, tenant, payer_settings, demo_bundle)
    today = store.clock().date()
    sweeps = jobs(store, tenant, SWEEP)
    assert [j.status for j in sweeps] == ["done", "queued"]  # adding the payer ran today's, queued tomorrow's
    tomorrow = today + timedelta(days=1)
    assert orjson_loads(sweeps[1].payload) == {"day": tomorrow.isoformat()}
    assert sweeps[1].run_after.date() == tomorrow and sweeps[1].run_after.hour == 0
    from app.payers.eligibility_sweep import ensure_schedules

    assert ensure_schedules(store) >= 1  # at start-up: today's sweep already ran, none is added
    assert len(jobs(store, tenant, SWEEP)) == 2
    with store.engine.begin() as conn:  # a tenant whose daily chain was cut gets today's back
        conn.execute(J.delete().where(J.c.tenant_id == tenant, J.c.kind == SWEEP))
    ensure_schedules(store)
    assert [orjson_loads(j.payload) for j in jobs(store, tenant, SWEEP)] == [{"day": today.isoformat()}]
    await adrain(store)
    for days in (0, 1, 3):  # on the day and three days ahead are checked; the day between is not
        r = await api.post("/fhir/Appointment", json=appointment(
            "pat-brooks", f"{(today + timedelta(days=days)).isoformat()}T12:00:00Z"))
        assert r.status_code == 201, r.text
    cancelled = appointment("pat-maxwell", f"{today.isoformat()}T12:00:00Z", status="cancelled")
    assert (await api.post("/fhir/Appointment", json=cancelled)).status_code == 201
    from app.payers.eligibility_sweep import queue_checks

    with store.for_tenant(tenant).unit() as unit:
        assert queue_checks(unit, today) == 2
    await adrain(store)
    requests = (await api.get("/fhir/CoverageEligibilityRequest", params={"patient": "Patient/pat-brooks"})).json()
    served = sorted(e["resource"]["servicedDate"] for e in requests["entry"])
    assert served == [today.isoformat(), (today + timedelta(days=3)).isoformat()]
    assert len(await _answers(api, "pat-brooks")) == 2


async def test_a_stale_answer_is_refreshed_when_a_claim_relies_on_it(
        api, store, tenant, payer_settings, demo_bundle, route_to_sandbox):
    visits = await _setup(api, store, tenant, payer_settings, demo_bundle)
    old = (store.clock() - timedelta(days=45)).date().isoformat()
    with store.for_tenant(tenant).unit() as unit:
        unit.update("CoverageEligibilityResponse", "old-answer", {
            "resourceType": "CoverageEligibilityResponse", "status": "active", "purpose": ["benefits"],
            "patient": {"reference": "Patient/pat-maxwell"}, "created": old,
            "request": {"reference": "CoverageEligibilityRequest/none"},
            "insurer": {"reference": "Organization/payer-acme"}, "outcome": "complete",
            "insurance": [{"coverage": {"reference": "Coverage/cov-maxwell"}, "inforce": True}]})
    r = await api.post("/fhir", json={"resourceType": "Bundle", "type": "transaction", "entry": visits["maxwell"]})
    assert r.status_code == 200, r.text
    r = await api.post("/fhir/Encounter/enc-maxwell-1/$generate-claim")
    assert r.status_code in (200, 201), r.text
    outcome = next(e["resource"] for e in r.json()["entry"] if e["resource"]["resourceType"] == "OperationOutcome")
    stale = [i for i in outcome["issue"] if (i.get("details", {}).get("coding") or [{}])[0].get("code") == "ELIG-STALE"]
    assert stale and stale[0]["severity"] == "warning" and "old-answer is 45 days old" in stale[0]["details"]["text"]
    assert [j.status for j in jobs(store, tenant, "eligibility-refresh")] == ["queued"]
    await adrain(store)
    refresh = jobs(store, tenant, "eligibility-refresh")
    assert [j.status for j in refresh] == ["done"]
    answers = await _answers(api, "pat-maxwell")
    assert [a["id"] for a in answers][1:] == ["old-answer"] and answers[0]["created"][:10] > old


async def test_an_appointment_may_name_a_patient_created_in_the_same_transaction(api, store, tenant, demo_bundle):
    patient = {"resourceType": "Patient", "name": [{"family": "New"}], "birthDate": "1990-01-01"}
    booked = appointment("x", "2026-12-21T09:00:00Z")
    booked["participant"][0]["actor"] = {"reference": "urn:uuid:2f0c4a8e-3a53-4f0e-9a77-0b5a2b7f1c11"}
    booked["participant"].pop()  # no practitioner in this practice
    r = await api.post("/fhir", json={"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": "urn:uuid:2f0c4a8e-3a53-4f0e-9a77-0b5a2b7f1c11", "resource": patient,
         "request": {"method": "POST", "url": "Patient"}},
        {"resource": booked, "request": {"method": "POST", "url": "Appointment"}}]})
    assert r.status_code == 200, r.text
    found = (await api.get("/fhir/Appointment", params={"date": "2026-12-21"})).json()
    assert found["entry"][0]["resource"]["participant"][0]["actor"]["reference"].startswith("Patient/")
