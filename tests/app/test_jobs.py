"""The outbox: jobs written with the change, run once, retried with backoff, dead-lettered."""
from __future__ import annotations

import threading
from datetime import timedelta

import pytest
import sqlalchemy as sa

from app.db import make_engine
from app.fhir.registry import registry
from app.fhir.store import Store
import app.jobs as jobs_module
from app.jobs import Deferred, J, Worker, enqueue, register_batch_handler, register_handler
from app.migrations import upgrade
from tests.conftest import BASE
from tests.app.fhir.helpers import race


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
    # Every job due now is done; a daily sweep queued for tomorrow waits for its day.
    now = store.clock()
    assert all(j.status == "done" or j.run_after.replace(tzinfo=now.tzinfo) > now for j in jobs_of(store, tenant))
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


# -- leases: a worker leases what it runs, and a run ends only under its own lease ------------------

def _own_store(url: str) -> Store:
    """A store with its own engine, as a separate worker process would have."""
    return Store(make_engine(url), registry(), base_url=BASE)


@pytest.fixture
def quiet_store(own_database):
    """A migrated database of its own: the leases these tests look at are the only jobs in it."""
    engine = make_engine(own_database)
    upgrade(engine)
    store = Store(engine, registry(), base_url=BASE)
    store.ensure_tenant("leases")
    yield store
    engine.dispose()


def test_a_worker_leases_the_job_it_runs_not_a_round_of_them(quiet_store):
    store = quiet_store
    register_handler("test-single", lambda unit, payload: None)
    register_batch_handler("test-batched", lambda unit, payloads: None)
    with store.for_tenant("leases").unit() as unit:
        for n in range(3):
            enqueue(unit, "test-single", {"n": n}, dedupe_key=f"single-{n}")
        for n in range(3):
            enqueue(unit, "test-batched", {"n": n}, dedupe_key=f"batched-{n}")
    worker = Worker(store, batch=50)

    [first] = worker.claim()  # the worker "dies" here: only this job waits out its lease
    assert first.payload == {"n": 0}
    statuses = [(j.kind, j.status) for j in jobs_of(store, "leases")]
    assert statuses.count(("test-single", "running")) == 1 and statuses.count(("test-single", "queued")) == 2

    other = Worker(_own_store(store.engine.url.render_as_string(hide_password=False)), batch=50)
    assert [len(other.claim()), len(other.claim())] == [1, 1]  # the next jobs go to any worker at once
    batched = other.claim()  # a kind with a batch handler: its due jobs run together
    assert sorted(j.payload["n"] for j in batched) == [0, 1, 2] and {j.kind for j in batched} == {"test-batched"}
    assert len({j.lease for j in batched}) == 1
    other.store.engine.dispose()


def test_a_job_whose_lease_ran_out_is_taken_over_before_new_ones(quiet_store):
    store = quiet_store
    register_handler("test-single", lambda unit, payload: None)
    with store.for_tenant("leases").unit() as unit:
        enqueue(unit, "test-single", {"n": "old"}, dedupe_key="old")
    Worker(store, lease_seconds=0).claim()  # its worker died
    with store.for_tenant("leases").unit() as unit:
        for n in range(60):
            enqueue(unit, "test-single", {"n": n}, dedupe_key=f"new-{n}")
    [job] = Worker(store, batch=50).claim()
    assert job.payload == {"n": "old"} and job.attempts == 2


def test_expedited_kinds_are_taken_before_jobs_due_earlier(quiet_store, monkeypatch):
    """A built claim's send goes before the backlog of visits waiting to be billed; a send not
    due yet waits like any job, and the backlog then runs in due order."""
    store = quiet_store
    register_handler("test-build", lambda unit, payload: None)
    register_handler("test-send", lambda unit, payload: None)
    monkeypatch.setattr(jobs_module, "EXPEDITED", {"test-send"})
    with store.for_tenant("leases").unit() as unit:
        for n in range(3):
            enqueue(unit, "test-build", {"n": n}, dedupe_key=f"build-{n}", run_after=unit.now - timedelta(minutes=5 - n))
        enqueue(unit, "test-send", {"n": "due"}, dedupe_key="send-due")
        enqueue(unit, "test-send", {"n": "later"}, dedupe_key="send-later", run_after=unit.now + timedelta(hours=1))
    worker = Worker(store, batch=50)
    taken = [(j.kind, j.payload["n"]) for j in (worker.claim() + worker.claim() + worker.claim() + worker.claim())]
    assert taken == [("test-send", "due"), ("test-build", 0), ("test-build", 1), ("test-build", 2)]
    assert worker.claim() == []


