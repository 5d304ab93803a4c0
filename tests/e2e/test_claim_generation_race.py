"""Two ``therabridge worker`` processes on PostgreSQL run the two claim generations an EHR's
writes queue for one visit (the Encounter finished, then a Procedure written again) at the same
time: each visit still has exactly one claim.

The writes are ordered so that every visit's first job sits in the first worker's batch and its
second job in the other's, so the two generations of every visit run at once."""
from __future__ import annotations

import copy
from pathlib import Path

import pytest
import sqlalchemy as sa

from app.fhir.queries import find_resources
from app.jobs import J, Worker

from tests.flows import demo_store, generations_pending, two_workers_generate, worker_env

TENANT = "race"
VISITS = 40


def test_two_workers_generate_one_claim_per_visit(own_database: str, tmp_path: Path) -> None:
    if not own_database.startswith("postgresql"):
        pytest.skip("two worker processes share a queue on PostgreSQL; SQLite runs one worker")
    _, store = demo_store(own_database, tmp_path, TENANT)
    engine = store.engine
    worker = Worker(store)
    while worker.run_once():
        pass  # the demo's own claims
    with engine.connect() as conn:
        demo_visits = conn.execute(sa.select(sa.func.count()).where(J.c.kind == "generate-claim")).scalar_one()
    ts = store.for_tenant(TENANT)
    encounter = ts.read("Encounter", "enc-brooks-1").resource()
    procedures = [ts.read("Procedure", f"enc-brooks-1-p{n}").resource() for n in (1, 2)]
    with ts.unit() as unit:
        for v in range(VISITS):
            unit.update("Encounter", f"race-{v}", {**copy.deepcopy(encounter), "status": "in-progress"})
            for n, proc in enumerate(procedures, start=1):
                unit.update("Procedure", f"race-{v}-p{n}",
                            {**copy.deepcopy(proc), "encounter": {"reference": f"Encounter/race-{v}"}})
    for v in range(VISITS):  # the visit ends: one generation each
        with ts.unit() as unit:
            unit.update("Encounter", f"race-{v}", {**copy.deepcopy(encounter), "status": "finished"})
    for v in range(VISITS):  # the EHR adds a note to a procedure: a second generation each
        with ts.unit() as unit:
            proc = unit.read("Procedure", f"race-{v}-p1").resource()
            unit.update("Procedure", f"race-{v}-p1", {**proc, "note": [{"text": "late note"}]})
    assert generations_pending(engine) == 2 * VISITS

    two_workers_generate(engine, worker_env(own_database, tmp_path), VISITS)

    with engine.connect() as conn:
        states = conn.execute(sa.select(J.c.status, sa.func.count()).where(J.c.kind == "generate-claim")
                              .group_by(J.c.status)).all()
    assert dict(states) == {"done": 2 * VISITS + demo_visits}
    with ts.reading() as reader:
        counts = {v: len(find_resources(reader, "Claim", [("encounter", f"Encounter/race-{v}")]))
                  for v in range(VISITS)}
    assert counts == {v: 1 for v in range(VISITS)}
    engine.dispose()
