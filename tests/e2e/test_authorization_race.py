"""Two ``therabridge worker`` processes on PostgreSQL bill, at the same time, two visits of one
patient whose authorization has one visit left: only one claim takes it, the other is held
(AUTH-EXHAUSTED), for every patient.

Each patient has one authorized OT visit and two finished visits; every patient's first visit
is queued before any second visit, and each worker leases a batch of one visit per patient, so
the two claims of every patient are generated at once, one by each worker. SQLite is not run:
its writers are serialised at BEGIN, so two generations never overlap there.
"""
from __future__ import annotations

import copy
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from app.bootstrap import DEMO_BUNDLE
from app.claims import automation
from app.claims.authorizations import usage_of
from app.claims.lifecycle import lifecycle
from app.fhir.queries import find_resources
from app.jobs import J, Worker
from tests.app.claims.test_authorizations import authorization
from tests.flows import demo_store, generations_pending, two_workers_generate, worker_env

TENANT = "authrace"
PATIENTS = 24
TEMPLATES = ("pat-alvarez", "cov-alvarez", "cond-alvarez", "poc-alvarez")
START_SECONDS = 8  # enough for two worker processes to start on a busy machine
VISITS = {"a": "enc-alvarez-1", "b": "enc-alvarez-2"}  # 3 and 5 November, OT


def _renamed(resource: dict[str, Any], p: int, visit: str | None = None) -> dict[str, Any]:
    raw = orjson.dumps(resource).decode()
    if visit is not None:
        raw = raw.replace(f'"{VISITS[visit]}', f'"ar{p:02d}-{visit}').replace(f"Encounter/{VISITS[visit]}",
                                                                             f"Encounter/ar{p:02d}-{visit}")
    for name in TEMPLATES:
        raw = raw.replace(name, f"{name.split('-')[0]}-ar{p:02d}")
    return orjson.loads(raw)


def _practice(url: str, var: Path, patients: int) -> Any:
    """The demo practice (its claims generated) and ``patients`` copies of Mrs Alvarez, each with
    one authorized OT visit and two visits still in progress (``arNN-a``, ``arNN-b``)."""
    _, store = demo_store(url, var, TENANT)
    worker = Worker(store)
    while worker.run_once():
        pass  # the demo's own claims
    demo = {e["resource"]["id"]: e["resource"] for e in orjson.loads(DEMO_BUNDLE.read_bytes())["entry"]}
    with store.for_tenant(TENANT).unit() as unit:
        for p in range(patients):
            for rid in TEMPLATES:
                r = _renamed(demo[rid], p)
                unit.update(r["resourceType"], r["id"], r)
            auth = authorization(visits=1, patient=f"Patient/pat-ar{p:02d}", ref=f"AR-{p:02d}")
            unit.update("ClaimResponse", f"auth-ar{p:02d}", {**auth, "id": f"auth-ar{p:02d}"})
            for visit, template in VISITS.items():
                for rid in (template, f"{template}-p1", f"{template}-p2"):
                    r = _renamed(demo[rid], p, visit)
                    if r["resourceType"] == "Encounter":
                        r["status"] = "in-progress"
                    unit.update(r["resourceType"], r["id"], r)
    return store


def _one_took_it(reader: Any, p: int) -> None:
    """Patient ``p``'s two claims: one under the authorization, the other held; usage 1 of 1."""
    claims = find_resources(reader, "Claim", [("patient", f"Patient/pat-ar{p:02d}")])
    assert len(claims) == 2
    under = [c for c in claims if c["insurance"][0].get("preAuthRef") == [f"AR-{p:02d}"]]
    held = [c for c in claims if c not in under]
    assert len(under) == 1 and len(held) == 1, f"patient {p}: {len(under)} claims took the one visit"
    assert lifecycle(held[0]) == "draft" and held[0]["status"] == "draft"
    _, used = usage_of(reader, f"auth-ar{p:02d}")
    assert used.used == {0: 1} and used.claims == [under[0]["id"]]


def test_the_second_generation_waits_for_the_first_and_finds_the_visit_taken(own_database: str,
                                                                              tmp_path: Path) -> None:
    """Deterministic: the first generation holds its transaction open after building its claim;
    the second (another connection) waits on the authorization's lock until the first commits,
    then reads the usage again and holds its claim."""
    if not own_database.startswith("postgresql"):
        pytest.skip("SQLite serialises writers at BEGIN: two claim generations never overlap there")
    store = _practice(own_database, tmp_path, 1)
    ts = store.for_tenant(TENANT)
    with ts.unit() as unit:
        for visit in VISITS:
            enc = unit.read("Encounter", f"ar00-{visit}").resource()
            unit.update("Encounter", enc["id"], {**enc, "status": "finished"})
    generated, release, second_done = threading.Event(), threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def first() -> None:
        try:
            with ts.unit() as unit:
                automation.run_generate(unit, {"encounter": "ar00-a"})
                generated.set()
                release.wait(30)
        except BaseException as exc:  # reported by the test thread
            errors.append(exc)
            generated.set()

    def second() -> None:
        try:
            generated.wait(30)
            with ts.unit() as unit:
                automation.run_generate(unit, {"encounter": "ar00-b"})
            second_done.set()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for t in threads:
        t.start()
    try:
        assert generated.wait(30)
        assert not second_done.wait(2), "the second generation did not wait for the first to commit"
    finally:
        release.set()
        for t in threads:
            t.join(30)
    assert not errors, errors
    assert second_done.is_set()
    with ts.reading() as reader:
        _one_took_it(reader, 0)
    store.engine.dispose()


def test_two_workers_never_both_take_the_last_authorized_visit(own_database: str, tmp_path: Path) -> None:
    if not own_database.startswith("postgresql"):
        pytest.skip("SQLite serialises writers at BEGIN: two claim generations never overlap there")
    store = _practice(own_database, tmp_path, PATIENTS)
    engine, ts = store.engine, store.for_tenant(TENANT)
    for visit in VISITS:  # every first visit ends, then every second one: one generation each
        for p in range(PATIENTS):
            with ts.unit() as unit:
                enc = unit.read("Encounter", f"ar{p:02d}-{visit}").resource()
                unit.update("Encounter", enc["id"], {**copy.deepcopy(enc), "status": "finished"})
    assert generations_pending(engine) == 2 * PATIENTS
    # Both workers are up and polling before any job is due: the first leases the first visits,
    # the other, at the same moment, the second ones.
    with engine.begin() as conn:
        conn.execute(J.update().where(J.c.kind == "generate-claim", J.c.status == "queued").values(
            run_after=store.clock() + timedelta(seconds=START_SECONDS)))

    two_workers_generate(engine, worker_env(own_database, tmp_path), PATIENTS)

    with ts.reading() as reader:
        for p in range(PATIENTS):
            _one_took_it(reader, p)
    engine.dispose()
