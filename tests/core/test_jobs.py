"""The outbox: jobs written with the change, run once, retried with backoff, dead-lettered."""
from __future__ import annotations

import threading
from datetime import timedelta

import pytest
import sqlalchemy as sa

from app.db import make_engine
from app.fhir.registry import registry
from app.fhir.store import Store
from app.jobs import J, Worker, enqueue, register_handler
from tests.conftest import BASE
from tests.core.helpers import race


def jobs_of(store, tenant):
    with store.engine.connect() as conn:
        return conn.execute(sa.select(J).where(J.c.tenant_id == tenant).order_by(J.c.pk)).all()


@pytest.fixture
async def practice(api, demo_bundle):
    r = await api.post("/fhir", json=demo_bundle, headers={"Prefer": "return=minimal"})
    assert r.status_code == 200
    return api


async def test_finished_encounter_generates_its_claim_in_the_background(app, practice, tenant, demo_bundle):
    store = app.state.services.store
    finished = [e["resource"]["id"] for e in demo_bundle["entry"]
                if e["resource"]["resourceType"] == "Encounter" and e["resource"]["status"] == "finished"]
    queued = [j for j in jobs_of(store, tenant) if j.kind == "generate-claim"]
    assert len(queued) == len(finished) >= 4  # one per finished encounter, queued with the transaction
    while Worker(store).run_once():
        pass
    assert all(j.status == "done" for j in jobs_of(store, tenant))
    claims = (await practice.get("/fhir/Claim?encounter=Encounter/enc-alvarez-1")).json()
    assert claims["total"] == 1
    enc = (await practice.get("/fhir/Encounter/enc-alvarez-1")).json()
    before = len(jobs_of(store, tenant))
    await practice.put("/fhir/Encounter/enc-alvarez-1", json=enc)  # still finished: no new job
    assert len(jobs_of(store, tenant)) == before


async def test_unbillable_encounter_gets_a_task_not_retries(app, api, tenant):
    store = app.state.services.store
    pid = (await api.post("/fhir/Patient", json={"resourceType": "Patient"})).json()["id"]
    eid = (await api.post("/fhir/Encounter", json={
        "resourceType": "Encounter", "status": "finished", "class": {"code": "AMB"},
        "subject": {"reference": f"Patient/{pid}"}, "period": {"start": "2026-11-02T10:00:00Z"}})).json()["id"]
    Worker(store).run_once()
    [job] = jobs_of(store, tenant)
    assert job.status == "done" and job.attempts == 1
    tasks = (await api.get(f"/fhir/Task?focus=Encounter/{eid}")).json()
    assert tasks["total"] == 1
    assert "Procedure" in tasks["entry"][0]["resource"]["description"]


def test_failures_back_off_then_dead_letter(app, tenant):
    store = app.state.services.store
    calls = []

    def flaky(unit, payload):
        calls.append(payload)
        raise ConnectionResetError("payer hung up")

    register_handler("test-flaky", flaky)
    with store.for_tenant(tenant).unit() as unit:
        assert enqueue(unit, "test-flaky", {"n": 1}, dedupe_key="flaky-1")
        assert not enqueue(unit, "test-flaky", {"n": 1}, dedupe_key="flaky-1")  # idempotent enqueue
    worker = Worker(store, max_attempts=3, base_delay=10)
    assert worker.run_once() == 1
    [job] = jobs_of(store, tenant)
    assert job.status == "queued" and job.attempts == 1 and "payer hung up" in job.last_error
    assert job.run_after > store.clock() + timedelta(seconds=4)  # backoff with jitter: 5–10 s
    assert worker.run_once() == 0  # not due yet
    for _ in range(2):
        with store.engine.begin() as conn:
            conn.execute(J.update().where(J.c.pk == job.pk).values(run_after=store.clock()))
        worker.run_once()
    [job] = jobs_of(store, tenant)
    assert job.status == "dead" and job.attempts == 3 and len(calls) == 3
    tasks = store.for_tenant(tenant)
    from app.fhir.search_params import parse_search
    q = parse_search(registry().get("Task"), [("code", "job-failed")], registry=registry())
    [task] = tasks.search(q).matches
    assert "test-flaky" in task.resource()["description"]


def test_lease_expiry_lets_another_worker_take_over(app, tenant):
    store = app.state.services.store
    done = []
    register_handler("test-once", lambda unit, payload: done.append(payload["n"]))
    with store.for_tenant(tenant).unit() as unit:
        enqueue(unit, "test-once", {"n": 7}, dedupe_key="lease-7")
    crashed = Worker(store, lease_seconds=0)
    assert len(crashed.claim()) == 1  # claimed, then the process "dies" before running it
    assert Worker(store).run_once() == 1
    assert done == [7]


def test_two_workers_run_each_job_exactly_once(app, database_url, tenant):
    store = app.state.services.store
    seen: list[int] = []
    lock = threading.Lock()

    def record(unit, payload):
        with lock:
            seen.append(payload["n"])

    register_handler("test-race", record)
    with store.for_tenant(tenant).unit() as unit:
        for n in range(60):
            enqueue(unit, "test-race", {"n": n}, dedupe_key=f"race-{n}")

    def drain(_i: int) -> None:
        other = Store(make_engine(database_url), registry(), base_url=BASE)
        w = Worker(other, batch=5)
        while w.run_once():
            pass

    assert race(2, drain) == [None, None]
    assert sorted(seen) == list(range(60))
