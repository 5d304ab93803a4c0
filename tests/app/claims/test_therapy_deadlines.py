"""Therapy deadlines as work items through the server: generating a visit's claim opens the
recertification Task ahead of time, owned by the clinician and focused on the plan, once; the
daily sweep looks again and opens nothing twice."""
from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from tests.flows import claim_for, jobs, medicare_practice

TASK_CODE = "https://therabridge.dev/fhir/CodeSystem/task-code"


async def tasks_of(api: Any, code: str) -> list[dict[str, Any]]:
    bundle = (await api.get("/fhir/Task", params={"code": f"{TASK_CODE}|{code}"})).json()
    return [e["resource"] for e in bundle.get("entry", [])]


def plan_ending(demo_bundle: dict[str, Any], end: str) -> dict[str, Any]:
    for e in demo_bundle["entry"]:
        if e["resource"]["resourceType"] == "CarePlan" and e["resource"]["id"] == "poc-alvarez":
            e["resource"]["period"]["end"] = end
    return demo_bundle


async def test_recertification_task_opens_once_before_the_plan_ends_and_the_sweep_runs_daily(
        api, store, tenant, payer_settings, mailbox, demo_bundle):
    from app.claims.therapy_deadlines import SWEEP, run_sweep

    # Mrs Alvarez's plan (from 2026-11-02) ends 2026-11-16: her visits on 11-03 and 11-05 are
    # within 14 days of the end.
    await medicare_practice(api, store, tenant, payer_settings, mailbox, plan_ending(demo_bundle, "2026-11-16"))
    assert (await claim_for(api, "enc-alvarez-2"))["resourceType"] == "Claim"
    tasks = [t for t in await tasks_of(api, "recertification-due") if t["focus"]["reference"] == "CarePlan/poc-alvarez"]
    assert len(tasks) == 1  # two visits' claims, one due point
    [task] = tasks
    assert task["status"] == "requested" and task["for"] == {"reference": "Patient/pat-alvarez"}
    assert task["owner"]["reference"].startswith("Practitioner/")
    assert task["restriction"]["period"]["end"] == "2026-11-16" and "2026-11-16" in task["description"]
    # The other patients' plans end 2027-01-30: nothing due yet.
    assert all(t["focus"]["reference"] == "CarePlan/poc-alvarez" for t in await tasks_of(api, "recertification-due"))

    # The sweep is queued for the start of tomorrow; run now, it opens nothing twice.
    queued = jobs(store, tenant, SWEEP)
    assert len(queued) == 1 and queued[0].status == "queued"
    with store.for_tenant(tenant).unit() as unit:
        run_sweep(unit, {"day": date.today().isoformat()})
    assert [t["id"] for t in await tasks_of(api, "recertification-due")] == [task["id"]]
    # A completed Task is not opened again by a later sweep.
    done = {**task, "status": "completed"}
    r = await api.put(f"/fhir/Task/{task['id']}", json=done)
    assert r.status_code == 200, r.text
    with store.for_tenant(tenant).unit() as unit:
        run_sweep(unit, {"day": (date.today() + timedelta(days=1)).isoformat()})
    assert [t["status"] for t in await tasks_of(api, "recertification-due")] == ["completed"]