def test_kinds_that_give_way_wait_for_other_due_jobs_until_their_patience_runs_out(quiet_store, monkeypatch):
    """Posting answers gives way to billing visits: a due answer is taken once no visit is due,
    or before visits due later once it has waited ``PATIENCE`` (never starved)."""
    store = quiet_store
    register_handler("test-visit", lambda unit, payload: None)
    register_handler("test-answer", lambda unit, payload: None)
    monkeypatch.setattr(jobs_module, "BACKGROUND", {"test-answer"})
    patience = jobs_module.PATIENCE
    with store.for_tenant("leases").unit() as unit:
        enqueue(unit, "test-answer", {"n": "waited"}, dedupe_key="answer-waited",
                run_after=unit.now - patience - timedelta(seconds=1))
        enqueue(unit, "test-answer", {"n": "fresh"}, dedupe_key="answer-fresh", run_after=unit.now - timedelta(seconds=30))
        enqueue(unit, "test-visit", {"n": 0}, dedupe_key="visit-0", run_after=unit.now - patience)
        enqueue(unit, "test-visit", {"n": 1}, dedupe_key="visit-1", run_after=unit.now - timedelta(seconds=10))
        enqueue(unit, "test-visit", {"n": "later"}, dedupe_key="visit-later", run_after=unit.now + timedelta(hours=1))
    worker = Worker(store, batch=50)
    taken = [(j.kind, j.payload["n"]) for _ in range(4) for j in worker.claim()]
    assert taken == [("test-answer", "waited"), ("test-visit", 0), ("test-visit", 1), ("test-answer", "fresh")]
    assert worker.claim() == []  # the visit due in an hour waits for its hour


@pytest.mark.parametrize("transaction", [False, True], ids=["own-transactions", "in-transaction"])
@pytest.mark.parametrize("late", ["done", "failed", "deferred"])
def test_a_run_whose_lease_was_taken_over_records_nothing(quiet_store, own_database, late, transaction):
    """Worker A outlives its lease; worker B takes the job over. Whatever A's run ends with, it
    must not end B's lease (done, retried or deferred over a job B is running), and writes A made
    in the job's transaction roll back."""
    store = quiet_store
    if transaction and not store.postgres:
        pytest.skip("SQLite serializes writers: no worker can take a job over while a handler's transaction is open")
    entered = {"a": threading.Event(), "b": threading.Event()}
    go = {"a": threading.Event(), "b": threading.Event()}
    kind = f"test-fenced-{late}-{int(transaction)}"

    def body(who: str) -> None:
        entered[who].set()
        assert go[who].wait(30)
        if who == "a" and late == "failed":
            raise ConnectionResetError("payer hung up")
        if who == "a" and late == "deferred":
            raise Deferred(store.clock() + timedelta(minutes=5), "circuit open")

    def in_transaction(unit, payload):
        unit.create({"resourceType": "Patient", "active": True})
        body(threading.current_thread().name)

    register_handler(kind, in_transaction if transaction else
                     (lambda ts, payload: body(threading.current_thread().name)), transaction=transaction)
    with store.for_tenant("leases").unit() as unit:
        enqueue(unit, kind, {}, dedupe_key=kind)
    a = Worker(_own_store(own_database), name="worker-a")
    b = Worker(_own_store(own_database), name="worker-b")
    ta = threading.Thread(target=a.run_once, name="a")
    tb = threading.Thread(target=b.run_once, name="b")
    try:
        ta.start()
        assert entered["a"].wait(30)
        with store.engine.begin() as conn:  # A's lease runs out while its handler is still busy
            conn.execute(J.update().values(locked_until=store.clock() - timedelta(seconds=1)))
        tb.start()
        assert entered["b"].wait(30)
        go["a"].set()
        ta.join(30)

        [job] = jobs_of(store, "leases")
        assert job.status == "running" and job.locked_by.startswith("worker-b/")  # B's lease stands
        assert job.attempts == 2 and job.last_error is None

        go["b"].set()
        tb.join(30)
        [job] = jobs_of(store, "leases")
        assert job.status == "done" and job.attempts == 2
        if transaction:
            with store.engine.connect() as conn:
                made = conn.exec_driver_sql("SELECT count(*) FROM resource WHERE tenant_id = 'leases' "
                                            "AND type = 'Patient'").scalar()
            assert made == 1  # B's; A's rolled back with its ending
    finally:
        for event in go.values():
            event.set()
        for t in (ta, tb):
            if t.is_alive():
                t.join(30)
    for w in (a, b):
        w.store.engine.dispose()
