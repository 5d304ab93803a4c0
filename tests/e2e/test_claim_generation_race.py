"""Two ``therabridge worker`` processes on PostgreSQL run the two claim generations an EHR's
writes queue for one visit (the Encounter finished, then a Procedure written again) at the same
time: each visit still has exactly one claim.

The writes are ordered so that every visit's first job sits in the first worker's batch and its
second job in the other's, so the two generations of every visit run at once."""
from __future__ import annotations

import copy
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from app.fhir.queries import find_resources
from app.jobs import J, Worker

from tests.flows import demo_store, worker_env

TENANT = "race"
VISITS = 40


def _pending(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(J).where(
            J.c.kind == "generate-claim", J.c.status.in_(("queued", "running")))).scalar_one()


def test_two_workers_generate_one_claim_per_visit(own_database: str, tmp_path: Path) -> None:
    if not own_database.startswith("postgresql"):
        pytest.skip("two worker processes share a queue on PostgreSQL; SQLite runs one worker")
    _, store = demo_store(own_database, tmp_path, TENANT)
    engine = store.engine
    worker = Worker(store)
    while worker.run_once():
        pass  # the demo's own claims
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
    assert _pending(engine) == 2 * VISITS

    command = [sys.executable, "-m", "app.cli", "worker", "--poll-seconds", "0.05", "--batch", str(VISITS)]
    procs = [subprocess.Popen(command, env=worker_env(own_database, tmp_path), stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE) for _ in range(2)]
    try:
        deadline = time.monotonic() + 120
        while _pending(engine):
            assert time.monotonic() < deadline, "the workers did not finish"
            assert all(p.poll() is None for p in procs), "a worker died"
            time.sleep(0.1)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(timeout=20)

    with engine.connect() as conn:
        states = conn.execute(sa.select(J.c.status, sa.func.count()).where(J.c.kind == "generate-claim")
                              .group_by(J.c.status)).all()
    assert dict(states) == {"done": 2 * VISITS + 5}
    with ts.reading() as reader:
        counts = {v: len(find_resources(reader, "Claim", [("encounter", f"Encounter/race-{v}")]))
                  for v in range(VISITS)}
    assert counts == {v: 1 for v in range(VISITS)}
    engine.dispose()
